"""prefopt.trl's listwise loss types on ranked datasets: for each, the trainer's loss equals prefopt's own loss API
on float64 scores computed here from each (prompt, response) alone, the loss options come from the config, a few
training steps run, and bad data or settings are refused naming the row, option or setting."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("trl", reason="trl is not installed (requirements.txt pins it)")

import prefopt  # noqa: E402
from prefopt.trl import PrefoptDPOConfig, PrefoptDPOTrainer  # noqa: E402
from prefopt.trl.config import RANKED_LOSS_TYPES, operator_options  # noqa: E402

import trl_integration_fixtures as fx  # noqa: E402


def _trainer(tmp_path, loss_type, ranks=False, **options):
    policy, ref = fx.model(0), fx.model(100)
    args = fx.config(PrefoptDPOConfig, tmp_path, loss_type=loss_type, **options)
    return PrefoptDPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=fx.ranked_dataset(ranks=ranks),
                             processing_class=fx.tokenizer())


def _each_response(model, batch):
    """For each valid response: ``(i, j, keep, token_logps, hidden)``, the model run on that
    one (prompt + response) alone (no padding): the response tokens' log-probs and final hidden states, and which
    positions of the padded response row they are."""
    b, k = batch["response_mask"].shape
    with torch.no_grad():
        for i in range(b):
            prompt = batch["prompt_input_ids"][i][batch["prompt_attention_mask"][i].bool()]
            for j in range(k):
                if not batch["response_mask"][i, j]:
                    continue
                keep = batch["responses_attention_mask"][i, j].bool()
                ids = torch.cat((prompt, batch["responses_input_ids"][i, j][keep])).unsqueeze(0)
                out = model(ids, output_hidden_states=True)
                logp = torch.log_softmax(out.logits.double()[0, :-1], -1)
                token = logp.gather(-1, ids[0, 1:].unsqueeze(-1)).squeeze(-1)[prompt.numel() - 1:]
                yield i, j, keep, token, out.hidden_states[-1].double()[0, prompt.numel():]


def _float64_scores(model, batch):
    """``(logps, lengths)`` ``[B, K]``: each valid response's summed log-prob given its prompt, in float64."""
    logps = torch.zeros(batch["response_mask"].shape, dtype=torch.float64)
    lengths = torch.zeros(batch["response_mask"].shape, dtype=torch.float64)
    for i, j, _, token, _ in _each_response(model, batch):
        logps[i, j], lengths[i, j] = token.sum(), token.numel()
    return logps, lengths


def _reference_loss(trainer, batch, loss_type, options):
    policy, lengths = _float64_scores(trainer.model, batch)
    ref, _ = _float64_scores(trainer.ref_model, batch)
    labels, mask = batch["response_labels"].double(), batch["response_mask"]
    opts = dict(options, label_type=batch["label_type"])
    if loss_type == "pro":
        return prefopt.pro_loss(policy, lengths, labels, mask, **opts).losses.mean()
    opts["beta"] = trainer.beta
    if loss_type == "irpo":
        return prefopt.irpo_loss(policy, ref, labels, mask, lengths, **opts).losses.mean()
    return getattr(prefopt, f"{loss_type}_loss")(policy, ref, labels, mask, **opts).losses.mean()


@pytest.mark.parametrize("loss_type", [t for t in RANKED_LOSS_TYPES if t != "tpo"])
def test_loss_equals_prefopts_loss_on_float64_scores_and_trains(loss_type, tmp_path):
    trainer = _trainer(tmp_path, loss_type)
    batch = fx.first_batch(trainer)
    assert batch["response_mask"].sum(1).min() < batch["response_mask"].shape[1], "no short list: a vacuous mask"
    loss, metrics = trainer.get_batch_loss_metrics(trainer.model, batch)
    want = _reference_loss(trainer, batch, loss_type, {})
    assert loss.item() == pytest.approx(want.item(), rel=1e-5, abs=1e-6)
    assert {"ranking/accuracy", "ranking/kendall_tau", "ranking/ndcg", "logps/mean", "rewards/mean"} <= set(metrics)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.args.max_steps = 3
    result = trainer.train()
    assert torch.isfinite(torch.tensor(result.training_loss))
    assert any(not torch.equal(a, p.detach()) for a, p in zip(before, trainer.model.parameters()))


def _float64_steps(model, batch, embeddings: bool):
    """TPO's ``[B, K, S]`` step means of token log-probs (and ``[B, K, S, H]`` of final hidden states at the
    tokens' positions), each (prompt, response) run alone in float64; the steps are the batch's step ids."""
    b, k = batch["response_mask"].shape
    s = int(batch["responses_step_ids"].max()) + 1
    logps = torch.zeros(b, k, s, dtype=torch.float64)
    mask = torch.zeros(b, k, s, dtype=torch.bool)
    emb = None
    for i, j, keep, token, hidden in _each_response(model, batch):
        steps = batch["responses_step_ids"][i, j][keep]
        if emb is None:
            emb = torch.zeros(b, k, s, hidden.size(-1), dtype=torch.float64)
        for step in range(s):
            at = steps == step
            if at.any():
                logps[i, j, step], emb[i, j, step], mask[i, j, step] = token[at].mean(), hidden[at].mean(0), True
    return logps, mask, (emb if embeddings else None)


def test_tpo_steps_equal_prefopts_loss_on_float64_scores_and_trains(tmp_path):
    policy, ref = fx.model(0), fx.model(100)
    args = fx.config(PrefoptDPOConfig, tmp_path, loss_type="tpo")
    trainer = PrefoptDPOTrainer(model=policy, ref_model=ref, args=args,
                                train_dataset=fx.ranked_dataset(steps=True), processing_class=fx.tokenizer())
    batch = fx.first_batch(trainer)
    assert int(batch["responses_step_ids"].max()) >= 1, "every response has one step: a vacuous case"
    loss, metrics = trainer.get_batch_loss_metrics(trainer.model, batch)
    p, step_mask, emb = _float64_steps(trainer.model, batch, embeddings=True)
    q, _, _ = _float64_steps(trainer.ref_model, batch, embeddings=False)
    want = prefopt.tpo_loss(p, q, batch["response_labels"].double(), step_mask, step_embeddings=emb,
                            mask=batch["response_mask"], beta=trainer.beta).losses.mean()
    assert loss.item() == pytest.approx(want.item(), rel=1e-5, abs=1e-7)
    trainer.args.max_steps = 2
    assert torch.isfinite(torch.tensor(trainer.train().training_loss))


def test_tpo_step_split():
    from prefopt.trl.ranked import split_steps

    assert split_steps("a\nb\n\nc", "\n") == ["a\n", "b\n", "\n", "c"]
    assert split_steps("a\n", "\n") == ["a\n"]
    assert split_steps("", "\n") == []


def test_ranks_and_options_from_the_config(tmp_path):
    options = {"lambda_weighting": False}
    trainer = _trainer(tmp_path, "lipo_lambda", ranks=True, prefopt_loss_options={"lipo_lambda": options}, beta=0.3)
    batch = fx.first_batch(trainer)
    assert batch["label_type"] == "ranks"
    loss, _ = trainer.get_batch_loss_metrics(trainer.model, batch)
    want = _reference_loss(trainer, batch, "lipo_lambda", options)
    other = _reference_loss(trainer, batch, "lipo_lambda", {})
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    assert want.item() != pytest.approx(other.item(), rel=1e-3), "the option made no difference: a vacuous case"


def test_options_are_the_operators_declarations():
    declared = operator_options("ranklist")
    assert declared["form"] == "exact" and "beta" not in declared
    schema = torch.ops.prefopt.ranklist_loss.default._schema
    assert {a.name for a in schema.arguments if a.kwarg_only} - {"beta", "label_type"} == set(declared)


def test_refusals(tmp_path):
    with pytest.raises(ValueError, match="trains on its own data format and cannot be combined with others"):
        fx.config(PrefoptDPOConfig, tmp_path, loss_type=["lipo_lambda", "sigmoid"])
    with pytest.raises(ValueError, match=r"unknown option 'lambda'; lipo_lambda_loss takes"):
        fx.config(PrefoptDPOConfig, tmp_path, loss_type="lipo_lambda", prefopt_loss_options={"lipo_lambda": {"lambda": 1}})
    with pytest.raises(ValueError, match=r"\['lambda_weighting'\] must be bool, got 'no'"):
        fx.config(PrefoptDPOConfig, tmp_path, loss_type="lipo_lambda",
                  prefopt_loss_options={"lipo_lambda": {"lambda_weighting": "no"}})
    with pytest.raises(ValueError, match="set beta with the config's beta"):
        fx.config(PrefoptDPOConfig, tmp_path, loss_type="pro", prefopt_loss_options={"pro": {"beta": 1.0}})
    with pytest.raises(ValueError, match="set label_smoothing with the config's label_smoothing"):
        fx.config(PrefoptDPOConfig, tmp_path, loss_type="dove", prefopt_loss_options={"dove": {"label_smoothing": 0.1}})
    with pytest.raises(ValueError, match="precompute_ref_log_probs applies to TRL.s pairs"):
        fx.config(PrefoptDPOConfig, tmp_path, loss_type="plackett_luce", precompute_ref_log_probs=True)
    with pytest.raises(ValueError, match=r"missing \['responses'\]"):
        PrefoptDPOTrainer(model=fx.model(0), ref_model=fx.model(1),
                          args=fx.config(PrefoptDPOConfig, tmp_path, loss_type="plackett_luce"),
                          train_dataset=fx.dataset(), processing_class=fx.tokenizer())
    bad = fx.ranked_dataset().to_dict()
    bad["scores"][3] = bad["scores"][3][:-1]
    import datasets
    with pytest.raises(ValueError, match="row 3: needs one label per response"):
        PrefoptDPOTrainer(model=fx.model(0), ref_model=fx.model(1),
                          args=fx.config(PrefoptDPOConfig, tmp_path, loss_type="plackett_luce"),
                          train_dataset=datasets.Dataset.from_dict(bad), processing_class=fx.tokenizer())


# ---------------------------------------------------------------------------------------------------------------
# DOVE: pairs whose responses answer different prompts
# ---------------------------------------------------------------------------------------------------------------


def _joint_trainer(tmp_path, data, **options):
    args = fx.config(PrefoptDPOConfig, tmp_path, loss_type="dove", **options)
    return PrefoptDPOTrainer(model=fx.model(0), ref_model=fx.model(100), args=args, train_dataset=data,
                             processing_class=fx.tokenizer())


def _float64_joint(model, batch):
    """``[B, 2]`` joint log-probs: every token after the first of each (prompt + response), run alone."""
    out = torch.zeros(batch["response_mask"].shape, dtype=torch.float64)
    with torch.no_grad():
        for i in range(out.size(0)):
            for j in range(2):
                ids = batch["responses_input_ids"][i, j][batch["responses_attention_mask"][i, j].bool()].unsqueeze(0)
                logp = torch.log_softmax(model(ids).logits.double()[0, :-1], -1)
                out[i, j] = logp.gather(-1, ids[0, 1:].unsqueeze(-1)).sum()
    return out


def test_dove_equals_prefopts_joint_loss_on_float64_scores_and_trains(tmp_path):
    trainer = _joint_trainer(tmp_path, fx.joint_dataset(), label_smoothing=0.1)
    batch = fx.first_batch(trainer)
    loss, metrics = trainer.get_batch_loss_metrics(trainer.model, batch)
    p, q = _float64_joint(trainer.model, batch), _float64_joint(trainer.ref_model, batch)
    want, chosen, _ = prefopt.joint_dpo_loss(p[:, 0], p[:, 1], q[:, 0], q[:, 1], beta=trainer.beta,
                                             label_smoothing=0.1)
    assert loss.item() == pytest.approx(want.mean().item(), rel=1e-5)
    assert metrics["rewards/chosen"] == pytest.approx(chosen.mean().item(), rel=1e-4, abs=1e-6)
    trainer.args.max_steps = 2
    assert torch.isfinite(torch.tensor(trainer.train().training_loss))


def test_dove_with_one_prompt_is_dpo(tmp_path):
    """With chosen_prompt == rejected_prompt the prompt's log-probs cancel: DOVE is DPO's sigmoid loss."""
    dove = _joint_trainer(tmp_path / "dove", fx.joint_dataset(same_prompt=True))
    dpo = PrefoptDPOTrainer(model=fx.model(0), ref_model=fx.model(100),
                            args=fx.config(PrefoptDPOConfig, tmp_path / "dpo", loss_type="sigmoid"),
                            train_dataset=fx.dataset(), processing_class=fx.tokenizer())
    loss_dove, _ = dove.get_batch_loss_metrics(dove.model, fx.first_batch(dove))
    loss_dpo, _ = dpo.get_batch_loss_metrics(dpo.model, fx.first_batch(dpo))
    assert loss_dove.item() == pytest.approx(loss_dpo.item(), rel=1e-4)


def test_dove_needs_its_rows(tmp_path):
    with pytest.raises(ValueError, match=r"needs DOVE rows .* missing \['chosen_prompt', 'rejected_prompt'\]"):
        _joint_trainer(tmp_path, fx.dataset())


@pytest.mark.parametrize("loss_type", ["plackett_luce", "dove"])
def test_evaluate_logs_eval_metrics(loss_type, tmp_path):
    data = fx.joint_dataset() if loss_type == "dove" else fx.ranked_dataset()
    args = fx.config(PrefoptDPOConfig, tmp_path, loss_type=loss_type, per_device_eval_batch_size=3)
    trainer = PrefoptDPOTrainer(model=fx.model(0), ref_model=fx.model(100), args=args, train_dataset=data,
                                eval_dataset=data, processing_class=fx.tokenizer())
    metrics = trainer.evaluate()
    assert torch.isfinite(torch.tensor(metrics["eval_loss"]))
    key = "eval_rewards/accuracies" if loss_type == "dove" else "eval_ranking/accuracy"
    assert key in metrics, sorted(metrics)
