"""Tests of prefopt.reward.reward_loss and its operator (torch.ops.prefopt.reward_loss).

Parity with TRL 0.28.0 itself: TRL keeps the reward-model loss inside ``RewardTrainer.compute_loss``, which calls
the model; the test calls that method with a minimal stand-in for the trainer and a stand-in model that returns
the given rewards as its logits (never re-deriving TRL's math), in float32 and float64, with TRL's defaults, with
a margin and with center_rewards_coefficient. TRL returns the batch mean only, so per-pair parity calls it once per
pair as well. TRL has neither magnitude scaling nor label smoothing: the test checks the documented relations to
TRL's per-pair Bradley-Terry loss instead. Then opcheck, gradcheck in float64 and bad input with its message.
"""

import re
import types
from collections import defaultdict

import pytest
import torch
from torch.library import opcheck

import prefopt  # noqa: F401  (loads libprefopt.so)
from prefopt import reward as rw
from trl_parity import ParityLog, accelerator, import_trl

TOL = {torch.float32: dict(atol=2e-6, rtol=2e-6), torch.float64: dict(atol=1e-13, rtol=1e-13)}
METRIC_TOL = dict(atol=2e-6, rtol=2e-6)  # prefopt's metrics are float32
METRICS = ["accuracy", "margin", "min_reward", "mean_reward", "max_reward"]


@pytest.fixture(scope="module")
def parity():
    log = ParityLog("test_reward")
    yield log
    log.dump()


@pytest.fixture(scope="module")
def trl_reward_loss():
    """Calls TRL's RewardTrainer.compute_loss on given rewards: returns (loss, {metric: value})."""
    import_trl()
    from trl import RewardTrainer

    def call(chosen, rejected, margin=None, center_rewards_coefficient=None):
        logits = torch.cat([chosen, rejected]).unsqueeze(-1)  # the model's [2B, 1] output: chosen rows first
        model = types.SimpleNamespace(training=False)
        model_call = lambda **inputs: types.SimpleNamespace(logits=logits)  # noqa: E731
        s = types.SimpleNamespace(model=model, accelerator=accelerator(), _total_train_tokens=0,
                                  _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
                                  args=types.SimpleNamespace(center_rewards_coefficient=center_rewards_coefficient))
        inputs = {"input_ids": torch.zeros(2 * len(chosen), 3, dtype=torch.long),
                  "attention_mask": torch.ones(2 * len(chosen), 3, dtype=torch.long)}
        if margin is not None:
            inputs["margin"] = margin
        loss = RewardTrainer.compute_loss(s, model_call, inputs)
        return loss, {k: v[-1] for k, v in s._metrics["eval"].items() if k in METRICS}

    return call


def make_batch(batch=16, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    rc = (0.5 + 2 * torch.randn(batch, generator=g, dtype=torch.float64)).to(dtype)
    rr = (2 * torch.randn(batch, generator=g, dtype=torch.float64)).to(dtype)
    margin = torch.randint(0, 4, (batch,), generator=g).to(dtype)
    magnitude = torch.randint(1, 4, (batch,), generator=g)
    return rc, rr, margin, magnitude


# (loss_type, center_rewards_coefficient); the first is TRL's default (no margin column, no centring).
CONFIGS = [("bradley_terry", None), ("margin", None), ("bradley_terry", 0.01), ("margin", 0.05)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c[0]}-center{c[1]}")
def test_matches_trl(trl_reward_loss, parity, dtype, config):
    loss_type, center = config
    rc, rr, margin, _ = make_batch(dtype=dtype)
    m = margin if loss_type == "margin" else None
    trl_loss, trl_metrics = trl_reward_loss(rc, rr, m, center)
    out = rw.reward_loss(rc, rr, loss_type=loss_type, margin=m, center_rewards_coefficient=center or 0.0)
    name = f"reward:{loss_type}" + ("+center" if center else "")
    tol = TOL[dtype]
    parity.close(name, dtype, "loss", out.losses.mean(), trl_loss, **tol)
    # Per pair: TRL's compute_loss on each pair alone.
    per_pair = torch.stack([trl_reward_loss(rc[i:i + 1], rr[i:i + 1], None if m is None else m[i:i + 1], center)[0]
                            for i in range(len(rc))])
    parity.close(name, dtype, "losses", out.losses, per_pair, **tol)
    assert sorted(out.metrics) == sorted(METRICS)
    for metric in METRICS:
        parity.close(name, dtype, "metrics", out.metrics[metric], trl_metrics[metric], **METRIC_TOL)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scaled_and_label_smoothing_relations_to_trl(trl_reward_loss, parity, dtype):
    # TRL has no magnitude scaling (HelpSteer2-Preference) and no label smoothing for reward models. prefopt's
    # documented forms, checked against TRL's per-pair Bradley-Terry loss bt(c, r):
    #   scaled:          magnitude * bt(c, r)
    #   label smoothing: (1 - eps) * bt(c, r) + eps * bt(r, c)
    rc, rr, _, magnitude = make_batch(dtype=dtype, seed=1)
    bt = torch.stack([trl_reward_loss(rc[i:i + 1], rr[i:i + 1])[0] for i in range(len(rc))])
    bt_flipped = torch.stack([trl_reward_loss(rr[i:i + 1], rc[i:i + 1])[0] for i in range(len(rc))])
    tol = TOL[dtype]
    scaled = rw.reward_loss(rc, rr, loss_type="scaled", magnitude=magnitude)
    parity.close("reward:scaled (relation)", dtype, "losses", scaled.losses, magnitude.to(dtype) * bt, **tol)
    for eps in (0.1, 0.5):
        smoothed = rw.reward_loss(rc, rr, label_smoothing=eps)
        parity.close("reward:label_smoothing (relation)", dtype, "losses", smoothed.losses,
                     (1 - eps) * bt + eps * bt_flipped, **tol)


# ---------------------------------------------------------------------------------------------------------
# dtypes, gradients, opcheck
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("loss_type", ["bradley_terry", "margin", "scaled"])
def test_low_precision_outputs_keep_the_dtype_and_match_float64(dtype, loss_type):
    rc, rr, margin, magnitude = make_batch(dtype=dtype)
    extra = dict(margin=margin) if loss_type == "margin" else dict(magnitude=magnitude) if loss_type == "scaled" else {}
    low = rw.reward_loss(rc, rr, loss_type=loss_type, label_smoothing=0.1, **extra)
    extra64 = {k: (v.double() if v.is_floating_point() else v) for k, v in extra.items()}
    high = rw.reward_loss(rc.double(), rr.double(), loss_type=loss_type, label_smoothing=0.1, **extra64)
    assert low.losses.dtype == dtype
    assert all(v.dtype == torch.float32 and v.dim() == 0 for v in low.metrics.values())
    tol = dict(atol=2e-2, rtol=1e-2) if dtype == torch.bfloat16 else dict(atol=3e-3, rtol=2e-3)
    torch.testing.assert_close(low.losses.double(), high.losses, **tol)


@pytest.mark.parametrize("loss_type", ["bradley_terry", "margin", "scaled"])
def test_gradcheck(loss_type):
    rc, rr, margin, magnitude = make_batch(batch=5, dtype=torch.float64, seed=2)
    extra = dict(margin=margin) if loss_type == "margin" else dict(magnitude=magnitude) if loss_type == "scaled" else {}

    def fn(rc, rr):
        return rw.reward_loss(rc, rr, loss_type=loss_type, label_smoothing=0.2, center_rewards_coefficient=0.01,
                              **extra).losses

    assert torch.autograd.gradcheck(fn, (rc.requires_grad_(), rr.requires_grad_()))


def test_gradients_and_detached_metrics():
    rc, rr, margin, _ = make_batch(dtype=torch.float64)
    rc.requires_grad_()
    rr.requires_grad_()
    margin.requires_grad_()
    out = rw.reward_loss(rc, rr, loss_type="margin", margin=margin)
    assert out.losses.requires_grad and not any(v.requires_grad for v in out.metrics.values())
    out.losses.sum().backward()
    torch.testing.assert_close(rr.grad, -rc.grad)
    assert margin.grad is None  # the margin is data, not differentiated


@pytest.mark.parametrize(
    "dtype,loss_type",
    [(torch.float32, "bradley_terry"), (torch.float64, "margin"), (torch.bfloat16, "scaled"), (torch.float16, "margin")],
    ids=lambda v: str(v).replace("torch.", ""),
)
def test_opcheck(dtype, loss_type):
    rc, rr, margin, magnitude = make_batch(batch=4, dtype=dtype)
    rc.requires_grad_()
    rr.requires_grad_()
    extra = dict(margin=margin) if loss_type == "margin" else dict(magnitude=magnitude) if loss_type == "scaled" else {}
    kwargs = dict(loss_type=loss_type, label_smoothing=0.1, center_rewards_coefficient=0.01, check_finite=False, **extra)
    opcheck(torch.ops.prefopt.reward_loss.default, (rc, rr), kwargs)


# ---------------------------------------------------------------------------------------------------------
# Bad input: the error names the argument
# ---------------------------------------------------------------------------------------------------------


def raises(msg, fn, exc=RuntimeError):
    with pytest.raises(exc, match=re.escape(msg)):
        fn()


def test_bad_input_messages():
    rc, rr, margin, magnitude = make_batch(batch=4)
    raises("rejected_rewards must have shape [B] matching chosen_rewards [4], got [3]", lambda: rw.reward_loss(rc, rr[:3]))
    raises("rejected_rewards must have the dtype of chosen_rewards (Float), got Double",
           lambda: rw.reward_loss(rc, rr.double()))
    raises("chosen_rewards must have shape [B], got [2, 2]", lambda: rw.reward_loss(rc.view(2, 2), rr.view(2, 2)))
    raises("chosen_rewards must hold at least one pair", lambda: rw.reward_loss(rc[:0], rr[:0]))
    raises("margin is required by loss_type margin", lambda: rw.reward_loss(rc, rr, loss_type="margin"))
    raises("magnitude is required by loss_type scaled", lambda: rw.reward_loss(rc, rr, loss_type="scaled"))
    raises("margin is only used by loss_type margin, got loss_type bradley_terry",
           lambda: rw.reward_loss(rc, rr, margin=margin))
    raises("magnitude must be >= 0, got a negative value",
           lambda: rw.reward_loss(rc, rr, loss_type="scaled", magnitude=-magnitude))
    raises("loss_type must be one of: bradley_terry, margin, scaled; got 'bt'", lambda: rw.reward_loss(rc, rr, loss_type="bt"))
    raises("label_smoothing must be in [0, 0.5], got 0.6", lambda: rw.reward_loss(rc, rr, label_smoothing=0.6))
    raises("center_rewards_coefficient must be finite and >= 0, got -1",
           lambda: rw.reward_loss(rc, rr, center_rewards_coefficient=-1.0))
    bad = rc.clone()
    bad[1] = float("nan")
    raises("chosen_rewards must be finite, got nan at index 1", lambda: rw.reward_loss(bad, rr))
    bad = margin.clone()
    bad[3] = float("inf")
    raises("margin must be finite, got inf at index 3", lambda: rw.reward_loss(rc, rr, loss_type="margin", margin=bad))
    raises("chosen_rewards is None", lambda: rw.reward_loss(None, rr), ValueError)
    with pytest.raises(TypeError):
        rw.reward_loss(rc, rr, "margin")  # options are keyword-only


def test_nan_propagates_when_not_checked():
    rc, rr, _, _ = make_batch(batch=4)
    rc[0] = float("nan")
    out = rw.reward_loss(rc, rr, check_finite=False)
    assert torch.isnan(out.losses[0]) and torch.isfinite(out.losses[1:]).all()


@pytest.mark.cuda
def test_cuda_matches_cpu(cuda):
    rc, rr, margin, _ = make_batch()
    cpu = rw.reward_loss(rc, rr, loss_type="margin", margin=margin)
    gpu = rw.reward_loss(rc.to(cuda), rr.to(cuda), loss_type="margin", margin=margin.to(cuda))
    torch.testing.assert_close(gpu.losses.cpu(), cpu.losses, **TOL[torch.float32])
    for name, value in cpu.metrics.items():
        torch.testing.assert_close(gpu.metrics[name].cpu(), value, **METRIC_TOL)
