"""PrefoptDPOTrainer: TRL 0.28's DPOTrainer with prefopt's fused scoring (fused_forward.py) and prefopt's losses.

It overrides two methods: ``concatenated_forward`` (sequence log-probs and TRL's side outputs from the final hidden
states, never the logits) and ``get_batch_loss_metrics`` (the losses from :func:`prefopt.dpo_loss` and
:func:`prefopt.tdpo_loss`, the metrics under TRL's names plus the losses' own). Data, collation, the reference
model (a separate model, PEFT's adapters switched off, or precomputed log-probs), accelerate, logging and saving
stay TRL's. It never re-derives a loss formula: each number comes from prefopt's C++ operators.
"""

from __future__ import annotations

import inspect
from typing import Dict, Literal, Tuple

import torch
from trl import DPOConfig, DPOTrainer

import prefopt

from . import fused_forward as ff
from . import ranked as rk
from . import spo as sp
from .config import (LISTWISE_DATA_LOSS_TYPES, PAIRWISE_LOSS_TYPES, TRL_LOSS_TYPES, _loss_type_list,
                     check_config, operator_options)
from .config import option as _extra

class PrefoptDPOTrainer(DPOTrainer):
    """TRL's ``DPOTrainer``, scoring with prefopt's fused kernels and computing the losses with prefopt.

    Takes exactly ``DPOTrainer``'s arguments; ``args`` may be a :class:`PrefoptDPOConfig` (for the added loss
    types' options and ``prefopt_chunk_bytes``) or TRL's own ``DPOConfig`` (then their defaults). Supported: decoder-only causal LMs whose logits are
    ``lm_head(final hidden state)`` with a bias-free ``nn.Linear`` head (Llama, Qwen2/3, Mistral, Gemma, ... and
    their PEFT models with the head left out of the adapters), every TRL loss type and list of them, ``rpo_alpha``,
    ``use_weighting``, ``ld_alpha``, ``padding_free``, ``precompute_ref_log_probs``, single or several processes
    under accelerate with DDP (DeepSpeed ZeRO-1/2 not refused, not tested). Refused with an error: encoder-decoder
    and vision models, ``use_liger_kernel``, FSDP and ZeRO-3 (the head's weight is sharded outside the forward).

    Example::

        >>> from prefopt.trl import PrefoptDPOConfig, PrefoptDPOTrainer
        >>> args = PrefoptDPOConfig(output_dir="out", loss_type="sigmoid", beta=0.1, report_to=[])
        >>> trainer = PrefoptDPOTrainer(model=model, args=args, train_dataset=dataset,
        ...                             processing_class=tokenizer)                      # doctest: +SKIP
        >>> trainer.train()                                                              # doctest: +SKIP
    """

    def __init__(self, *args, **kwargs):
        bound = inspect.signature(DPOTrainer.__init__).bind(self, *args, **kwargs)
        given = bound.arguments.get("args")
        self._ranked = False
        if given is not None:
            if not isinstance(given, DPOConfig):
                raise TypeError(f"args must be a DPOConfig or PrefoptDPOConfig, got {type(given).__name__}")
            check_config(given)  # TRL's plain DPOConfig too
            if given.use_liger_kernel:
                raise ValueError("use_liger_kernel=True and PrefoptDPOTrainer both replace the scoring: choose one")
            self._ranked = _loss_type_list(given.loss_type)[0] in LISTWISE_DATA_LOSS_TYPES
        arguments = dict(bound.arguments)
        arguments.pop("self")
        super().__init__(**arguments)
        if self._ranked and arguments.get("data_collator") is None:
            self.data_collator = rk.RankedCollator(self.pad_token_id)  # TRL's pad token choice, ranked layout
        # Refuses unsupported heads before training.
        weight = ff.lm_head_weight(self.accelerator.unwrap_model(self.model))
        self.prefopt_degree_head = None
        if "spo" in self.loss_type:
            self.data_collator = sp.VariantCollator(self.data_collator, self.pad_token_id)
            self.prefopt_degree_head = torch.nn.Linear(weight.size(1), _extra(self.args, "spo_num_degrees")).to(
                device=weight.device, dtype=weight.dtype)
            if self.accelerator.num_processes > 1:
                from accelerate.utils import broadcast
                for p in self.prefopt_degree_head.parameters():
                    p.data.copy_(broadcast(p.data, from_process=0))
        if self.is_encoder_decoder:
            raise ValueError("PrefoptDPOTrainer scores decoder-only causal LMs; this model is encoder-decoder")
        if self.is_fsdp_enabled or (self.is_deepspeed_enabled and self._deepspeed_stage() == 3):
            raise ValueError(
                "PrefoptDPOTrainer reads lm_head.weight outside the model's forward, which FSDP and DeepSpeed "
                "ZeRO-3 shard there; use DDP or ZeRO-1/2"
            )
        self._prefopt_head_checked = set()
        self._prefopt_alpha = 1.0 - float(self.args.f_alpha_divergence_coef)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """TRL's, except on ranked and DOVE data, whose metrics hold no ``logits/*``: the loss only."""
        if not self._ranked:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        with torch.no_grad():
            loss, metrics = self.get_batch_loss_metrics(model, inputs, train_eval="eval")
        self.store_metrics(metrics, train_eval="eval")
        return loss.detach(), None, None

    def _operator_options(self, loss_type: str) -> dict:
        """The options of an added loss type's operator: its declared defaults, then the config's."""
        options = operator_options(loss_type)
        options.update(_extra(self.args, "prefopt_loss_options").get(loss_type, {}))
        return options

    # -------------------------------------------------------------------------------------------------------------
    # Ranked data (listwise loss types)
    # -------------------------------------------------------------------------------------------------------------

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        if "spo" in _loss_type_list(args.loss_type):
            options = dict(processing_class=processing_class, tokenize_row=self.tokenize_row,
                           num_degrees=_extra(args, "spo_num_degrees"), max_prompt_length=args.max_prompt_length,
                           max_completion_length=args.max_completion_length, tools=args.tools)
            dataset = dataset.map(lambda row, i: sp.add_variant_ids(row, i, **options), with_indices=True)
        if not getattr(self, "_ranked", False):
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        first = next(iter(dataset))
        joint = _loss_type_list(args.loss_type)[0] == "dove"
        needed = ("chosen_prompt", "chosen", "rejected_prompt", "rejected") if joint else ("prompt", "responses")
        missing = [k for k in needed if k not in first]
        if missing:
            kind = "DOVE rows (chosen_prompt, chosen, rejected_prompt, rejected)" if joint else \
                "ranked rows (prompt, responses, scores or ranks)"
            raise ValueError(f"{dataset_name} dataset: the loss type {args.loss_type!r} needs {kind}; missing "
                             f"{missing}, columns {sorted(first)}")
        kwargs = dict(processing_class=processing_class, tokenize_row=self.tokenize_row,
                      max_prompt_length=args.max_prompt_length, max_completion_length=args.max_completion_length,
                      tools=args.tools)
        if joint:
            tokenize = rk.tokenize_joint_row
        elif _loss_type_list(args.loss_type)[0] == "tpo":
            kwargs["step_delimiter"] = _extra(args, "tpo_step_delimiter")
            tokenize = rk.tokenize_ranked_row
        else:
            tokenize = rk.tokenize_ranked_row
        return dataset.map(lambda row, i: tokenize(row, index=i, **kwargs), with_indices=True,
                           remove_columns=dataset.column_names)

    def _set_signature_columns_if_needed(self):
        if getattr(self, "_ranked", False) and self._signature_columns is None:
            self._signature_columns = ["prompt_input_ids", "responses_input_ids", "response_labels", "label_type",
                                       "responses_step_ids"]
        super()._set_signature_columns_if_needed()
        if "spo" in self.loss_type and "spo_variants_input_ids" not in self._signature_columns:
            self._signature_columns = list(self._signature_columns) + ["spo_variants_input_ids"]

    # -------------------------------------------------------------------------------------------------------------
    # SPO's degree head: optimized, averaged over processes and saved with the model
    # -------------------------------------------------------------------------------------------------------------

    def create_optimizer(self):
        optimizer = super().create_optimizer()
        head = getattr(self, "prefopt_degree_head", None)
        if head is not None and not any(p is q for g in optimizer.param_groups for p in g["params"]
                                        for q in head.parameters()):
            optimizer.add_param_group({"params": list(head.parameters()), "weight_decay": self.args.weight_decay})
        return optimizer

    def training_step(self, *args, **kwargs):
        loss = super().training_step(*args, **kwargs)
        if self.prefopt_degree_head is not None:
            sp.average_gradients(self.prefopt_degree_head, self.accelerator)
        return loss

    def _save(self, output_dir=None, state_dict=None):
        super()._save(output_dir, state_dict)
        if getattr(self, "prefopt_degree_head", None) is not None:
            sp.save_head(self.prefopt_degree_head, output_dir if output_dir is not None else self.args.output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        if getattr(self, "prefopt_degree_head", None) is not None:
            sp.load_head(self.prefopt_degree_head, resume_from_checkpoint)

    def _ranked_scores(self, model, batch, *, embeddings: bool = False):
        """``(logps, lengths, steps)`` of one model on a ranked batch: ``[B, K]`` summed log-probs and token counts
        (0 at masked responses) and, for TPO, ``(step_logps [B, K, S], step_mask [B, K, S], step_embeddings
        [B, K, S, H] or None)``: each step's mean token log-prob and mean final hidden state (detached)."""
        layout = ff.ranked_layout(batch, max_length=self.max_length, truncation_mode=self.truncation_mode)
        input_ids, attention_mask, loss_mask = layout[:3]
        step_ids = layout[3] if len(layout) > 3 else None
        rows = self._forward(model, input_ids, attention_mask, loss_mask, num_examples=input_ids.size(0),
                             padding_free=False, aux_loss=False, step_ids=step_ids, token_hidden=embeddings)
        with self.accelerator.autocast():
            logps, _ = ff.token_logps(rows, chunk_bytes=_extra(self.args, "prefopt_chunk_bytes"))
        valid = batch["response_mask"]

        def to_lists(per_sequence):  # [M, ...] -> [B, K, ...], 0 at masked responses
            out = per_sequence.new_zeros(valid.shape + per_sequence.shape[1:])
            out[valid] = per_sequence
            return out

        sums = rows.per_sequence_sum(logps)
        lengths = to_lists(rows.counts().to(sums.dtype))
        steps = None
        if step_ids is not None:
            num_steps = int(batch["responses_step_ids"].max().item()) + 1
            step_logps, step_mask = rows.per_step_mean(logps, num_steps)
            emb = None
            if embeddings:
                emb = to_lists(rows.per_step_mean(rows.token_hidden.to(sums.dtype), num_steps)[0])
            steps = (to_lists(step_logps), to_lists(step_mask), emb)
        return to_lists(sums), lengths, steps

    def _ranked_loss_metrics(self, model, batch, train_eval):
        loss_type = self.loss_type[0]
        options = self._operator_options(loss_type)
        options["label_type"] = batch["label_type"]
        tpo = loss_type == "tpo"
        policy, lengths, steps = self._ranked_scores(model, batch, embeddings=tpo)
        mask, labels = batch["response_mask"], batch["response_labels"].to(policy.dtype)
        ref = ref_steps = None
        if loss_type != "pro" and not options.get("reference_free", False):
            with torch.no_grad():
                if self.ref_model is None:
                    with self.null_ref_context():
                        ref, _, ref_steps = self._ranked_scores(self.model, batch)
                else:
                    ref, _, ref_steps = self._ranked_scores(self.ref_model, batch)
        beta = {} if loss_type == "pro" else {"beta": self.beta}
        if loss_type == "dove":
            options.pop("label_type")
            return self._joint_loss_metrics(policy, ref, options, train_eval)
        if tpo:
            out = prefopt.tpo_loss(steps[0], ref_steps[0], labels, steps[1], step_embeddings=steps[2], mask=mask,
                                   **beta, **options)
        elif loss_type == "pro":
            out = prefopt.pro_loss(policy, lengths, labels, mask, **options)
        elif loss_type == "irpo":
            out = prefopt.irpo_loss(policy, ref, labels, mask, lengths, **beta, **options)
        else:
            out = getattr(prefopt, f"{loss_type}_loss")(policy, ref, labels, mask, **beta, **options)
        grades = labels if batch["label_type"] == "grades" else -labels
        prefix = "eval_" if train_eval == "eval" else ""

        def mean(value):
            return self._gathered_mean(value, skip_nan=True)

        valid = mask.to(policy.dtype)
        metrics = {
            f"{prefix}ranking/accuracy": mean(prefopt.ranking_accuracy(out.rewards, grades, mask)),
            f"{prefix}ranking/kendall_tau": mean(prefopt.kendall_tau(out.rewards, grades, mask)),
            f"{prefix}ranking/ndcg": mean(prefopt.ndcg(out.rewards, grades, mask)),
            f"{prefix}logps/mean": mean((policy * valid).sum(1) / valid.sum(1)),
            f"{prefix}rewards/mean": mean((out.rewards * valid).sum(1) / valid.sum(1)),
        }
        return out.losses.mean(), metrics

    def _joint_loss_metrics(self, policy, ref, options, train_eval):
        """DOVE's loss on joint log-probs (chosen in column 0), with TRL's pairwise metric names."""
        losses, chosen_rewards, rejected_rewards = prefopt.joint_dpo_loss(
            policy[:, 0], policy[:, 1], ref[:, 0], ref[:, 1], beta=self.beta, label_smoothing=self.label_smoothing,
            **options)
        prefix = "eval_" if train_eval == "eval" else ""
        return losses.mean(), self._pair_metrics(prefix, chosen_rewards, rejected_rewards, policy[:, 0], policy[:, 1])

    def _gathered_mean(self, value: torch.Tensor, skip_nan: bool = False) -> float:
        """The mean over every process's values (TRL's gather_for_metrics); with ``skip_nan``, NaN entries (lists
        with no ordered pair) left out."""
        values = self.accelerator.gather_for_metrics(value.detach().reshape(-1)).float()
        return (values.nanmean() if skip_nan else values.mean()).item()

    def _pair_metrics(self, prefix, chosen_rewards, rejected_rewards, chosen_logps, rejected_logps) -> dict:
        """TRL's pairwise metric names: rewards/* and logps/*."""
        mean = self._gathered_mean
        return {
            f"{prefix}rewards/chosen": mean(chosen_rewards),
            f"{prefix}rewards/rejected": mean(rejected_rewards),
            f"{prefix}rewards/accuracies": mean((chosen_rewards > rejected_rewards).float()),
            f"{prefix}rewards/margins": mean(chosen_rewards - rejected_rewards),
            f"{prefix}logps/chosen": mean(chosen_logps),
            f"{prefix}logps/rejected": mean(rejected_logps),
        }

    def _low_precision(self) -> bool:
        """Whether the model computes its logits in bf16/fp16 (accelerate's mixed precision)."""
        return str(self.accelerator.mixed_precision) in ("bf16", "fp16")

    def _deepspeed_stage(self) -> int:
        plugin = getattr(self.accelerator.state, "deepspeed_plugin", None)
        return int(getattr(plugin, "zero_stage", 0) or 0) if plugin is not None else 0

    # -------------------------------------------------------------------------------------------------------------
    # Scoring
    # -------------------------------------------------------------------------------------------------------------

    def _rows(self, model, batch, with_variants: bool = False) -> ff.ScoredRows:
        num_examples = batch["prompt_input_ids"].shape[0]
        input_ids, attention_mask, loss_mask = ff.concatenated_layout(
            batch, pad_token_id=self.pad_token_id, max_length=self.max_length, truncation_mode=self.truncation_mode,
            concatenated_inputs=self.concatenated_inputs)
        extra = 0
        if with_variants:
            # SPO's variants run in the same forward as the pairs (one forward per step, as DDP expects).
            k = batch["spo_variants_input_ids"].size(0) // num_examples
            v_ids, v_mask, _ = ff.prompt_completion_layout(
                batch["prompt_input_ids"].repeat_interleave(k, 0), batch["prompt_attention_mask"].repeat_interleave(k, 0),
                batch["spo_variants_input_ids"], batch["spo_variants_attention_mask"], max_length=self.max_length,
                truncation_mode=self.truncation_mode)
            width = max(input_ids.size(1), v_ids.size(1))

            def widen(t, value):
                return torch.nn.functional.pad(t, (0, width - t.size(1)), value=value)

            extra = v_ids.size(0)
            input_ids = torch.cat((widen(input_ids, self.pad_token_id), widen(v_ids, self.pad_token_id)))
            attention_mask = torch.cat((widen(attention_mask, 0), widen(v_mask, 0)))
            loss_mask = torch.cat((widen(loss_mask, False), torch.zeros_like(widen(v_mask, 0), dtype=torch.bool)))
        rows = self._forward(model, input_ids, attention_mask, loss_mask, num_examples=num_examples,
                             padding_free=self.padding_free, aux_loss=self.aux_loss_enabled, extra_sequences=extra)
        if with_variants:
            rows.extra_mask = attention_mask[-extra:]
        return rows

    def _forward(self, model, input_ids, attention_mask, loss_mask, **kwargs) -> ff.ScoredRows:
        """ff.forward_rows through the wrapped ``model``, checking each model's head on its first batch."""
        unwrapped = self.accelerator.unwrap_model(model)
        key = id(unwrapped)
        rows = ff.forward_rows(model, unwrapped, input_ids, attention_mask, loss_mask,
                               check_head=key not in self._prefopt_head_checked,
                               low_precision=self._low_precision(), **kwargs)
        self._prefopt_head_checked.add(key)
        return rows

    def _score(self, rows: ff.ScoredRows, is_ref_model: bool) -> Dict[str, torch.Tensor]:
        """TRL's ``concatenated_forward`` outputs from scored rows."""
        args = self.args
        chunk = _extra(args, "prefopt_chunk_bytes")
        b = rows.num_examples
        with self.accelerator.autocast():  # the head's matmul in the precision the model's own lm_head runs in
            logps, lse = ff.token_logps(rows, chunk_bytes=chunk)
        counts = rows.counts()
        if args.ld_alpha is not None:
            dense, mask = rows.dense(logps)
            chosen, rejected = prefopt.ld_dpo_logps(dense[:b], mask[:b], dense[b:], mask[b:], alpha=args.ld_alpha)
            all_logps = torch.cat((chosen, rejected))
        else:
            all_logps = rows.per_sequence_sum(logps)
        if "ipo" in self.loss_type:
            # TRL hands every loss type length-averaged log-probs when ipo is among them.
            all_logps = all_logps / counts.clamp_min(1).to(all_logps.dtype)
        output = {"chosen_logps": all_logps[:b], "rejected_logps": all_logps[b:], "token_counts": counts}
        if is_ref_model:
            return output
        if self.use_weighting:
            with torch.no_grad():
                # WPO's log-weight per token: logp - log sum_v p_v^2 = logp - (lse(2z) - 2 lse(z)).
                with self.accelerator.autocast():
                    _, lse2 = ff.token_logps(rows, chunk_bytes=chunk, temperature=0.5)
                log_w = rows.per_sequence_sum(logps.detach() - (lse2 - 2 * lse.detach()))
                log_w = log_w / counts.clamp_min(1).to(log_w.dtype)
                output["policy_weights"] = prefopt.wpo_pair_weights(log_w[:b], log_w[b:])
        if args.rpo_alpha is not None or "sft" in self.loss_type:
            # TRL's nll_loss: mean over the chosen completion tokens, leaving out token id 0 (its ignore_index).
            take = (rows.sequence < b) & (rows.labels != 0)
            output["nll_loss"] = prefopt.mean_token_nll(logps.unsqueeze(0), take.unsqueeze(0))
        output["mean_chosen_logits"] = ff.mean_logits(rows, slice(0, b))
        output["mean_rejected_logits"] = ff.mean_logits(rows, slice(b, 2 * b))
        if rows.aux_loss is not None:
            output["aux_loss"] = rows.aux_loss
        return output

    def concatenated_forward(self, model, batch, is_ref_model: bool = False) -> Dict[str, torch.Tensor]:
        """TRL's ``concatenated_forward`` outputs (``chosen_logps``, ``rejected_logps``, ``mean_chosen_logits``,
        ``mean_rejected_logits``, and ``nll_loss``, ``policy_weights``, ``aux_loss`` when used), computed from the
        final hidden states with :func:`prefopt.fused_linear_logps`."""
        return self._score(self._rows(model, batch), is_ref_model)

    def _reference_rows(self, batch) -> ff.ScoredRows:
        with torch.no_grad():
            if self.ref_model is None:
                with self.null_ref_context():
                    return self._rows(self.model, batch)
            return self._rows(self.ref_model, batch)

    # -------------------------------------------------------------------------------------------------------------
    # Losses and metrics
    # -------------------------------------------------------------------------------------------------------------

    def _loss_options(self):
        args = self.args
        return dict(beta=self.beta, label_smoothing=self.label_smoothing, f_divergence=str(args.f_divergence_type),
                    alpha_divergence_coef=self._prefopt_alpha, discopop_tau=float(args.discopop_tau),
                    reference_free=bool(self.reference_free))

    def _losses(self, out, ref_chosen, ref_rejected, kl) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-pair losses of every loss type, weighted and summed, plus RPO's NLL and times WPO's weights (TRL's
        order); and the rewards ``beta * (policy - reference)``."""
        types = list(self.loss_type)
        weights = list(self.loss_weights) if self.loss_weights else [1.0] * len(types)
        pc, pr = out["chosen_logps"], out["rejected_logps"]
        ref_chosen, ref_rejected = ref_chosen.to(pc.device), ref_rejected.to(pc.device)
        nll = out.get("nll_loss")
        policy_weights = out.get("policy_weights")
        options = self._loss_options()
        ipo = "ipo" in types
        ones = torch.ones_like(pc) if ipo else None
        total = torch.zeros_like(pc)
        rewards = None
        dpo_types = [t for t in types if t in TRL_LOSS_TYPES and t != "bco_pair"]  # spo: added after the mean
        if dpo_types:
            losses, chosen_rewards, rejected_rewards = prefopt.dpo_loss(
                pc, pr, ref_chosen, ref_rejected, loss_type=dpo_types,
                loss_weights=[w for t, w in zip(types, weights) if t in dpo_types], chosen_lengths=ones,
                rejected_lengths=ones, chosen_nll=nll if "sft" in dpo_types else None, **options)
            total = total + losses
            rewards = (chosen_rewards, rejected_rewards)
        if "bco_pair" in types:
            # TRL's running mean of the batch rewards, gathered over processes (its RunningMoments): the loss is
            # bco_pair's on scores shifted by delta / beta, i.e. -logsig(beta h_c - delta) - logsig(-(beta h_r - delta)).
            h = torch.cat((pc - ref_chosen, pr - ref_rejected)).detach()
            self.running.update((self.beta * h).mean())
            delta = float(self.running.mean) / self.beta
            losses, _, _ = prefopt.dpo_loss(pc - delta, pr - delta, ref_chosen, ref_rejected, loss_type="bco_pair",
                                            **{**options, "f_divergence": "reverse_kl", "reference_free": False})
            total = total + weights[types.index("bco_pair")] * losses
        for variant in PAIRWISE_LOSS_TYPES:
            if variant in types:
                losses, _, _ = prefopt.tdpo_loss(pc, pr, ref_chosen, ref_rejected, kl[0], kl[1], variant=variant,
                                                 beta=self.beta, **self._operator_options(variant))
                total = total + weights[types.index(variant)] * losses
        if rewards is None:
            with torch.no_grad():
                zero = torch.zeros_like(pc)
                rewards = (self.beta * (pc - (zero if self.reference_free else ref_chosen)).detach(),
                           self.beta * (pr - (zero if self.reference_free else ref_rejected)).detach())
        if self.args.rpo_alpha is not None:
            total = total + self.args.rpo_alpha * nll
        if policy_weights is not None:
            total = total * policy_weights
        return total, rewards[0], rewards[1]

    def get_batch_loss_metrics(self, model, batch, train_eval: Literal["train", "eval"] = "train"):
        """The batch's mean loss and its metrics: TRL's names (``rewards/*``, ``logps/*``, ``logits/*``,
        ``nll_loss``, ``aux_loss``) with the ``eval_`` prefix in evaluation, plus ``kl/chosen`` and ``kl/rejected``
        (TDPO's summed token KL) when a TDPO loss type is used."""
        if self._ranked:
            return self._ranked_loss_metrics(model, batch, train_eval)
        tdpo = any(t in PAIRWISE_LOSS_TYPES for t in self.loss_type)
        spo = "spo" in self.loss_type
        policy_rows = self._rows(model, batch, with_variants=spo)
        out = self._score(policy_rows, is_ref_model=False)
        kl = None
        if tdpo:
            ref_rows = self._reference_rows(batch)
            with torch.no_grad():
                ref_out = self._score(ref_rows, is_ref_model=True)
            ref_chosen, ref_rejected = ref_out["chosen_logps"], ref_out["rejected_logps"]
            with self.accelerator.autocast():
                token_kl = ff.token_kl(policy_rows, ref_rows, chunk_bytes=_extra(self.args, "prefopt_chunk_bytes"))
            seq_kl = policy_rows.per_sequence_sum(token_kl)
            kl = (seq_kl[: policy_rows.num_examples], seq_kl[policy_rows.num_examples:])
        elif "ref_chosen_logps" in batch and "ref_rejected_logps" in batch:
            ref_chosen, ref_rejected = batch["ref_chosen_logps"], batch["ref_rejected_logps"]
        else:
            ref_chosen, ref_rejected = self.compute_ref_log_probs(batch)
        losses, chosen_rewards, rejected_rewards = self._losses(out, ref_chosen, ref_rejected, kl)
        if self.aux_loss_enabled:
            losses = losses + self.aux_loss_coef * out["aux_loss"]
        loss = losses.mean()
        degree = None
        if spo:
            pooled = prefopt.degree.pool_hidden_states(policy_rows.extra_hidden, policy_rows.extra_mask,
                                                       pooling=_extra(self.args, "spo_pooling"))
            logits = self.prefopt_degree_head(pooled)
            k = logits.size(1)
            degrees = torch.arange(k, device=logits.device).repeat(logits.size(0) // k)
            loss, degree_losses = prefopt.spo_loss(loss, logits, degrees, **self._operator_options("spo"))
            degree = (degree_losses, (logits.argmax(1) == degrees).float())

        prefix = "eval_" if train_eval == "eval" else ""
        mean = self._gathered_mean
        metrics = self._pair_metrics(prefix, chosen_rewards, rejected_rewards, out["chosen_logps"],
                                     out["rejected_logps"])
        metrics[f"{prefix}logits/chosen"] = mean(out["mean_chosen_logits"])
        metrics[f"{prefix}logits/rejected"] = mean(out["mean_rejected_logits"])
        if "nll_loss" in out:
            metrics[f"{prefix}nll_loss"] = mean(out["nll_loss"])
        if self.aux_loss_enabled:
            metrics[f"{prefix}aux_loss"] = mean(out["aux_loss"])
        if kl is not None:
            metrics[f"{prefix}kl/chosen"] = mean(kl[0])
            metrics[f"{prefix}kl/rejected"] = mean(kl[1])
        if degree is not None:
            metrics[f"{prefix}spo/degree_loss"] = mean(degree[0])
            metrics[f"{prefix}spo/degree_accuracy"] = mean(degree[1])
        return loss, metrics
