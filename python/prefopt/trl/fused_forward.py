"""The scoring half of prefopt's TRL DPOTrainer: a causal LM's forward on TRL's concatenated chosen/rejected batch,
then the completion tokens' log-probs from the final hidden states and the LM head's weight with
:func:`prefopt.fused_linear_logps` (the ``[B, T, V]`` logits are never formed). It lays the batch out as TRL 0.28's
``DPOTrainer.concatenated_forward`` does (prompt + completion, flushed left, truncated by ``max_length``), and
returns rows, not losses: it never computes a loss or a metric."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

import prefopt
from trl.trainer.utils import flush_left, flush_right

# Inputs of vision-language and token-type models, which this path does not lay out.
_UNSUPPORTED_KEYS = ("pixel_values", "pixel_attention_mask", "image_sizes", "token_type_ids")


@dataclass
class ScoredRows:
    """The completion tokens of a concatenated batch (the first ``num_examples`` sequences chosen, then as many
    rejected), one row per scored token, in sequence order.

    hidden: ``[N, H]`` final hidden states (post final norm) of the positions that predict a completion token.
    labels: ``[N]`` int64, the predicted token ids.  sequence: ``[N]`` int64, the row's sequence in ``[0, 2B)``.
    weight: the LM head's ``[V, H]`` weight (the parameter itself, so gradients reach it).
    aux_loss: the model's auxiliary (router) loss when requested, else None.
    """

    hidden: torch.Tensor
    labels: torch.Tensor
    sequence: torch.Tensor
    weight: torch.Tensor
    num_examples: int
    num_sequences: int
    aux_loss: Optional[torch.Tensor] = None
    token_hidden: Optional[torch.Tensor] = None
    """``[N, H]`` detached: the final hidden state at each scored token's own position (TPO's step embeddings)."""
    step: Optional[torch.Tensor] = None
    """``[N]`` int64: each scored token's step (TPO), when the layout carried step ids."""
    extra_hidden: Optional[torch.Tensor] = None
    """``[E, T, H]``: the final hidden states of the sequences after the scored ones (SPO's variants), with grad."""
    extra_mask: Optional[torch.Tensor] = None
    """``[E, T]``: their attention mask."""

    def per_step_mean(self, values: torch.Tensor, num_steps: int):
        """``(means, mask)``: ``values`` (``[N]`` or ``[N, E]``) averaged over each (sequence, step), ``[2B, S]``
        or ``[2B, S, E]``, and which steps have a token ``[2B, S]``."""
        key = self.sequence * num_steps + self.step
        flat = values.reshape(values.size(0), -1)
        sums = flat.new_zeros(self.num_sequences * num_steps, flat.size(1)).index_add(0, key, flat)
        counts = torch.bincount(key, minlength=self.num_sequences * num_steps)
        means = sums / counts.clamp_min(1).to(flat.dtype).unsqueeze(1)
        shape = (self.num_sequences, num_steps) + tuple(values.shape[1:])
        return means.reshape(shape), (counts > 0).reshape(self.num_sequences, num_steps)

    def per_sequence_sum(self, values: torch.Tensor) -> torch.Tensor:
        """``[2B]``: the sum of ``values`` (``[N]``) over each sequence's rows."""
        out = values.new_zeros(self.num_sequences)
        return out.index_add(0, self.sequence, values)

    def counts(self) -> torch.Tensor:
        """``[2B]`` int64: each sequence's number of scored tokens."""
        return torch.bincount(self.sequence, minlength=self.num_sequences)

    def dense(self, values: torch.Tensor):
        """``values`` (``[N]``) as ``[2B, L]`` (L: the longest sequence's token count) with its bool mask, each
        sequence's tokens left-aligned in order."""
        counts = self.counts()
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(values.numel(), device=values.device) - starts[self.sequence]
        width = int(counts.max().item()) if counts.numel() else 0
        out = values.new_zeros(self.num_sequences, max(width, 1))
        mask = torch.zeros(self.num_sequences, max(width, 1), dtype=torch.bool, device=values.device)
        out = out.index_put((self.sequence, rank), values)
        mask[self.sequence, rank] = True
        return out, mask


def _base_module(model: nn.Module) -> nn.Module:
    get_base = getattr(model, "get_base_model", None)  # a PEFT model
    return get_base() if callable(get_base) else model


def lm_head_weight(unwrapped: nn.Module) -> torch.Tensor:
    """The LM head's weight, after checking that logits are exactly ``hidden @ weight.T``; raises ValueError naming
    what stands in the way otherwise."""
    base = _base_module(unwrapped)
    config = getattr(base, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        raise ValueError("prefopt.trl scores decoder-only causal LMs; this model is encoder-decoder")
    for attribute in ("final_logit_softcapping", "logit_scale"):
        if getattr(config, attribute, None) not in (None, 1.0):
            raise ValueError(
                f"prefopt.trl needs logits = hidden @ lm_head.weight.T; config.{attribute} = "
                f"{getattr(config, attribute)} transforms them"
            )
    head = base.get_output_embeddings()
    if type(head) is not nn.Linear:
        raise ValueError(
            "prefopt.trl needs the output embedding to be a plain torch.nn.Linear (got "
            f"{type(head).__module__}.{type(head).__name__}); LoRA adapters or modules_to_save on lm_head are not "
            "supported: leave lm_head out of the PEFT config's target_modules and modules_to_save"
        )
    if head.bias is not None:
        raise ValueError("prefopt.trl needs an lm_head without bias")
    return head.weight


def accepts_logits_to_keep(unwrapped: nn.Module) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` (then only the last position's logits are formed)."""
    try:
        return "logits_to_keep" in inspect.signature(_base_module(unwrapped).forward).parameters
    except (TypeError, ValueError):
        return False


def prompt_completion_layout(prompt_ids, prompt_mask, completion_ids, completion_mask, *, max_length,
                             truncation_mode: str, completion_steps=None):
    """TRL 0.28's layout of prompt (left-padded) + completion (right-padded) sequences: ``(input_ids,
    attention_mask, loss_mask)``, each ``[N, T]``, concatenated, flushed left and truncated to ``max_length`` as
    TRL's ``concatenated_forward`` does. With ``completion_steps`` (``[N, Tc]`` step ids), a fourth tensor: each
    position's step id, -1 outside the completions."""
    input_ids = torch.cat((prompt_ids, completion_ids), dim=1)
    attention_mask = torch.cat((prompt_mask, completion_mask), dim=1)
    loss_mask = torch.cat((torch.zeros_like(prompt_mask), completion_mask), dim=1)
    tensors = [input_ids, loss_mask]
    if completion_steps is not None:
        # +1 so that flushing (which fills with 0) leaves -1 after the shift back.
        tensors.append(torch.cat((torch.zeros_like(prompt_ids), completion_steps + 1), dim=1))
    if max_length is not None and max_length < attention_mask.size(1):
        if truncation_mode == "keep_start":
            attention_mask, *tensors = flush_left(attention_mask, *tensors)
            attention_mask, *tensors = (t[:, :max_length] for t in (attention_mask, *tensors))
        elif truncation_mode == "keep_end":
            attention_mask, *tensors = flush_right(attention_mask, *tensors)
            attention_mask, *tensors = (t[:, -max_length:] for t in (attention_mask, *tensors))
            attention_mask, *tensors = flush_left(attention_mask, *tensors)
        else:
            raise ValueError(f"truncation_mode must be 'keep_start' or 'keep_end', got {truncation_mode!r}")
    else:
        attention_mask, *tensors = flush_left(attention_mask, *tensors)
    out = (tensors[0], attention_mask, tensors[1].bool())
    return out + (tensors[2] - 1,) if completion_steps is not None else out


def concatenated_layout(batch, *, pad_token_id: int, max_length, truncation_mode: str, concatenated_inputs):
    """A DPO batch laid out as TRL 0.28 does: ``[2B, T]`` tensors, chosen first (see prompt_completion_layout)."""
    for key in _UNSUPPORTED_KEYS:
        if key in batch or f"prompt_{key}" in batch:
            raise ValueError(f"prefopt.trl scores text-only batches; this batch has {key!r}")
    cat = concatenated_inputs(batch, padding_value=pad_token_id)
    return prompt_completion_layout(cat["prompt_input_ids"], cat["prompt_attention_mask"], cat["completion_input_ids"],
                                    cat["completion_attention_mask"], max_length=max_length,
                                    truncation_mode=truncation_mode)


def ranked_layout(batch, *, max_length, truncation_mode: str):
    """A ranked batch's valid responses as sequences (row-major over ``[B, K]``), laid out as TRL lays out a pair:
    ``(input_ids, attention_mask, loss_mask)``, each ``[M, T]`` with M the number of valid responses, and the step
    ids (TPO) as a fourth tensor when the batch has them."""
    valid = batch["response_mask"]
    rows = valid.nonzero(as_tuple=True)[0]
    steps = batch.get("responses_step_ids")
    return prompt_completion_layout(batch["prompt_input_ids"][rows], batch["prompt_attention_mask"][rows],
                                    batch["responses_input_ids"][valid], batch["responses_attention_mask"][valid],
                                    max_length=max_length, truncation_mode=truncation_mode,
                                    completion_steps=None if steps is None else steps[valid])


def forward_rows(model: nn.Module, unwrapped: nn.Module, input_ids, attention_mask, loss_mask, *, num_examples: int,
                 padding_free: bool, aux_loss: bool, check_head: bool, step_ids=None,
                 token_hidden: bool = False, extra_sequences: int = 0, low_precision: bool = False) -> ScoredRows:
    """Runs ``model`` (the wrapped one, so data-parallel hooks fire) and selects the rows that predict completion
    tokens. With ``check_head``, verifies once on the last position that ``hidden @ weight.T`` is the model's own
    logits (a model whose last hidden state is not the LM head's input raises ValueError). ``step_ids`` (``[N, T]``,
    padded layout only) and ``token_hidden`` fill the rows' TPO fields."""
    weight = lm_head_weight(unwrapped)
    kwargs = {"use_cache": False, "output_hidden_states": True}
    keep_last = accepts_logits_to_keep(unwrapped)
    if keep_last:
        kwargs["logits_to_keep"] = 1
    if aux_loss:
        kwargs["output_router_logits"] = True
    num_sequences = input_ids.size(0) - extra_sequences
    if padding_free:
        real = attention_mask.bool()
        sequence_of_token = torch.arange(num_sequences, device=input_ids.device).repeat_interleave(real.sum(1))
        input_ids, loss_mask = input_ids[real].unsqueeze(0), loss_mask[real].unsqueeze(0)
        kwargs["position_ids"] = (attention_mask.cumsum(1)[real] - 1).unsqueeze(0)
        sequence = sequence_of_token.unsqueeze(0)
    else:
        kwargs["attention_mask"] = attention_mask
        # Extra sequences hold no scored token; their ids only fill the shape.
        sequence = torch.arange(input_ids.size(0), device=input_ids.device).unsqueeze(1).expand_as(input_ids)
    outputs = model(input_ids, **kwargs)
    hidden = outputs.hidden_states[-1]
    if check_head:
        with torch.no_grad():
            last = hidden[:, -1] @ weight.t()
            given = outputs.logits[:, -1]
            # bf16/fp16 logits (a half model, or autocast, whose outputs accelerate may cast back to fp32) carry
            # ~3 significant digits.
            low = (torch.bfloat16, torch.float16)
            tol = 2e-2 if low_precision or given.dtype in low or hidden.dtype in low else 1e-3
            if not torch.allclose(last.float(), given.float(), rtol=tol, atol=tol * (1 + given.abs().max().item())):
                raise ValueError(
                    f"prefopt.trl: {type(_base_module(unwrapped)).__name__}'s last hidden state times lm_head.weight "
                    "is not its logits, so the fused scoring would be wrong for this model"
                )
    # Position t predicts token t + 1, which is scored when it is a completion token.
    select = loss_mask[:, 1:]
    return ScoredRows(
        hidden=hidden[:, :-1][select],
        labels=input_ids[:, 1:][select],
        sequence=sequence[:, 1:][select],
        weight=weight,
        num_examples=num_examples,
        num_sequences=num_sequences,
        aux_loss=getattr(outputs, "aux_loss", None) if aux_loss else None,
        token_hidden=hidden[:, 1:][select].detach() if token_hidden else None,
        step=None if step_ids is None else step_ids[:, 1:][select],
        extra_hidden=hidden[num_sequences:] if extra_sequences else None,
    )


def _autocast_dtype(t: torch.Tensor):
    """The dtype autocast gives a matmul on ``t``'s device now, or None outside autocast."""
    device = t.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return None


def token_logps(rows: ScoredRows, *, chunk_bytes: int, temperature: float = 1.0):
    """``(logps, lse)``, each ``[N]`` float32 (float64 for float64 models): the scored tokens' log-probs
    (differentiable) and each row's log-sum-exp of ``logits / temperature``. Under autocast (TRL's ``bf16=True``)
    the head's matmul runs in autocast's dtype, as the model's own ``lm_head`` would (the log-softmax stays fp32)."""
    hidden, weight = rows.hidden, rows.weight
    low = _autocast_dtype(hidden)
    if low is not None and hidden.dtype != low:
        hidden, weight = hidden.to(low), weight.to(low)
    return torch.ops.prefopt.fused_linear_logps(hidden, weight, rows.labels, -100, float(temperature),
                                                int(chunk_bytes))


def mean_logits(rows: ScoredRows, which: slice) -> torch.Tensor:
    """Detached mean over the selected rows and the vocabulary of the logits, ``mean_rows(h . mean_v(W))``: TRL's
    ``logits/chosen`` and ``logits/rejected`` without forming the logits."""
    with torch.no_grad():
        chosen = (rows.sequence >= which.start) & (rows.sequence < which.stop)
        h = rows.hidden[chosen].float()
        if h.numel() == 0:
            return torch.tensor(float("nan"), device=rows.hidden.device)
        return (h @ rows.weight.float().mean(0)).mean()


def token_kl(policy: ScoredRows, ref: ScoredRows, *, chunk_bytes: int) -> torch.Tensor:
    """``[N]`` KL(ref || policy) of each scored token's next-token distribution (TDPO's token KL), differentiable
    with respect to the policy. Rows go through in chunks of at most ``chunk_bytes`` of logits, each recomputed
    in the backward (activation checkpointing), so the memory is one chunk's logits."""
    from torch.utils.checkpoint import checkpoint

    n, vocab = policy.hidden.size(0), policy.weight.size(0)
    itemsize = max(policy.hidden.element_size(), 4)
    step = max(1, int(chunk_bytes) // max(1, vocab * itemsize * 2))
    ref_hidden, ref_weight = ref.hidden.detach(), ref.weight.detach()

    def chunk_kl(h, w, start: int, stop: int):
        with torch.no_grad():
            ref_logits = ref_hidden[start:stop] @ ref_weight.t()
        return prefopt.token_kl(h @ w.t(), ref_logits)

    pieces = []
    for start in range(0, n, step):
        stop = min(n, start + step)
        pieces.append(checkpoint(chunk_kl, policy.hidden[start:stop], policy.weight, start, stop, use_reentrant=False))
    if not pieces:
        return policy.hidden.new_zeros(0, dtype=torch.float32)
    return torch.cat(pieces)
