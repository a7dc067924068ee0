"""Tests of prefopt.reference_free (SimPO, CPO, ORPO) and their operators (torch.ops.prefopt.simpo_loss, cpo_loss,
orpo_loss).

Parity with TRL 0.28.0 itself: TRL's own ``CPOTrainer.cpo_loss`` / ``get_batch_loss_metrics`` and
``ORPOTrainer.odds_ratio_loss`` / ``get_batch_loss_metrics`` are called with a minimal stand-in for the trainer
(never re-derived here) on random inputs, with TRL's defaults and with other options, in float32 and float64:
per-pair losses, rewards, the batch loss and every metric TRL logs except the logits ones (prefopt's losses never
see logits). Where prefopt differs from TRL on purpose, the test says so and checks the documented relation.
Then opcheck on each operator, gradcheck in float64, and bad input with its message.
"""

import re
import types

import pytest
import torch
from torch.library import opcheck

import prefopt  # noqa: F401  (loads libprefopt.so)
from prefopt import reference_free as rf
from trl_parity import ParityLog, accelerator, import_trl

# Tolerances against TRL: different but equally valid float orders of operations.
TOL = {torch.float32: dict(atol=2e-5, rtol=2e-6), torch.float64: dict(atol=1e-11, rtol=1e-12)}
# Metrics are float32 in prefopt whatever the input dtype; TRL's are Python floats of the input dtype.
METRIC_TOL = dict(atol=2e-5, rtol=2e-6)
PAIR_METRICS = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen",
                "logps/rejected"]


@pytest.fixture(scope="module")
def parity():
    log = ParityLog("test_reference_free")
    yield log
    log.dump()


@pytest.fixture(scope="module")
def CPOTrainer():
    import_trl()
    from trl.experimental.cpo import CPOTrainer

    return CPOTrainer


@pytest.fixture(scope="module")
def ORPOTrainer():
    import_trl()
    from trl.experimental.orpo import ORPOTrainer

    return ORPOTrainer


def make_batch(batch=16, dtype=torch.float32, seed=0):
    """Summed completion log-probs (about -1.5 nats per token, so every mean is < 0), lengths and a chosen NLL."""
    g = torch.Generator().manual_seed(seed)
    lc = torch.randint(1, 41, (batch,), generator=g)
    lr = torch.randint(1, 41, (batch,), generator=g)
    pc = (-1.5 * lc + 2 * torch.randn(batch, generator=g, dtype=torch.float64)).clamp(max=-0.05)
    pr = (-1.7 * lr + 2 * torch.randn(batch, generator=g, dtype=torch.float64)).clamp(max=-0.05)
    nll = torch.tensor(1.3 + torch.rand((), generator=g, dtype=torch.float64).item(), dtype=dtype)
    return pc.to(dtype), pr.to(dtype), lc, lr, nll


def trl_logits(n, dtype):
    return torch.zeros(n, 2, 3, dtype=dtype)  # TRL logs their mean; prefopt's losses never see logits


# ---------------------------------------------------------------------------------------------------------
# CPO (and CPO-SimPO, AlphaPO) against TRL's CPOTrainer
# ---------------------------------------------------------------------------------------------------------


def cpo_standin(CPOTrainer, *, loss_type, beta, label_smoothing, cpo_alpha, simpo_gamma, alpha, forward):
    """The attributes CPOTrainer.cpo_loss and get_batch_loss_metrics read; forward is concatenated_forward's output."""
    s = types.SimpleNamespace(loss_type=loss_type, beta=beta, label_smoothing=label_smoothing, cpo_alpha=cpo_alpha,
                              simpo_gamma=simpo_gamma, alpha=alpha, accelerator=accelerator(), aux_loss_enabled=False)
    s.cpo_loss = lambda c, r: CPOTrainer.cpo_loss(s, c, r)
    s.concatenated_forward = lambda model, batch: forward
    return s


# (loss_type, beta, label_smoothing, cpo_alpha, simpo_gamma, alpha); the first is TRL's CPOConfig default.
CPO_CONFIGS = [
    ("sigmoid", 0.1, 0.0, 1.0, 0.5, 0.0),
    ("sigmoid", 0.5, 0.2, 0.0, 0.5, 0.0),
    ("sigmoid", 0.1, 0.0, 1.0, 0.5, 0.02),
    ("hinge", 0.1, 0.0, 1.0, 0.5, 0.0),
    ("hinge", 0.3, 0.0, 0.5, 0.5, 0.0),
    ("ipo", 0.1, 0.0, 1.0, 0.5, 0.0),
    ("ipo", 1.0, 0.0, 0.0, 0.5, 0.3),
    ("simpo", 0.1, 0.0, 1.0, 0.5, 0.0),  # CPO-SimPO with TRL's defaults
    ("simpo", 2.5, 0.1, 0.05, 1.2, 0.0),
    ("simpo", 2.0, 0.0, 0.0, 0.5, 0.25),  # TRL's loss_type="alphapo": simpo, cpo_alpha 0, alpha != 0
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("config", CPO_CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_cpo_matches_trl(CPOTrainer, parity, dtype, config):
    loss_type, beta, eps, cpo_alpha, gamma, alpha = config
    pc, pr, lc, lr, nll = make_batch(dtype=dtype)
    averaged = loss_type in ("ipo", "simpo")  # TRL's concatenated_forward: average_log_prob for ipo and simpo
    lc_in, lr_in = (pc / lc.to(dtype), pr / lr.to(dtype)) if averaged else (pc, pr)
    trl_nll = nll if cpo_alpha != 0 else torch.tensor(0.0)  # TRL computes no NLL when cpo_alpha == 0
    s = cpo_standin(CPOTrainer, loss_type=loss_type, beta=beta, label_smoothing=eps, cpo_alpha=cpo_alpha,
                    simpo_gamma=gamma, alpha=alpha, forward=(lc_in, lr_in, trl_logits(16, dtype),
                                                             trl_logits(16, dtype), trl_nll))
    trl_losses, trl_chosen, trl_rejected = CPOTrainer.cpo_loss(s, lc_in, lr_in)
    trl_loss, trl_metrics = CPOTrainer.get_batch_loss_metrics(s, None, {})

    out = rf.cpo_loss(pc, pr, chosen_lengths=lc, rejected_lengths=lr, chosen_nll=nll if cpo_alpha else None,
                      loss_type=loss_type, beta=beta, label_smoothing=eps, cpo_alpha=cpo_alpha, simpo_gamma=gamma,
                      alpha=alpha)
    name = "cpo" if not alpha else "cpo+alphapo"
    tol = TOL[dtype]
    # prefopt adds cpo_alpha * nll to every pair, so its per-pair losses are TRL's plus that constant and their
    # mean is TRL's loss = losses.mean() + cpo_alpha * nll_loss.
    parity.close(name, dtype, "losses", out.losses, trl_losses + cpo_alpha * trl_nll, **tol)
    parity.close(name, dtype, "loss", out.losses.mean(), trl_loss, **tol)
    parity.close(name, dtype, "rewards", torch.cat([out.chosen_rewards, out.rejected_rewards]),
                 torch.cat([trl_chosen, trl_rejected]), **tol)
    for metric in PAIR_METRICS:
        parity.close(name, dtype, "metrics", out.metrics[metric], trl_metrics[metric], **METRIC_TOL)
    if cpo_alpha:
        parity.close(name, dtype, "metrics", out.metrics["nll_loss"], trl_metrics["nll_loss"], **METRIC_TOL)
    else:
        # Difference on purpose: with cpo_alpha = 0 and no chosen_nll, prefopt logs no nll_loss; TRL logs 0.
        assert "nll_loss" not in out.metrics and trl_metrics["nll_loss"] == 0.0


@pytest.mark.parametrize("loss_type", ["hinge", "ipo"])
def test_cpo_label_smoothing_on_hinge_and_ipo_is_an_error_where_trl_ignores_it(CPOTrainer, loss_type):
    # Difference on purpose: TRL warns and ignores label_smoothing for hinge and ipo; prefopt raises, so a
    # setting that has no effect is never silently accepted. The TRL number is the eps = 0 number.
    pc, pr, lc, lr, nll = make_batch(dtype=torch.float64)
    lc_in, lr_in = (pc / lc, pr / lr) if loss_type == "ipo" else (pc, pr)
    kwargs = dict(loss_type=loss_type, beta=0.1, cpo_alpha=0.0, simpo_gamma=0.5, alpha=0.0, forward=None)
    smoothed = CPOTrainer.cpo_loss(cpo_standin(CPOTrainer, label_smoothing=0.2, **kwargs), lc_in, lr_in)[0]
    plain = CPOTrainer.cpo_loss(cpo_standin(CPOTrainer, label_smoothing=0.0, **kwargs), lc_in, lr_in)[0]
    torch.testing.assert_close(smoothed, plain, atol=0, rtol=0)
    ours = rf.cpo_loss(pc, pr, chosen_lengths=lc, rejected_lengths=lr, loss_type=loss_type, cpo_alpha=0.0)
    torch.testing.assert_close(ours.losses, plain, **TOL[torch.float64])
    msg = f"label_smoothing must be 0 for loss_type {loss_type} (only sigmoid and simpo use it), got 0.2"
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        rf.cpo_loss(pc, pr, chosen_lengths=lc, rejected_lengths=lr, loss_type=loss_type, cpo_alpha=0.0,
                    label_smoothing=0.2)


# ---------------------------------------------------------------------------------------------------------
# SimPO against TRL's CPOTrainer(loss_type="simpo", cpo_alpha=0)
# ---------------------------------------------------------------------------------------------------------

# (beta, gamma, label_smoothing); the first is the SimPO paper's default and prefopt's.
SIMPO_CONFIGS = [(2.0, 0.5, 0.0), (2.5, 1.4, 0.15), (10.0, 3.0, 0.0)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("config", SIMPO_CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_simpo_matches_trl(CPOTrainer, parity, dtype, config):
    beta, gamma, eps = config
    pc, pr, lc, lr, _ = make_batch(dtype=dtype, seed=1)
    mc, mr = pc / lc.to(dtype), pr / lr.to(dtype)
    s = cpo_standin(CPOTrainer, loss_type="simpo", beta=beta, label_smoothing=eps, cpo_alpha=0.0, simpo_gamma=gamma,
                    alpha=0.0, forward=(mc, mr, trl_logits(16, dtype), trl_logits(16, dtype), torch.tensor(0.0)))
    trl_losses, trl_chosen, trl_rejected = CPOTrainer.cpo_loss(s, mc, mr)
    trl_loss, trl_metrics = CPOTrainer.get_batch_loss_metrics(s, None, {})

    out = rf.simpo_loss(pc, pr, lc, lr, beta=beta, gamma=gamma, label_smoothing=eps)
    tol = TOL[dtype]
    parity.close("simpo", dtype, "losses", out.losses, trl_losses, **tol)
    parity.close("simpo", dtype, "loss", out.losses.mean(), trl_loss, **tol)
    parity.close("simpo", dtype, "rewards", torch.cat([out.chosen_rewards, out.rejected_rewards]),
                 torch.cat([trl_chosen, trl_rejected]), **tol)
    for metric in PAIR_METRICS:
        parity.close("simpo", dtype, "metrics", out.metrics[metric], trl_metrics[metric], **METRIC_TOL)
    assert sorted(out.metrics) == sorted(PAIR_METRICS)


# ---------------------------------------------------------------------------------------------------------
# ORPO against TRL's ORPOTrainer
# ---------------------------------------------------------------------------------------------------------


def orpo_standin(ORPOTrainer, *, beta, forward):
    s = types.SimpleNamespace(beta=beta, accelerator=accelerator(), aux_loss_enabled=False)
    s.odds_ratio_loss = lambda c, r: ORPOTrainer.odds_ratio_loss(s, c, r)
    s.concatenated_forward = lambda model, batch: forward
    return s


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("beta", [0.1, 0.25, 1.0])  # 0.1 is TRL's ORPOConfig default
@pytest.mark.parametrize("extreme", [False, True], ids=["random", "near-0-and-far"])
def test_orpo_matches_trl(ORPOTrainer, parity, dtype, beta, extreme):
    pc, pr, lc, lr, nll = make_batch(dtype=dtype, seed=2)
    if extreme:  # mean log-probs on both sides of -ln 2, next to 0 and far below
        pc = torch.tensor([-1e-7, -0.5, -0.7, -0.69314, -3.0, -60.0, -1e-3, -20.0], dtype=dtype)
        pr = torch.tensor([-2.0, -1e-4, -0.69316, -0.8, -90.0, -1e-6, -1e-3, -0.01], dtype=dtype)
        lc = lr = torch.ones(8, dtype=torch.long)
    mc, mr = pc / lc.to(dtype), pr / lr.to(dtype)
    n = mc.numel()
    s = orpo_standin(ORPOTrainer, beta=beta, forward=(mc, mr, trl_logits(n, dtype), trl_logits(n, dtype), nll))
    trl_losses, trl_chosen, trl_rejected, trl_ratio, trl_log_odds = ORPOTrainer.odds_ratio_loss(s, mc, mr)
    trl_loss, trl_metrics = ORPOTrainer.get_batch_loss_metrics(s, None, {})

    out = rf.orpo_loss(pc, pr, lc, lr, nll, beta=beta)
    # Difference on purpose: TRL casts the log-probs to float32 even for float64 input; prefopt computes the
    # log odds in float64 then. So float64 agrees to float32 precision only.
    tol = TOL[torch.float32]
    # Documented relation: TRL's per-pair `losses` are beta * logsigmoid(log_odds) and its loss is
    # nll_loss - losses.mean(); prefopt's per-pair losses are nll - beta * logsigmoid(log_odds).
    parity.close("orpo", dtype, "losses", out.losses, nll - trl_losses, **tol)
    parity.close("orpo", dtype, "loss", out.losses.mean(), trl_loss, **tol)
    parity.close("orpo", dtype, "rewards", torch.cat([out.chosen_rewards, out.rejected_rewards]),
                 torch.cat([trl_chosen, trl_rejected]), **tol)
    for metric in PAIR_METRICS + ["nll_loss", "log_odds_ratio", "log_odds_chosen"]:
        parity.close("orpo", dtype, "metrics", out.metrics[metric], trl_metrics[metric], **METRIC_TOL)
    parity.close("orpo", dtype, "metrics", out.metrics["log_odds_ratio"], trl_ratio, **METRIC_TOL)
    parity.close("orpo", dtype, "metrics", out.metrics["log_odds_chosen"], trl_log_odds, **METRIC_TOL)
    assert torch.isfinite(out.losses).all()


# ---------------------------------------------------------------------------------------------------------
# dtypes, gradients, opcheck
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_outputs_keep_the_dtype_and_match_float64(dtype):
    pc, pr, lc, lr, nll = make_batch(dtype=dtype)
    ref_inputs = [t.double() for t in (pc, pr)]
    tol = dict(atol=2e-2, rtol=2e-2) if dtype == torch.bfloat16 else dict(atol=3e-3, rtol=3e-3)
    for fn, kwargs in [
        (lambda a, b, n: rf.simpo_loss(a, b, lc, lr), {}),
        (lambda a, b, n: rf.cpo_loss(a, b, chosen_nll=n), {}),
        (lambda a, b, n: rf.orpo_loss(a, b, lc, lr, n), {}),
    ]:
        low = fn(pc, pr, nll)
        high = fn(*ref_inputs, nll.double())
        assert low.losses.dtype == dtype and low.chosen_rewards.dtype == dtype
        assert all(v.dtype == torch.float32 and v.dim() == 0 for v in low.metrics.values())
        torch.testing.assert_close(low.losses.double(), high.losses, **tol)


def test_gradients_and_detached_outputs():
    pc, pr, lc, lr, nll = make_batch(dtype=torch.float64)
    pc.requires_grad_()
    nll.requires_grad_()
    out = rf.cpo_loss(pc, pr, chosen_nll=nll, cpo_alpha=0.7)
    assert out.losses.requires_grad and not out.chosen_rewards.requires_grad
    assert not any(v.requires_grad for v in out.metrics.values())
    out.losses.mean().backward()
    torch.testing.assert_close(nll.grad, torch.tensor(0.7, dtype=torch.float64))  # d mean(losses) / d nll


@pytest.mark.parametrize("which", ["simpo", "cpo-sigmoid", "cpo-hinge", "cpo-ipo", "cpo-simpo-alphapo", "orpo"])
def test_gradcheck(which):
    pc, pr, lc, lr, nll = make_batch(batch=5, dtype=torch.float64, seed=3)
    inputs = tuple(t.clone().requires_grad_() for t in (pc, pr, nll))

    def fn(pc, pr, nll):
        if which == "simpo":
            return rf.simpo_loss(pc, pr, lc, lr, label_smoothing=0.1).losses
        if which == "orpo":
            return rf.orpo_loss(pc, pr, lc, lr, nll, beta=0.3).losses
        loss_type = which.split("-")[1]
        alpha = 0.2 if which.endswith("alphapo") else 0.0
        return rf.cpo_loss(pc, pr, chosen_lengths=lc, rejected_lengths=lr, chosen_nll=nll, loss_type=loss_type,
                           alpha=alpha).losses

    assert torch.autograd.gradcheck(fn, inputs)


# Each operator and loss type once, the dtypes spread over them (opcheck compiles; a full grid would be slow).
OPCHECK_CASES = [
    ("simpo", torch.float32, dict(beta=2.0, gamma=0.5, label_smoothing=0.1)),
    ("cpo", torch.float64, dict(loss_type="sigmoid", label_smoothing=0.1, cpo_alpha=0.5)),
    ("cpo", torch.bfloat16, dict(loss_type="hinge", alpha=0.1)),
    ("cpo", torch.float32, dict(loss_type="ipo", beta=0.5, cpo_alpha=0.0)),
    ("cpo", torch.float32, dict(loss_type="simpo", beta=2.0, alpha=0.1)),
    ("orpo", torch.bfloat16, dict(beta=0.2)),
    ("orpo", torch.float64, dict()),
]


@pytest.mark.parametrize("op,dtype,kwargs", OPCHECK_CASES, ids=lambda v: str(v).replace("torch.", ""))
def test_opcheck(op, dtype, kwargs):
    pc, pr, lc, lr, nll = make_batch(batch=4, dtype=dtype)
    pc.requires_grad_()
    pr.requires_grad_()
    kwargs = dict(kwargs, check_finite=False)  # the finiteness checks are data-dependent .item() calls
    if op == "simpo":
        opcheck(torch.ops.prefopt.simpo_loss.default, (pc, pr, lc, lr), kwargs)
    elif op == "orpo":
        opcheck(torch.ops.prefopt.orpo_loss.default, (pc, pr, lc, lr, nll), kwargs)
    else:
        tensors = dict(chosen_lengths=lc, rejected_lengths=lr, chosen_nll=nll if kwargs.get("cpo_alpha", 1.0) else None)
        opcheck(torch.ops.prefopt.cpo_loss.default, (pc, pr), dict(kwargs, **tensors))


# ---------------------------------------------------------------------------------------------------------
# Bad input: the error names the argument
# ---------------------------------------------------------------------------------------------------------


def raises(msg, fn, exc=RuntimeError):
    with pytest.raises(exc, match=re.escape(msg)):
        fn()


def test_bad_input_messages():
    pc, pr, lc, lr, nll = make_batch(batch=4)
    raises("policy_rejected_logps must have shape [B] matching policy_chosen_logps [4], got [3]",
           lambda: rf.simpo_loss(pc, pr[:3], lc, lr))
    raises("policy_rejected_logps must have the dtype of policy_chosen_logps (Float), got Double",
           lambda: rf.cpo_loss(pc, pr.double(), chosen_nll=nll))
    raises("chosen_lengths must have shape [B] matching policy_chosen_logps [4], got [2]",
           lambda: rf.orpo_loss(pc, pr, lc[:2], lr, nll))
    raises("chosen_lengths is required by loss_type ipo (completion token counts, [B])",
           lambda: rf.cpo_loss(pc, pr, loss_type="ipo", cpo_alpha=0.0))
    raises("rejected_lengths is required by loss_type simpo",
           lambda: rf.cpo_loss(pc, pr, chosen_lengths=lc, loss_type="simpo", cpo_alpha=0.0))
    raises("chosen_nll is required by cpo_alpha > 0", lambda: rf.cpo_loss(pc, pr))
    raises("loss_type must be one of: sigmoid, hinge, ipo, simpo; got 'alphapo'",
           lambda: rf.cpo_loss(pc, pr, chosen_nll=nll, loss_type="alphapo"))
    for beta in (0.0, -0.1, float("inf"), float("nan")):
        raises("beta must be in (0, ", lambda: rf.simpo_loss(pc, pr, lc, lr, beta=beta))
        raises("beta must be in (0, ", lambda: rf.cpo_loss(pc, pr, chosen_nll=nll, beta=beta))
        raises("beta must be in (0, ", lambda: rf.orpo_loss(pc, pr, lc, lr, nll, beta=beta))
    raises("label_smoothing must be in [0, 0.5], got 0.6", lambda: rf.simpo_loss(pc, pr, lc, lr, label_smoothing=0.6))
    raises("label_smoothing (for loss_type simpo) must be in [0, 0.5], got -0.1",
           lambda: rf.cpo_loss(pc, pr, chosen_lengths=lc, rejected_lengths=lr, chosen_nll=nll, loss_type="simpo",
                               label_smoothing=-0.1))
    raises("cpo_alpha must be finite and >= 0, got -1", lambda: rf.cpo_loss(pc, pr, chosen_nll=nll, cpo_alpha=-1))
    bad = pc.clone()
    bad[1] = float("nan")
    raises("policy_chosen_logps must be finite, got nan at index 1", lambda: rf.orpo_loss(bad, pr, lc, lr, nll))
    bad = pr.clone()
    bad[3] = float("-inf")
    raises("policy_rejected_logps must be finite, got -inf at index 3", lambda: rf.simpo_loss(pc, bad, lc, lr))
    raises("chosen_nll must be finite, got inf at index 0",
           lambda: rf.cpo_loss(pc, pr, chosen_nll=torch.tensor(float("inf"))))
    raises("chosen_lengths must hold finite token counts >= 0", lambda: rf.simpo_loss(pc, pr, -lc, lr))
    positive = pc.clone()
    positive[0] = 3.0
    raises("policy_chosen_logps / chosen_lengths must be <= 0 (a mean token log-prob), got 3 at index 0",
           lambda: rf.orpo_loss(positive, pr, torch.ones(4), lr, nll))
    raises("chosen_nll is None", lambda: rf.orpo_loss(pc, pr, lc, lr, None), ValueError)
    raises("chosen_lengths is None", lambda: rf.simpo_loss(pc, pr, None, lr), ValueError)
    with pytest.raises(TypeError):
        rf.cpo_loss(pc, pr, lc)  # options and optional tensors are keyword-only


def test_nan_propagates_when_not_checked():
    pc, pr, lc, lr, nll = make_batch(batch=4)
    pc[2] = float("nan")
    out = rf.simpo_loss(pc, pr, lc, lr, check_finite=False)
    assert torch.isnan(out.losses[2]) and torch.isfinite(out.losses[[0, 1, 3]]).all()
    out = rf.orpo_loss(pc, pr, lc, lr, nll, check_finite=False)
    assert torch.isnan(out.losses[2]) and torch.isfinite(out.losses[[0, 1, 3]]).all()


@pytest.mark.cuda
def test_cuda_matches_cpu(cuda):
    pc, pr, lc, lr, nll = make_batch()
    cpu = rf.orpo_loss(pc, pr, lc, lr, nll)
    gpu = rf.orpo_loss(pc.to(cuda), pr.to(cuda), lc.to(cuda), lr.to(cuda), nll.to(cuda))
    torch.testing.assert_close(gpu.losses.cpu(), cpu.losses, **TOL[torch.float32])
    for name, value in cpu.metrics.items():
        torch.testing.assert_close(gpu.metrics[name].cpu(), value, **METRIC_TOL)
