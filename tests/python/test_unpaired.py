"""Tests of prefopt.unpaired.kto_loss and its operator (torch.ops.prefopt.kto_loss): KTO and apo_zero_unpaired.

Parity with TRL 0.28.0 itself: TRL's own ``KTOTrainer.kto_loss`` and ``KTOTrainer.get_batch_loss_metrics`` (the
latter with its precomputed-reference path, and ``forward`` stubbed to return the policy log-probs) are called
with a minimal stand-in for the trainer on random inputs, with TRL's defaults and with other options, in float32
and float64: per-example losses, rewards, the KL baseline, the batch loss and the metrics TRL stores. TRL orders
the losses desirable-first; prefopt keeps input order, so the test compares ``losses[labels]`` and
``losses[~labels]`` with TRL's two halves. Then opcheck, gradcheck in float64 and bad input with its message.
"""

import re
import types

import pytest
import torch
from torch.library import opcheck

import prefopt  # noqa: F401  (loads libprefopt.so)
from prefopt import unpaired as up
from trl_parity import ParityLog, accelerator, import_trl

TOL = {torch.float32: dict(atol=1e-6, rtol=1e-6), torch.float64: dict(atol=1e-13, rtol=1e-13)}
METRIC_TOL = dict(atol=2e-5, rtol=2e-6)  # prefopt's metrics are float32
SUM_METRICS = ["kl", "rewards/chosen_sum", "rewards/rejected_sum", "logps/chosen_sum", "logps/rejected_sum",
               "count/chosen", "count/rejected"]


@pytest.fixture(scope="module")
def parity():
    log = ParityLog("test_unpaired")
    yield log
    log.dump()


@pytest.fixture(scope="module")
def KTOTrainer():
    import_trl()
    from trl.experimental.kto import KTOTrainer

    return KTOTrainer


def make_batch(batch=16, dtype=torch.float32, seed=0, kl_shift=0.5, m=16):
    """Summed log-probs of B labelled completions and of M mismatched (KL) pairs; kl_shift sets the sign of z0."""
    g = torch.Generator().manual_seed(seed)
    q = -30 - 10 * torch.rand(batch, generator=g, dtype=torch.float64)
    p = q + 3 * torch.randn(batch, generator=g, dtype=torch.float64)
    labels = torch.rand(batch, generator=g) < 0.6
    qk = -30 - 10 * torch.rand(m, generator=g, dtype=torch.float64)
    pk = qk + kl_shift + torch.randn(m, generator=g, dtype=torch.float64)
    return p.to(dtype), q.to(dtype), labels, pk.to(dtype), qk.to(dtype)


def kto_standin(KTOTrainer, *, loss_type, beta, desirable_weight, undesirable_weight, forward=None):
    """The attributes KTOTrainer.kto_loss and get_batch_loss_metrics read; forward is the stubbed forward's output."""
    s = types.SimpleNamespace(loss_type=loss_type, beta=beta, desirable_weight=desirable_weight,
                              undesirable_weight=undesirable_weight, calculate_KL=loss_type != "apo_zero_unpaired",
                              accelerator=accelerator(), aux_loss_enabled=False,
                              args=types.SimpleNamespace(use_liger_kernel=False))
    s.kto_loss = lambda *a: KTOTrainer.kto_loss(s, *a)
    s.forward = lambda model, batch: forward
    return s


# (loss_type, beta, desirable_weight, undesirable_weight); the first is TRL's KTOConfig default.
KTO_CONFIGS = [
    ("kto", 0.1, 1.0, 1.0),
    ("kto", 0.5, 1.0, 1.33),
    ("kto", 2.0, 0.8, 0.0),
    ("apo_zero_unpaired", 0.1, 1.0, 1.0),
    ("apo_zero_unpaired", 0.3, 1.2, 0.9),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("config", KTO_CONFIGS, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("batch_kind", ["mixed", "negative-kl", "all-desirable"])
def test_kto_matches_trl(KTOTrainer, parity, dtype, config, batch_kind):
    loss_type, beta, wd, wu = config
    p, q, labels, pk, qk = make_batch(dtype=dtype, kl_shift=-1.0 if batch_kind == "negative-kl" else 0.5)
    if batch_kind == "all-desirable":
        labels = torch.ones_like(labels)
    uses_kl = loss_type == "kto"
    n_c = int(labels.sum())
    logits = (torch.zeros(n_c, 2, 3, dtype=dtype), torch.zeros(len(labels) - n_c, 2, 3, dtype=dtype))
    forward = (p[labels], p[~labels], *logits, pk if uses_kl else None)
    s = kto_standin(KTOTrainer, loss_type=loss_type, beta=beta, desirable_weight=wd, undesirable_weight=wu,
                    forward=forward)
    trl_losses, trl_chosen, trl_rejected, trl_kl = KTOTrainer.kto_loss(
        s, p[labels], p[~labels], pk if uses_kl else None, q[labels], q[~labels], qk if uses_kl else None)
    batch = {"label": labels.tolist(), "reference_logps": q, "reference_KL_logps": qk if uses_kl else None}
    trl_loss, trl_metrics = KTOTrainer.get_batch_loss_metrics(s, None, batch)

    kl_inputs = (pk, qk) if uses_kl else ()
    out = up.kto_loss(p, q, labels, *kl_inputs, loss_type=loss_type, beta=beta, desirable_weight=wd,
                      undesirable_weight=wu)
    name = loss_type
    tol = TOL[dtype]
    # TRL concatenates the desirable losses, then the undesirable ones; prefopt keeps input order.
    parity.close(name, dtype, "losses", torch.cat([out.losses[labels], out.losses[~labels]]), trl_losses, **tol)
    parity.close(name, dtype, "loss", out.losses.mean(), trl_loss, **tol)
    parity.close(name, dtype, "rewards", out.chosen_rewards, trl_chosen, **tol)
    parity.close(name, dtype, "rewards", out.rejected_rewards, trl_rejected, **tol)
    torch.testing.assert_close(out.rewards[labels], out.chosen_rewards, atol=0, rtol=0)
    parity.close(name, dtype, "metrics", out.metrics["kl"], trl_kl, **METRIC_TOL)
    for metric in SUM_METRICS:
        if metric in trl_metrics:
            parity.close(name, dtype, "metrics", out.metrics[metric], trl_metrics[metric], **METRIC_TOL)
        else:
            # Difference on purpose: TRL stores no metrics for a side the batch lacks; prefopt reports count 0 and
            # zero sums and means (never NaN).
            assert metric.endswith("rejected") or metric.endswith("rejected_sum"), metric
            assert out.metrics[metric].item() == 0.0
    # TRL's log() turns the stored sums into means (sum / count) and margins (chosen mean - rejected mean).
    for side in ("chosen", "rejected"):
        if f"count/{side}" in trl_metrics:
            for kind in ("rewards", "logps"):
                want = trl_metrics[f"{kind}/{side}_sum"] / trl_metrics[f"count/{side}"]
                parity.close(name, dtype, "metrics", out.metrics[f"{kind}/{side}"], want, **METRIC_TOL)
    if "count/rejected" in trl_metrics:
        want = (trl_metrics["rewards/chosen_sum"] / trl_metrics["count/chosen"]
                - trl_metrics["rewards/rejected_sum"] / trl_metrics["count/rejected"])
        parity.close(name, dtype, "metrics", out.metrics["rewards/margins"], want, **METRIC_TOL)


def test_precomputed_kl_equals_kl_logps():
    p, q, labels, pk, qk = make_batch(dtype=torch.float64)
    from_logps = up.kto_loss(p, q, labels, pk, qk)
    from_kl = up.kto_loss(p, q, labels, kl=(pk - qk).mean())
    torch.testing.assert_close(from_kl.losses, from_logps.losses, atol=1e-14, rtol=0)
    clamped = up.kto_loss(p, q, labels, kl=torch.tensor(-3.0, dtype=torch.float64))
    zero = up.kto_loss(p, q, labels, kl=torch.tensor(0.0, dtype=torch.float64))
    torch.testing.assert_close(clamped.losses, zero.losses, atol=0, rtol=0)
    assert clamped.metrics["kl"].item() == 0.0


# ---------------------------------------------------------------------------------------------------------
# dtypes, gradients, opcheck
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_outputs_keep_the_dtype_and_match_float64(dtype):
    p, q, labels, pk, qk = make_batch(dtype=dtype)
    low = up.kto_loss(p, q, labels, pk, qk, undesirable_weight=1.3)
    high = up.kto_loss(p.double(), q.double(), labels, pk.double(), qk.double(), undesirable_weight=1.3)
    assert low.losses.dtype == dtype and low.rewards.dtype == dtype
    assert all(v.dtype == torch.float32 and v.dim() == 0 for v in low.metrics.values())
    tol = dict(atol=1e-2, rtol=1e-2) if dtype == torch.bfloat16 else dict(atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(low.losses.double(), high.losses, **tol)


def test_gradients_skip_the_kl_baseline():
    p, q, labels, pk, qk = make_batch(dtype=torch.float64)
    for t in (p, q, pk, qk):
        t.requires_grad_()
    out = up.kto_loss(p, q, labels, pk, qk)
    assert out.losses.requires_grad and not out.rewards.requires_grad
    out.losses.mean().backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    torch.testing.assert_close(q.grad, -p.grad)
    assert pk.grad is None and qk.grad is None  # z0 is detached


@pytest.mark.parametrize("loss_type", ["kto", "apo_zero_unpaired"])
def test_gradcheck(loss_type):
    p, q, labels, pk, qk = make_batch(batch=6, dtype=torch.float64, seed=4)
    kl = (pk, qk) if loss_type == "kto" else ()

    def fn(p, q):
        return up.kto_loss(p, q, labels, *kl, loss_type=loss_type, beta=0.5, undesirable_weight=1.5).losses

    assert torch.autograd.gradcheck(fn, (p.requires_grad_(), q.requires_grad_()))


@pytest.mark.parametrize(
    "dtype,form",
    [(torch.float32, "kl_logps"), (torch.float64, "kl"), (torch.bfloat16, "apo"), (torch.float16, "kl_logps")],
    ids=lambda v: str(v).replace("torch.", ""),
)
def test_opcheck(dtype, form):
    p, q, labels, pk, qk = make_batch(batch=5, dtype=dtype, m=4)
    p.requires_grad_()
    op = torch.ops.prefopt.kto_loss.default
    options = dict(beta=0.2, undesirable_weight=1.2, check_finite=False)  # the checks are data-dependent .item()
    if form == "kl_logps":
        opcheck(op, (p, q, labels, pk, qk), options)
    elif form == "kl":
        opcheck(op, (p, q, labels), dict(options, kl=torch.tensor(0.3, dtype=dtype)))
    else:
        opcheck(op, (p, q, labels), dict(options, loss_type="apo_zero_unpaired"))


# ---------------------------------------------------------------------------------------------------------
# Bad input: the error names the argument
# ---------------------------------------------------------------------------------------------------------


def raises(msg, fn, exc=RuntimeError):
    with pytest.raises(exc, match=re.escape(msg)):
        fn()


def test_bad_input_messages():
    p, q, labels, pk, qk = make_batch(batch=4, m=3)
    raises("ref_logps must have shape [B] matching policy_logps [4], got [3]", lambda: up.kto_loss(p, q[:3], labels, pk, qk))
    raises("ref_logps must have the dtype of policy_logps (Float), got Double",
           lambda: up.kto_loss(p, q.double(), labels, pk, qk))
    raises("labels must be a bool tensor (true = desirable), got Long", lambda: up.kto_loss(p, q, labels.long(), pk, qk))
    raises("labels must have shape [B] matching policy_logps [4], got [2]", lambda: up.kto_loss(p, q, labels[:2], pk, qk))
    raises("loss_type kto needs its KL baseline z0: pass policy_kl_logps and ref_kl_logps",
           lambda: up.kto_loss(p, q, labels))
    raises("ref_kl_logps is required with policy_kl_logps", lambda: up.kto_loss(p, q, labels, pk))
    raises("pass either policy_kl_logps and ref_kl_logps or kl, not both",
           lambda: up.kto_loss(p, q, labels, pk, qk, kl=torch.tensor(0.1)))
    raises("loss_type apo_zero_unpaired uses no KL baseline",
           lambda: up.kto_loss(p, q, labels, pk, qk, loss_type="apo_zero_unpaired"))
    raises("ref_kl_logps must have shape [B] matching policy_kl_logps [3], got [2]",
           lambda: up.kto_loss(p, q, labels, pk, qk[:2]))
    raises("loss_type must be one of: kto, apo_zero_unpaired; got 'bco'",
           lambda: up.kto_loss(p, q, labels, pk, qk, loss_type="bco"))
    for beta in (0.0, -1.0, float("nan")):
        raises("beta must be in (0, ", lambda: up.kto_loss(p, q, labels, pk, qk, beta=beta))
    raises("desirable_weight must be in [0, inf), got -0.5",
           lambda: up.kto_loss(p, q, labels, pk, qk, desirable_weight=-0.5))
    bad = q.clone()
    bad[2] = float("nan")
    raises("ref_logps must be finite, got nan at index 2", lambda: up.kto_loss(p, bad, labels, pk, qk))
    bad = pk.clone()
    bad[0] = float("inf")
    raises("policy_kl_logps must be finite, got inf at index 0", lambda: up.kto_loss(p, q, labels, bad, qk))
    raises("labels is None", lambda: up.kto_loss(p, q, None, pk, qk), ValueError)
    with pytest.raises(TypeError):
        up.kto_loss(p, q, labels, pk, qk, None, "kto")  # kl and the options are keyword-only


def test_nan_propagates_when_not_checked():
    p, q, labels, pk, qk = make_batch(batch=4)
    p[1] = float("nan")
    out = up.kto_loss(p, q, labels, pk, qk, check_finite=False)
    assert torch.isnan(out.losses[1]) and torch.isfinite(out.losses[[0, 2, 3]]).all()
    pk[0] = float("nan")
    assert torch.isnan(up.kto_loss(p, q, labels, pk, qk, check_finite=False).losses).all()  # through z0


@pytest.mark.cuda
def test_cuda_matches_cpu(cuda):
    p, q, labels, pk, qk = make_batch()
    cpu = up.kto_loss(p, q, labels, pk, qk)
    gpu = up.kto_loss(*(t.to(cuda) for t in (p, q, labels, pk, qk)))
    torch.testing.assert_close(gpu.losses.cpu(), cpu.losses, **TOL[torch.float32])
    torch.testing.assert_close(gpu.chosen_rewards.cpu(), cpu.chosen_rewards, **TOL[torch.float32])
    for name, value in cpu.metrics.items():
        torch.testing.assert_close(gpu.metrics[name].cpu(), value, **METRIC_TOL)
