"""Tests of prefopt.token_level.tdpo_loss and torch.ops.prefopt.tdpo_loss: both variants against a float64
reference written from LOSSES.md section 3, which KL is detached, identical policy and reference (zero KL from a
plain vocabulary loop: TDPO is DPO), gradcheck, bf16, extremes, opcheck and bad input. Loads PREFOPT_LIBRARY or
<repo>/build-losses/libprefopt.so.
"""

import math
import os
import re
import sys
from pathlib import Path

import pytest
import torch
from torch.library import opcheck

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))
LIBRARY = os.environ.get("PREFOPT_LIBRARY") or str(REPO / "build-losses" / "libprefopt.so")
os.environ["PREFOPT_LIBRARY"] = LIBRARY
torch.ops.load_library(LIBRARY)

import prefopt  # noqa: E402
from prefopt.token_level import tdpo_loss  # noqa: E402


def make(batch=8, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    logps = [(-40 + 5 * torch.randn(batch, generator=g, dtype=torch.float64)).to(dtype) for _ in range(4)]
    kls = [(3 * torch.rand(batch, generator=g, dtype=torch.float64)).to(dtype) for _ in range(2)]
    return logps + kls


def reference(pc, pr, rc, rr, kc, kr, variant="tdpo2", beta=0.1, alpha=0.5):
    out = ([], [], [])
    for a, b, c, d, e, f in zip(*(t.double().tolist() for t in (pc, pr, rc, rr, kc, kr))):
        hc, hr = a - c, b - d
        z = (hc - hr) - (f - e) if variant == "tdpo1" else (hc - hr) - alpha * (f - e)
        x = beta * z
        out[0].append(math.log1p(math.exp(-x)) if x >= 0 else -x + math.log1p(math.exp(x)))
        out[1].append(beta * (hc + e))
        out[2].append(beta * (hr + f))
    return [torch.tensor(v, dtype=torch.float64) for v in out]


@pytest.mark.parametrize("variant", ["tdpo1", "tdpo2"])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 2.0])
def test_matches_reference(variant, alpha):
    inputs = make()
    got = tdpo_loss(*inputs, variant=variant, beta=0.3, alpha=alpha)
    for a, b in zip(got, reference(*inputs, variant=variant, beta=0.3, alpha=alpha)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    assert not got[1].requires_grad


@pytest.mark.parametrize("variant", ["tdpo1", "tdpo2"])
def test_only_the_chosen_kl_is_detached_and_only_in_tdpo2(variant):
    inputs = [t.requires_grad_() for t in make(batch=5)]
    losses, _, _ = tdpo_loss(*inputs, variant=variant, beta=0.4, alpha=0.7)
    losses.sum().backward()
    kc, kr = inputs[4], inputs[5]
    if variant == "tdpo2":
        assert kc.grad is None or (kc.grad == 0).all()  # only the detached use remains
        torch.testing.assert_close(kr.grad, -0.7 * inputs[0].grad)
    else:
        torch.testing.assert_close(kc.grad, inputs[0].grad)
        torch.testing.assert_close(kr.grad, -inputs[0].grad)


def test_identical_policy_and_reference_have_zero_kl_and_give_dpo():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 5, 7, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 7, (4, 5), generator=g)
    logps, _ = prefopt.sequence_logps(logits, labels)
    # KL(ref || policy) per token over the vocabulary, plainly; both models are the same logits.
    log_ref = logits.log_softmax(-1)
    kl = (log_ref.exp() * (log_ref - logits.log_softmax(-1))).sum(-1).sum(-1)
    assert (kl == 0).all()
    for variant in ("tdpo1", "tdpo2"):
        losses, _, _ = tdpo_loss(logps[:2], logps[2:], logps[:2], logps[2:], kl[:2], kl[2:], variant=variant)
        torch.testing.assert_close(losses, torch.full((2,), math.log(2.0), dtype=torch.float64))
    pc, pr, rc, rr, _, _ = make()
    zero = torch.zeros(8, dtype=torch.float64)
    tdpo = tdpo_loss(pc, pr, rc, rr, zero, zero, variant="tdpo1", beta=0.2)[0]
    torch.testing.assert_close(tdpo, prefopt.dpo_loss(pc, pr, rc, rr, beta=0.2)[0])


def test_gradcheck():
    inputs = [t.requires_grad_() for t in make(batch=4)]
    assert torch.autograd.gradcheck(lambda *x: tdpo_loss(*x, variant="tdpo1", beta=0.5)[0], inputs)
    kc = inputs[4].detach()
    assert torch.autograd.gradcheck(
        lambda pc, pr, rc, rr, kr: tdpo_loss(pc, pr, rc, rr, kc, kr, variant="tdpo2", beta=0.5, alpha=0.3)[0],
        inputs[:4] + [inputs[5]],
    )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_low_precision(dtype):
    inputs = make(batch=16, dtype=dtype)
    losses, cr, _ = tdpo_loss(*inputs)
    assert losses.dtype == dtype and cr.dtype == dtype
    torch.testing.assert_close(losses.double(), reference(*inputs)[0], atol=1e-2, rtol=1e-2)


def test_extreme_scores_stay_finite():
    big = torch.tensor([1e4, -1e4, 0.0], requires_grad=True)
    zero = torch.zeros(3)
    losses, _, _ = tdpo_loss(big, -big.detach(), zero, zero, big.detach().abs(), zero, variant="tdpo1", beta=1.0)
    assert torch.isfinite(losses).all()
    losses.sum().backward()
    assert torch.isfinite(big.grad).all()


def test_opcheck():
    inputs = make(batch=4, dtype=torch.float32)
    for t in inputs[:2] + inputs[4:]:
        t.requires_grad_()
    for variant in ("tdpo1", "tdpo2"):
        opcheck(torch.ops.prefopt.tdpo_loss.default, tuple(inputs), {"variant": variant, "check_finite": False})


def test_bad_input():
    x = torch.randn(4)
    with pytest.raises(RuntimeError, match=re.escape("chosen_kl must have shape [B] matching policy_chosen_logps [4], got [3]")):
        tdpo_loss(x, x, x, x, torch.randn(3), x)
    with pytest.raises(RuntimeError, match=re.escape("variant must be one of: tdpo1, tdpo2; got 'tdpo3'")):
        tdpo_loss(x, x, x, x, x, x, variant="tdpo3")
    with pytest.raises(RuntimeError, match=re.escape("alpha must be in [0, ")):
        tdpo_loss(x, x, x, x, x, x, alpha=-1.0)
    bad = x.clone()
    bad[1] = float("inf")
    with pytest.raises(RuntimeError, match=re.escape("rejected_kl must be finite, got inf at index 1")):
        tdpo_loss(x, x, x, x, x, bad)
