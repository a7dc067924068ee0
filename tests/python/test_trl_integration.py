"""prefopt.trl against stock TRL 0.28: the same loss and gradients for every TRL loss type (fp32, within 1e-6
relative), with and without PEFT LoRA; the options TRL computes differently (use_weighting, ld_alpha) against a
float64 reference written from their papers' definitions; the added TDPO loss types train and equal prefopt's own
loss API on float64 scores; the logits are never formed; unsupported set-ups are refused with clear errors."""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("trl", reason="trl is not installed (requirements.txt pins it)")
pytest.importorskip("peft", reason="peft is not installed (requirements.txt pins it)")

import peft  # noqa: E402
from trl import DPOConfig, DPOTrainer  # noqa: E402

import prefopt  # noqa: E402
from prefopt.trl import PrefoptDPOConfig, PrefoptDPOTrainer  # noqa: E402

import trl_integration_fixtures as fx  # noqa: E402

# fp32: the loss within 1e-6 relative; the whole gradient (every parameter's, as one vector) within 2e-6 in the
# 2-norm and each parameter's within 1e-5. Each of the two fp32 implementations is itself about 1e-6 from the
# float64 result (the model's own rounding; the worst measured difference between them is 1.2e-6, discopop with
# LoRA), so a tighter fp32 bound would test rounding luck. float64: every tensor within 1e-10, which shows that the
# two compute the same function.
TOL = {torch.float32: dict(loss=1e-6, whole=2e-6, each=1e-5),
       torch.float64: dict(loss=1e-10, whole=1e-10, each=1e-10)}

SINGLE = ["sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
          "aot_unpaired", "discopop", "apo_zero", "apo_down", "sft"]
CASES = {name: dict(loss_type=name) for name in SINGLE}
CASES["exo_pair"]["label_smoothing"] = 1e-3
CASES["sigmoid, label smoothing"] = dict(loss_type="sigmoid", label_smoothing=0.2)
CASES["mpo list with weights"] = dict(loss_type=["sigmoid", "bco_pair", "sft"], loss_weights=[0.8, 0.2, 1.0])
CASES["rpo_alpha"] = dict(loss_type="sigmoid", rpo_alpha=0.5)
CASES["ipo with hinge"] = dict(loss_type=["ipo", "hinge"])
CASES["reference_free"] = dict(loss_type="sigmoid", reference_free=True)
CASES["truncated keep_end"] = dict(loss_type="sigmoid", max_length=7, truncation_mode="keep_end")
CASES["truncated keep_start"] = dict(loss_type="sigmoid", max_length=7, truncation_mode="keep_start")
CASES["padding_free"] = dict(loss_type="sigmoid", padding_free=True)


WORST: dict = {}


def rel_error(got, want) -> float:
    """``|got - want| / |want|`` in the 2-norm, in float64."""
    got, want = got.detach().double().reshape(-1), want.detach().double().reshape(-1)
    size = want.norm().item()
    error = (got - want).norm().item()
    return error / size if size > 0 else error


def assert_rel_close(got, want, what, bound):
    """Within ``bound`` relative in the 2-norm: fp32 sums taken in another order differ by a few ulps of the largest
    terms, which an elementwise relative test would fail on entries that cancel to near 0. Records the worst ratio
    (printed with ``pytest -s``)."""
    ratio = rel_error(got, want)
    key = what.split(" ")[0]
    if ratio > WORST.get(key, (0.0, ""))[0]:
        WORST[key] = (ratio, what)
    assert ratio <= bound, f"{what}: |got - want| / |want| = {ratio:.2e} > {bound:.0e}"


@pytest.fixture(scope="module", autouse=True)
def _report_worst():
    yield
    print("\nprefopt.trl vs stock TRL, worst relative 2-norm difference: "
          + ", ".join(f"{k} {v[0]:.1e} ({v[1]})" for k, v in sorted(WORST.items())))


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


def _run(trainer, batches):
    """Loss, metrics and gradients of the last batch (earlier batches advance bco_pair's running mean)."""
    trainer.model.zero_grad(set_to_none=True)
    for batch in batches[:-1]:
        with torch.no_grad():
            trainer.get_batch_loss_metrics(trainer.model, batch)
    loss, metrics = trainer.get_batch_loss_metrics(trainer.model, batches[-1])
    loss.backward()
    return loss, metrics, _grads(trainer.model)


def _both(tmp_path, options, peft_config=None, policy_pair=None, dtype=torch.float32):
    (sp, sr), (pp, pr) = policy_pair or fx.copies()
    sp, pp = sp.to(dtype), pp.to(dtype)
    sr, pr = (None if m is None else m.to(dtype) for m in (sr, pr))
    stock = fx.trainer(DPOTrainer, fx.config(DPOConfig, tmp_path / "stock", **options), sp,
                       None if peft_config else sr)
    ours = fx.trainer(PrefoptDPOTrainer, fx.config(PrefoptDPOConfig, tmp_path / "ours", **options), pp,
                      None if peft_config else pr)
    loader = stock.get_train_dataloader()
    batches = [b for _, b in zip(range(2), loader)]
    return stock, ours, batches


def _compare(stock, ours, batches, *, skip_metrics=(), dtype=torch.float32):
    tol = TOL[dtype]
    loss_s, metrics_s, grads_s = _run(stock, batches)
    loss_p, metrics_p, grads_p = _run(ours, batches)
    assert torch.isfinite(loss_s)
    tag = str(dtype).replace("torch.", "")
    assert_rel_close(loss_p, loss_s, f"loss/{tag}", tol["loss"])
    assert grads_s and grads_s.keys() == grads_p.keys()
    whole_p = torch.cat([grads_p[n].reshape(-1) for n in grads_s])
    whole_s = torch.cat([grads_s[n].reshape(-1) for n in grads_s])
    assert_rel_close(whole_p, whole_s, f"gradient/{tag} (all parameters)", tol["whole"])
    for name in grads_s:
        assert_rel_close(grads_p[name], grads_s[name], f"each-parameter/{tag} {name}", tol["each"])
    for key, want in metrics_s.items():
        if key.split("/")[0] in skip_metrics:
            continue
        got = metrics_p[key]
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6), f"metric {key}: {got} vs TRL {want}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("case", list(CASES))
def test_loss_and_gradients_equal_stock_trl(case, dtype, tmp_path):
    options = CASES[case]
    stock, ours, batches = _both(tmp_path, options, dtype=dtype)
    skip = set()
    # Where TRL's metrics differ on purpose (docs/trl.md): with several loss types TRL sums their rewards with the
    # loss weights, and with reference_free it still subtracts the reference; prefopt's rewards are beta * the
    # log-ratio it optimizes. With truncation a sequence can start with a completion token; TRL's mean logits then
    # also take in the last position (its roll wraps around), prefopt's only the positions that predict a token.
    if not isinstance(options["loss_type"], str) or options.get("reference_free"):
        skip.add("rewards")
    if "max_length" in options:
        skip.add("logits")
    _compare(stock, ours, batches, skip_metrics=skip, dtype=dtype)


def test_bf16_mixed_precision_is_close_to_stock_trl(tmp_path):
    """TRL's default bf16=True (autocast): the head's matmul runs in bf16 like the model's own lm_head."""
    stock, ours, batches = _both(tmp_path, dict(loss_type="sigmoid", bf16=True))
    with stock.accelerator.autocast():
        loss_s, metrics_s = stock.get_batch_loss_metrics(stock.model, batches[0])
    with ours.accelerator.autocast():
        loss_p, metrics_p = ours.get_batch_loss_metrics(ours.model, batches[0])
    assert loss_p.item() == pytest.approx(loss_s.item(), rel=2e-2)
    assert metrics_p["logps/chosen"] == pytest.approx(metrics_s["logps/chosen"], rel=2e-2)


def _peft_pair():
    def lora(seed):
        torch.manual_seed(seed)
        config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "gate_proj"],
                                 init_lora_weights=False, lora_dropout=0.0)
        return peft.get_peft_model(fx.model(0), config)

    base = lora(5)
    return (copy.deepcopy(base), None), (copy.deepcopy(base), None)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("loss_type", SINGLE)
def test_peft_lora_reference_is_the_adapters_off(loss_type, dtype, tmp_path):
    options = dict(CASES[loss_type])
    stock, ours, batches = _both(tmp_path, options, peft_config=True, policy_pair=_peft_pair(), dtype=dtype)
    assert stock.is_peft_model and ours.is_peft_model and ours.ref_model is None
    _compare(stock, ours, batches, dtype=dtype)
    trainable = [n for n, p in ours.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_the_logits_are_never_formed(tmp_path):
    (_, _), (pp, pr) = fx.copies()
    ours = fx.trainer(PrefoptDPOTrainer, fx.config(PrefoptDPOConfig, tmp_path, loss_type="sigmoid"), pp, pr)
    widths = []
    for m in (ours.model, ours.ref_model):
        m.lm_head.register_forward_hook(lambda mod, inp, out: widths.append(out.shape[1]))
    batch = fx.first_batch(ours)
    ours.get_batch_loss_metrics(ours.model, batch)
    assert widths and set(widths) == {1}, f"the LM head ran on {widths} positions per sequence, expected 1"


# ---------------------------------------------------------------------------------------------------------------
# Options TRL 0.28 computes differently on purpose (docs/trl.md): checked against float64 definitions.
# ---------------------------------------------------------------------------------------------------------------


def _float64_log_softmax(model, batch, trainer):
    """``(logp, ids, scored)``: the model's full next-token log-softmax in float64 ``[2B, T-1, V]``, the token ids
    ``[2B, T]`` and which positions predict a completion token ``[2B, T-1]``, laid out by TRL's own
    concatenated_inputs + flush_left (the layout is TRL's; the math below is the papers')."""
    from trl.trainer.utils import flush_left

    cat = trainer.concatenated_inputs(batch, padding_value=trainer.pad_token_id)
    ids = torch.cat((cat["prompt_input_ids"], cat["completion_input_ids"]), 1)
    mask = torch.cat((cat["prompt_attention_mask"], cat["completion_attention_mask"]), 1)
    loss_mask = torch.cat((torch.zeros_like(cat["prompt_attention_mask"]), cat["completion_attention_mask"]), 1)
    mask, ids, loss_mask = flush_left(mask, ids, loss_mask)
    with torch.no_grad():
        logits = model(ids, attention_mask=mask).logits.double()
    return torch.log_softmax(logits[:, :-1], -1), ids, loss_mask[:, 1:].bool()


def _float64_tokens(model, batch, trainer):
    """Per sequence (chosen first): its completion tokens' log-probs and log sum_v p_v^2, in float64."""
    logp, ids, scored = _float64_log_softmax(model, batch, trainer)
    token = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    collision = torch.logsumexp(2 * logp, -1)
    return [(token[i][scored[i]], collision[i][scored[i]]) for i in range(ids.size(0))]


def test_use_weighting_is_wpo_eq2(tmp_path):
    (_, _), (pp, pr) = fx.copies()
    ours = fx.trainer(PrefoptDPOTrainer, fx.config(PrefoptDPOConfig, tmp_path, loss_type="sigmoid",
                                                   use_weighting=True), pp, pr)
    batch = fx.first_batch(ours)
    out = ours.concatenated_forward(ours.model, batch)
    tokens = _float64_tokens(ours.model, batch, ours)
    b = batch["prompt_input_ids"].shape[0]
    w = torch.stack([(t - c).mean() for t, c in tokens])  # WPO eq. 2: mean_t (log p_t - log sum_v p_v^2)
    want = torch.clamp(torch.exp(w[:b] + w[b:]), max=1.0)
    torch.testing.assert_close(out["policy_weights"].double(), want, rtol=1e-5, atol=1e-6)
    sums = torch.stack([t.sum() for t, _ in tokens])
    torch.testing.assert_close(out["chosen_logps"].double(), sums[:b], rtol=1e-5, atol=1e-5)


def test_ld_alpha_is_the_papers_length_desensitisation(tmp_path):
    alpha = 0.3
    (_, _), (pp, pr) = fx.copies()
    ours = fx.trainer(PrefoptDPOTrainer, fx.config(PrefoptDPOConfig, tmp_path, loss_type="sigmoid", ld_alpha=alpha),
                      pp, pr)
    batch = fx.first_batch(ours)
    out = ours.concatenated_forward(ours.model, batch)
    tokens = _float64_tokens(ours.model, batch, ours)
    b = batch["prompt_input_ids"].shape[0]
    want = []
    for i in range(2 * b):
        t = tokens[i][0]
        shared = min(tokens[i % b][0].numel(), tokens[i % b + b][0].numel())
        want.append(t[:shared].sum() + alpha * t[shared:].sum())
    want = torch.stack(want)
    torch.testing.assert_close(torch.cat((out["chosen_logps"], out["rejected_logps"])).double(), want, rtol=1e-5,
                               atol=1e-5)
    assert not torch.allclose(want, torch.stack([t.sum() for t, _ in tokens])), "alpha had no effect: a vacuous case"


# ---------------------------------------------------------------------------------------------------------------
# The loss types prefopt adds
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["tdpo1", "tdpo2"])
def test_tdpo_equals_prefopts_loss_on_float64_scores_and_trains(variant, tmp_path):
    (_, _), (pp, pr) = fx.copies()
    ours = fx.trainer(PrefoptDPOTrainer, fx.config(PrefoptDPOConfig, tmp_path, loss_type=variant,
                                                   prefopt_loss_options={variant: {"alpha": 0.7}},
                                                   beta=0.2, prefopt_chunk_bytes=512), pp, pr)
    batch = fx.first_batch(ours)
    loss, metrics = ours.get_batch_loss_metrics(ours.model, batch)
    # float64 reference: scores and sequential KL(ref || policy) from the full logits of both models.
    pol = _float64_tokens(ours.model, batch, ours)
    ref = _float64_tokens(ours.ref_model, batch, ours)
    b = batch["prompt_input_ids"].shape[0]

    lp_pol, _, scored = _float64_log_softmax(ours.model, batch, ours)
    lp_ref, _, _ = _float64_log_softmax(ours.ref_model, batch, ours)
    kl_tok = (lp_ref.exp() * (lp_ref - lp_pol)).sum(-1) * scored
    kl = kl_tok.sum(-1)
    sp = torch.stack([t.sum() for t, _ in pol])
    sr = torch.stack([t.sum() for t, _ in ref])
    want, _, _ = prefopt.tdpo_loss(sp[:b], sp[b:], sr[:b], sr[b:], kl[:b], kl[b:], variant=variant, beta=0.2,
                                   alpha=0.7)
    assert loss.item() == pytest.approx(want.mean().item(), rel=1e-5)
    assert metrics["kl/chosen"] == pytest.approx(kl[:b].mean().item(), rel=1e-4, abs=1e-6)
    # A few optimizer steps: finite losses, parameters move.
    before = [p.detach().clone() for p in ours.model.parameters()]
    ours.args.max_steps = 3
    result = ours.train()
    assert torch.isfinite(torch.tensor(result.training_loss))
    assert any(not torch.equal(a, p.detach()) for a, p in zip(before, ours.model.parameters()))


def test_a_plain_dpo_config_takes_the_defaults(tmp_path):
    (_, _), (pp, pr) = fx.copies()
    with pytest.raises(ValueError, match="adds SPO's degree term to an alignment loss"):
        fx.trainer(PrefoptDPOTrainer, fx.config(DPOConfig, tmp_path, loss_type="spo"), pp, pr)
    ours = fx.trainer(PrefoptDPOTrainer, fx.config(DPOConfig, tmp_path, loss_type="tdpo2"), pp, pr)
    loss, metrics = ours.get_batch_loss_metrics(ours.model, fx.first_batch(ours))
    assert torch.isfinite(loss) and "kl/chosen" in metrics


def test_tdpo_kl_gradient_matches_autograd_through_full_logits(tmp_path):
    (_, _), (pp, pr) = fx.copies()
    ours = fx.trainer(PrefoptDPOTrainer, fx.config(PrefoptDPOConfig, tmp_path, loss_type="tdpo1",
                                                   prefopt_chunk_bytes=256), pp, pr)
    batch = fx.first_batch(ours)
    rows = ours._rows(ours.model, batch)
    ref_rows = ours._reference_rows(batch)
    from prefopt.trl import fused_forward as ff
    kl = ff.token_kl(rows, ref_rows, chunk_bytes=256)
    (g_fused,) = torch.autograd.grad(kl.sum(), rows.weight, retain_graph=True)
    logits = rows.hidden @ rows.weight.t()
    ref_logp = torch.log_softmax(ref_rows.hidden @ ref_rows.weight.t(), -1).detach()
    plain = (ref_logp.exp() * (ref_logp - torch.log_softmax(logits, -1))).sum()
    (g_plain,) = torch.autograd.grad(plain, rows.weight)
    torch.testing.assert_close(g_fused, g_plain, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------------------------------


def test_unknown_loss_type_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'simpo' is not a loss type of prefopt.trl"):
        fx.config(PrefoptDPOConfig, tmp_path, loss_type="simpo")


def test_exo_pair_without_label_smoothing_says_what_trl_does(tmp_path):
    with pytest.raises(ValueError, match="TRL 0.28 silently uses 1e-3"):
        fx.config(PrefoptDPOConfig, tmp_path, loss_type="exo_pair")


def test_tdpo_with_precomputed_reference_is_refused(tmp_path):
    with pytest.raises(ValueError, match="precompute_ref_log_probs"):
        fx.config(PrefoptDPOConfig, tmp_path, loss_type="tdpo2", precompute_ref_log_probs=True)


def test_lora_on_the_lm_head_is_refused(tmp_path):
    torch.manual_seed(0)
    config = peft.LoraConfig(r=4, target_modules=["q_proj", "lm_head"], lora_dropout=0.0)
    model = peft.get_peft_model(fx.model(0), config)
    with pytest.raises(ValueError, match="leave lm_head out of the PEFT config"):
        fx.trainer(PrefoptDPOTrainer, fx.config(PrefoptDPOConfig, tmp_path), model, None)


def test_liger_and_prefopt_together_are_refused(tmp_path):
    (_, _), (pp, pr) = fx.copies()
    with pytest.raises(ValueError, match="use_liger_kernel"):
        fx.trainer(PrefoptDPOTrainer, fx.config(DPOConfig, tmp_path, use_liger_kernel=True), pp, pr)
