"""Tests of prefopt.dpo_loss and the torch.ops.prefopt.dpo_loss operator (loss_type "sigmoid").

Per-pair losses and rewards against a float64 reference written here from TRL's DPOTrainer.dpo_loss
expressions (never from prefopt), conservative DPO (label smoothing), reference-free DPO, gradients and
detached rewards, gradcheck in float64, opcheck (check_finite=False: the finiteness check is a
data-dependent .item()), bad input with its message, and CUDA against CPU (skipped without a device).
"""

import re

import pytest
import torch
from torch.library import opcheck

import prefopt

OP = torch.ops.prefopt.dpo_loss.default
# Tolerances on the outputs, which come back in the input dtype (one final rounding for bf16/fp16).
TOL = {
    torch.float64: dict(atol=1e-12, rtol=1e-12),
    torch.float32: dict(atol=1e-6, rtol=1e-6),
    torch.bfloat16: dict(atol=1e-5, rtol=2.0**-8),
    torch.float16: dict(atol=1e-5, rtol=2.0**-11),
}


def logsigmoid(z):
    """log(sigmoid(z)) = min(z, 0) - log(1 + exp(-|z|)), stable for any finite z."""
    return torch.minimum(z, torch.zeros_like(z)) - torch.log1p(torch.exp(-z.abs()))


def reference(pc, pr, rc, rr, beta=0.1, label_smoothing=0.0, reference_free=False):
    """(losses, chosen_rewards, rejected_rewards) in float64, as TRL computes them for loss_type="sigmoid"."""
    pc, pr = pc.to(torch.float64), pr.to(torch.float64)
    rc = torch.zeros_like(pc) if reference_free else rc.to(torch.float64)
    rr = torch.zeros_like(pr) if reference_free else rr.to(torch.float64)
    pi_logratios = pc - pr
    ref_logratios = rc - rr
    z = beta * (pi_logratios - ref_logratios)
    losses = -logsigmoid(z) * (1 - label_smoothing) - logsigmoid(-z) * label_smoothing
    return losses, (beta * (pc - rc)).detach(), (beta * (pr - rr)).detach()


def make_scores(batch=8, dtype=torch.float32):
    """Summed sequence log-probs: negative, tens of nats, policy near the reference."""
    rc = -20 - 30 * torch.rand(batch, dtype=torch.float64)
    rr = -20 - 30 * torch.rand(batch, dtype=torch.float64)
    pc = rc + 3 * torch.randn(batch, dtype=torch.float64)
    pr = rr + 3 * torch.randn(batch, dtype=torch.float64)
    return [t.to(dtype) for t in (pc, pr, rc, rr)]


def assert_matches_reference(out, ref, dtype):
    for got, want, name in zip(out, ref, ("losses", "chosen_rewards", "rejected_rewards")):
        assert got.dtype == dtype, name
        assert got.shape == want.shape, name
        torch.testing.assert_close(got.double(), want, **TOL[dtype], msg=lambda m: f"{name}: {m}")


# ---------------------------------------------------------------------------------------------------------
# Values against the reference
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.5])
def test_matches_reference(dtype, beta, label_smoothing):
    scores = make_scores(dtype=dtype)
    out = prefopt.dpo_loss(*scores, beta=beta, label_smoothing=label_smoothing)
    assert len(out) == 3
    assert_matches_reference(out, reference(*scores, beta=beta, label_smoothing=label_smoothing), dtype)


def test_defaults_are_sigmoid_beta_0_1():
    scores = make_scores()
    default = prefopt.dpo_loss(*scores)
    explicit = prefopt.dpo_loss(*scores, loss_type="sigmoid", beta=0.1, label_smoothing=0.0)
    for a, b in zip(default, explicit):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert_matches_reference(default, reference(*scores), torch.float32)


def test_batch_of_one():
    scores = [torch.tensor([v]) for v in (-10.0, -12.0, -11.0, -11.0)]
    losses, chosen, rejected = prefopt.dpo_loss(*scores, beta=0.1)
    assert losses.shape == chosen.shape == rejected.shape == (1,)
    torch.testing.assert_close(losses.double(), -logsigmoid(torch.tensor([0.2], dtype=torch.float64)))


def test_conservative_label_smoothing():
    scores = make_scores(dtype=torch.float64)
    pc, pr, rc, rr = scores
    plain, _, _ = prefopt.dpo_loss(*scores, beta=0.5)
    smoothed, _, _ = prefopt.dpo_loss(*scores, beta=0.5, label_smoothing=0.2)
    flipped, _, _ = prefopt.dpo_loss(pr, pc, rr, rc, beta=0.5)  # chosen and rejected swapped
    # cDPO is the mixture of the loss on the label and on the flipped label.
    torch.testing.assert_close(smoothed, 0.8 * plain + 0.2 * flipped)
    # At eps = 0.5 the loss no longer cares which side was preferred, and is at least log 2.
    half, _, _ = prefopt.dpo_loss(*scores, beta=0.5, label_smoothing=0.5)
    half_flipped, _, _ = prefopt.dpo_loss(pr, pc, rr, rc, beta=0.5, label_smoothing=0.5)
    torch.testing.assert_close(half, half_flipped)
    assert (half >= torch.log(torch.tensor(2.0, dtype=torch.float64)) - 1e-12).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_reference_free(dtype, label_smoothing):
    pc, pr, rc, rr = make_scores(dtype=dtype)
    out = prefopt.dpo_loss(pc, pr, beta=0.2, label_smoothing=label_smoothing, reference_free=True)
    ref = reference(pc, pr, None, None, beta=0.2, label_smoothing=label_smoothing, reference_free=True)
    assert_matches_reference(out, ref, dtype)
    # Reference tensors, if passed, are ignored: the rewards are beta * policy log-probs.
    with_refs = prefopt.dpo_loss(pc, pr, rc, rr, beta=0.2, label_smoothing=label_smoothing, reference_free=True)
    for a, b in zip(out, with_refs):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_extreme_margins_stay_finite(dtype):
    pc = torch.tensor([1e4, -1e4, 0.0, -5e3]).to(dtype)
    pr = torch.tensor([-1e4, 1e4, 0.0, 5e3]).to(dtype)
    zero = torch.zeros(4, dtype=dtype)
    losses, chosen, rejected = prefopt.dpo_loss(pc, pr, zero, zero, beta=1.0, label_smoothing=0.1)
    assert torch.isfinite(losses).all() and torch.isfinite(chosen).all() and torch.isfinite(rejected).all()
    ref = reference(pc, pr, zero, zero, beta=1.0, label_smoothing=0.1)[0]
    torch.testing.assert_close(losses.double(), ref, **TOL[dtype])


def test_nan_propagates_to_its_pair_when_not_checked():
    pc, pr, rc, rr = make_scores(batch=4)
    pc[2] = float("nan")
    losses, chosen, rejected = prefopt.dpo_loss(pc, pr, rc, rr, check_finite=False)
    assert torch.isnan(losses[2]) and torch.isnan(chosen[2])
    assert torch.isfinite(losses[[0, 1, 3]]).all() and torch.isfinite(rejected).all()


# ---------------------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
def test_gradients_flow_to_policy_and_rewards_are_detached(dtype, label_smoothing):
    beta = 0.3
    pc, pr, rc, rr = make_scores(dtype=dtype)
    pc.requires_grad_()
    pr.requires_grad_()
    losses, chosen, rejected = prefopt.dpo_loss(pc, pr, rc, rr, beta=beta, label_smoothing=label_smoothing)
    assert losses.requires_grad
    assert not chosen.requires_grad and not rejected.requires_grad
    assert chosen.grad_fn is None and rejected.grad_fn is None
    losses.sum().backward()
    # d loss / d pc = -beta * ((1 - eps) * sigmoid(-z) - eps * sigmoid(z)); d loss / d pr is its negative.
    z = beta * ((pc.detach().double() - rc.double()) - (pr.detach().double() - rr.double()))
    expected = -beta * ((1 - label_smoothing) * torch.sigmoid(-z) - label_smoothing * torch.sigmoid(z))
    tol = TOL[dtype]
    torch.testing.assert_close(pc.grad.double(), expected, **tol)
    torch.testing.assert_close(pr.grad.double(), -expected, **tol)


def test_gradients_reach_reference_when_it_requires_grad():
    pc, pr, rc, rr = make_scores(dtype=torch.float64)
    for t in (pc, pr, rc, rr):
        t.requires_grad_()
    prefopt.dpo_loss(pc, pr, rc, rr, beta=0.1)[0].sum().backward()
    torch.testing.assert_close(rc.grad, -pc.grad)
    torch.testing.assert_close(rr.grad, -pr.grad)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2, 0.5])
@pytest.mark.parametrize("reference_free", [False, True])
def test_gradcheck(label_smoothing, reference_free):
    pc, pr, rc, rr = [t.requires_grad_() for t in make_scores(batch=5, dtype=torch.float64)]

    def fn(pc, pr, rc, rr):
        refs = (None, None) if reference_free else (rc, rr)
        options = dict(beta=0.4, label_smoothing=label_smoothing, reference_free=reference_free)
        return prefopt.dpo_loss(pc, pr, *refs, **options)[0]

    assert torch.autograd.gradcheck(fn, (pc, pr, rc, rr))


# ---------------------------------------------------------------------------------------------------------
# opcheck
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("reference_free", [False, True])
def test_opcheck(dtype, reference_free):
    pc, pr, rc, rr = make_scores(batch=4, dtype=dtype)
    pc.requires_grad_()
    pr.requires_grad_()
    refs = (None, None) if reference_free else (rc, rr)
    kwargs = dict(loss_type="sigmoid", beta=0.2, label_smoothing=0.1, reference_free=reference_free, check_finite=False)
    opcheck(OP, (pc, pr, *refs), kwargs)


# ---------------------------------------------------------------------------------------------------------
# Bad input: the error names the argument
# ---------------------------------------------------------------------------------------------------------


def scores4():
    return make_scores(batch=4)


def test_policy_shape_mismatch():
    pc, pr, rc, rr = scores4()
    msg = "policy_rejected_logps must have shape [B] matching policy_chosen_logps [4], got [3]"
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        prefopt.dpo_loss(pc, pr[:3], rc, rr)


@pytest.mark.parametrize("name", ["ref_chosen_logps", "ref_rejected_logps"])
def test_reference_shape_mismatch(name):
    pc, pr, rc, rr = scores4()
    refs = {"ref_chosen_logps": rc, "ref_rejected_logps": rr}
    refs[name] = torch.zeros(5)
    msg = f"{name} must have shape [B] matching policy_chosen_logps [4], got [5]"
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        prefopt.dpo_loss(pc, pr, refs["ref_chosen_logps"], refs["ref_rejected_logps"])


def test_dtype_mismatch():
    pc, pr, rc, rr = scores4()
    msg = "policy_rejected_logps must have the dtype of policy_chosen_logps (Float), got Double"
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        prefopt.dpo_loss(pc, pr.double(), rc, rr)
    msg = "ref_chosen_logps must have the dtype of policy_chosen_logps (Float), got BFloat16"
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        prefopt.dpo_loss(pc, pr, rc.bfloat16(), rr)


def test_not_a_batch_of_scores():
    pc, pr, rc, rr = scores4()
    with pytest.raises(RuntimeError, match=re.escape("policy_chosen_logps must have shape [B], got [2, 2]")):
        prefopt.dpo_loss(pc.view(2, 2), pr.view(2, 2), rc.view(2, 2), rr.view(2, 2))
    with pytest.raises(RuntimeError, match=re.escape("policy_chosen_logps must have shape [B], got []")):
        prefopt.dpo_loss(pc[0], pr[0], rc[0], rr[0])
    with pytest.raises(RuntimeError, match="policy_chosen_logps must be floating"):
        prefopt.dpo_loss(pc.long(), pr.long(), rc.long(), rr.long())


def test_empty_batch_is_an_error():
    pc, pr, rc, rr = scores4()
    with pytest.raises(RuntimeError, match=re.escape("policy_chosen_logps must hold at least one pair, got shape [0]")):
        prefopt.dpo_loss(pc[:0], pr[:0], rc[:0], rr[:0])


@pytest.mark.parametrize("beta", [0.0, -0.1, float("inf"), float("nan")])
def test_bad_beta(beta):
    with pytest.raises(RuntimeError, match=re.escape("beta must be in (0, ")):
        prefopt.dpo_loss(*scores4(), beta=beta)


@pytest.mark.parametrize("label_smoothing", [0.6, -0.1, 1.0])
def test_bad_label_smoothing(label_smoothing):
    msg = f"label_smoothing (for loss_type sigmoid) must be in [0, 0.5], got {label_smoothing:g}"
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        prefopt.dpo_loss(*scores4(), label_smoothing=label_smoothing)


NAMES = ["policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps", "ref_rejected_logps"]


@pytest.mark.parametrize(
    "index,value,shown",
    [(0, float("nan"), "nan"), (1, float("inf"), "inf"), (2, float("nan"), "nan"), (3, float("-inf"), "-inf")],
)
@pytest.mark.parametrize("name", NAMES)
def test_non_finite_input(index, value, shown, name):
    scores = dict(zip(NAMES, scores4()))
    scores[name][index] = value
    with pytest.raises(RuntimeError, match=re.escape(f"{name} must be finite, got {shown} at index {index}")):
        prefopt.dpo_loss(*scores.values())


def test_unknown_loss_type():
    # The list of known names grows with the loss family; it starts with sigmoid and quotes the bad name.
    with pytest.raises(RuntimeError, match=r"loss_type must be one of: sigmoid(, \w+)*; got 'foo'"):
        prefopt.dpo_loss(*scores4(), loss_type="foo")


@pytest.mark.parametrize("missing", ["ref_chosen_logps", "ref_rejected_logps"])
def test_missing_reference_without_reference_free(missing):
    pc, pr, rc, rr = scores4()
    refs = {"ref_chosen_logps": rc, "ref_rejected_logps": rr}
    refs[missing] = None
    with pytest.raises(ValueError, match=f"{missing} is None.*reference_free=True"):
        prefopt.dpo_loss(pc, pr, **refs)


def test_missing_reference_reaches_the_op_as_a_clear_error():
    # Calling the operator directly (bypassing the Python check) still names the argument.
    pc, pr, _, rr = scores4()
    msg = "ref_chosen_logps must be a tensor of shape [B] matching policy_chosen_logps [4], got an undefined tensor"
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        OP(pc, pr, None, rr)


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        prefopt.dpo_loss(*scores4(), "sigmoid")


# ---------------------------------------------------------------------------------------------------------
# CUDA against CPU
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("reference_free", [False, True])
def test_cuda_matches_cpu(cuda, dtype, reference_free):
    scores = make_scores(dtype=dtype)
    cpu = [s.clone().requires_grad_() for s in scores]
    gpu = [s.to(cuda).requires_grad_() for s in scores]
    kwargs = dict(beta=0.2, label_smoothing=0.1, reference_free=reference_free)
    out_cpu = prefopt.dpo_loss(*cpu, **kwargs)
    out_gpu = prefopt.dpo_loss(*gpu, **kwargs)
    for a, b in zip(out_gpu, out_cpu):
        assert a.device.type == "cuda"
        torch.testing.assert_close(a.cpu(), b, **TOL[dtype])
    out_cpu[0].sum().backward()
    out_gpu[0].sum().backward()
    for a, b in zip(gpu[:2], cpu[:2]):
        torch.testing.assert_close(a.grad.cpu(), b.grad, **TOL[dtype])


@pytest.mark.cuda
def test_cuda_device_mismatch(cuda):
    pc, pr, rc, rr = scores4()
    with pytest.raises(RuntimeError, match="policy_rejected_logps must be on the device of policy_chosen_logps"):
        prefopt.dpo_loss(pc.to(cuda), pr, rc.to(cuda), rr.to(cuda))
