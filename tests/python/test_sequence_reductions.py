"""Tests of prefopt.wpo_pair_weights, prefopt.ld_dpo_logps and prefopt.mean_token_nll and their operators.

Values against float64 references written here from LOSSES.md section 1 (WPO's pair weight, LD-DPO's
front/rear split counted from the completion's first scored token, TRL's batch-mean NLL), gradients, gradcheck,
opcheck, and bad input with its message.
"""

import math
import re

import pytest
import torch
from torch.library import opcheck

import prefopt


def token_batch(batch=4, t_c=7, t_r=5, dtype=torch.float64, seed=0, holes=True):
    """Per-token log-probs and masks; the masks have prompt-like leading zeros, holes and padding."""
    g = torch.Generator().manual_seed(seed)
    c = -3 * torch.rand(batch, t_c, generator=g, dtype=torch.float64)
    r = -3 * torch.rand(batch, t_r, generator=g, dtype=torch.float64)
    cm = torch.rand(batch, t_c, generator=g) < 0.75
    rm = torch.rand(batch, t_r, generator=g) < 0.75
    cm[:, 0] = False  # a prompt position
    if not holes:
        cm = torch.arange(t_c)[None, :] >= 1
        rm = torch.ones(batch, t_r, dtype=torch.bool)
    cm[0] = False  # a row with no scored chosen token
    cm[1, 1:] = True  # a full row
    return c.to(dtype), cm, r.to(dtype), rm


def ld_reference(logps, mask, shared, alpha):
    """sum_{j <= l} logp_j + alpha sum_{j > l} logp_j over the scored tokens j = 1, 2, ... of each row."""
    out = []
    for row, m, l in zip(logps.double(), mask, shared):
        scored = row[m]
        out.append(scored[: int(l)].sum() + alpha * scored[int(l):].sum())
    return torch.stack(out)


# ---------------------------------------------------------------------------------------------------------
# ld_dpo_logps
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.0, 0.4, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ld_dpo_logps_against_reference(alpha, dtype):
    c, cm, r, rm = token_batch(dtype=dtype)
    shared = torch.minimum(cm.sum(1), rm.sum(1))
    got_c, got_r = prefopt.ld_dpo_logps(c, cm, r, rm, alpha=alpha)
    assert got_c.dtype == got_r.dtype == dtype and got_c.shape == got_r.shape == (4,)
    tol = dict(atol=1e-12, rtol=1e-12) if dtype == torch.float64 else dict(atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(got_c.double(), ld_reference(c, cm, shared, alpha), **tol)
    torch.testing.assert_close(got_r.double(), ld_reference(r, rm, shared, alpha), **tol)


def test_ld_dpo_logps_alpha_one_is_the_plain_sum():
    c, cm, r, rm = token_batch()
    got_c, got_r = prefopt.ld_dpo_logps(c, cm, r, rm, alpha=1.0)
    torch.testing.assert_close(got_c, (c * cm).sum(1))
    torch.testing.assert_close(got_r, (r * rm).sum(1))


def test_ld_dpo_logps_counts_from_the_completion_start():
    # Prompt positions (mask false) do not count: the shared length is in scored tokens.
    logps = torch.tensor([[-9.0, -1.0, -2.0, -3.0]])
    chosen_mask = torch.tensor([[False, True, True, True]])  # 3 scored tokens after a 1-token prompt
    rejected = torch.tensor([[-1.0, -1.0]])
    rejected_mask = torch.tensor([[True, True]])  # 2 scored tokens
    c, r = prefopt.ld_dpo_logps(logps, chosen_mask, rejected, rejected_mask, alpha=0.5)
    assert c.item() == pytest.approx(-1.0 - 2.0 + 0.5 * -3.0)
    assert r.item() == pytest.approx(-2.0)


def test_ld_dpo_logps_gradients():
    c, cm, r, rm = token_batch()
    c.requires_grad_()
    r.requires_grad_()
    out_c, out_r = prefopt.ld_dpo_logps(c, cm, r, rm, alpha=0.3)
    (out_c.sum() + out_r.sum()).backward()
    shared = torch.minimum(cm.sum(1), rm.sum(1))
    rank = cm.long().cumsum(1)
    want = torch.where(cm, torch.where(rank <= shared[:, None], 1.0, 0.3), 0.0).double()
    torch.testing.assert_close(c.grad, want)
    assert torch.autograd.gradcheck(
        lambda c, r: prefopt.ld_dpo_logps(c, cm, r, rm, alpha=0.3),
        (c.detach().requires_grad_(), r.detach().requires_grad_()),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_ld_dpo_logps_opcheck(dtype):
    c, cm, r, rm = token_batch(dtype=dtype)
    opcheck(torch.ops.prefopt.ld_dpo_logps.default, (c.requires_grad_(), cm, r.requires_grad_(), rm, 0.5))


def test_ld_dpo_logps_non_contiguous():
    c, cm, r, rm = token_batch(t_c=6, t_r=6)
    ct, cmt = c.t().contiguous().t(), cm.t().contiguous().t()  # column-major copies
    assert not ct.is_contiguous()
    got = prefopt.ld_dpo_logps(ct, cmt, r[:, ::1], rm, alpha=0.2)
    want = prefopt.ld_dpo_logps(c, cm, r, rm, alpha=0.2)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def test_ld_dpo_logps_bad_input():
    c, cm, r, rm = token_batch()
    with pytest.raises(RuntimeError, match=re.escape("alpha must be in [0, 1], got 1.5")):
        prefopt.ld_dpo_logps(c, cm, r, rm, alpha=1.5)
    with pytest.raises(RuntimeError, match=re.escape("chosen_mask must be bool, got Long")):
        prefopt.ld_dpo_logps(c, cm.long(), r, rm, alpha=0.5)
    msg = "rejected_mask must have the shape of rejected_token_logps [4, 5], got [4, 4]"
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        prefopt.ld_dpo_logps(c, cm, r, rm[:, :4], alpha=0.5)
    msg = "rejected_token_logps must have the batch size of chosen_token_logps (4), got 3"
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        prefopt.ld_dpo_logps(c, cm, r[:3], rm[:3], alpha=0.5)
    msg = "chosen_token_logps must be a floating tensor of shape [B, T], got [4]"
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        prefopt.ld_dpo_logps(c[:, 0], cm[:, 0], r, rm, alpha=0.5)
    with pytest.raises(TypeError, match="chosen_mask must be a torch.Tensor, got NoneType"):
        prefopt.ld_dpo_logps(c, None, r, rm, alpha=0.5)
    with pytest.raises(TypeError):
        prefopt.ld_dpo_logps(c, cm, r, rm, 0.5)  # alpha is keyword-only


# ---------------------------------------------------------------------------------------------------------
# mean_token_nll
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_mean_token_nll_against_reference(dtype):
    c, cm, _, _ = token_batch(dtype=dtype)
    got = prefopt.mean_token_nll(c, cm)
    assert got.dim() == 0 and got.dtype == dtype
    want = -c.double()[cm].sum() / cm.sum()
    tol = {torch.float64: dict(atol=1e-12, rtol=1e-12), torch.float32: dict(atol=1e-6, rtol=1e-6),
           torch.bfloat16: dict(atol=0.0, rtol=2.0**-7)}[dtype]
    torch.testing.assert_close(got.double(), want, **tol)


def test_mean_token_nll_is_a_token_mean_not_a_mean_of_rows():
    logps = torch.tensor([[-1.0, -2.0, -9.0], [-3.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert prefopt.mean_token_nll(logps, mask).item() == pytest.approx(2.0)


def test_mean_token_nll_with_nothing_scored_is_zero():
    logps = -torch.rand(2, 3)
    assert prefopt.mean_token_nll(logps, torch.zeros(2, 3, dtype=torch.bool)).item() == 0.0


def test_mean_token_nll_gradient_and_opcheck():
    c, cm, _, _ = token_batch()
    c.requires_grad_()
    prefopt.mean_token_nll(c, cm).backward()
    torch.testing.assert_close(c.grad, -cm.double() / cm.sum())
    assert torch.autograd.gradcheck(lambda x: prefopt.mean_token_nll(x, cm), (c.detach().requires_grad_(),))
    opcheck(torch.ops.prefopt.mean_token_nll.default, (c.detach().float().requires_grad_(), cm))


def test_mean_token_nll_bad_input():
    c, cm, _, _ = token_batch()
    with pytest.raises(RuntimeError, match=re.escape("mask must have the shape of token_logps [4, 7], got [4, 6]")):
        prefopt.mean_token_nll(c, cm[:, :6])
    with pytest.raises(RuntimeError, match=re.escape("mask must be bool, got Float")):
        prefopt.mean_token_nll(c, cm.float())
    with pytest.raises(RuntimeError, match="token_logps must be a floating tensor of shape \\[B, T\\]"):
        prefopt.mean_token_nll(c.long(), cm)
    with pytest.raises(TypeError, match="mask must be a torch.Tensor, got NoneType"):
        prefopt.mean_token_nll(c, None)


# ---------------------------------------------------------------------------------------------------------
# wpo_pair_weights
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_wpo_pair_weights_against_reference(dtype):
    g = torch.Generator().manual_seed(0)
    wc = (torch.rand(16, generator=g, dtype=torch.float64) - 0.8).to(dtype)
    wr = (torch.rand(16, generator=g, dtype=torch.float64) - 0.8).to(dtype)
    got = prefopt.wpo_pair_weights(wc, wr)
    want = torch.exp(wc.double() + wr.double()).clamp(max=1.0)
    assert got.dtype == dtype and (got <= 1).all() and (got > 0).all()
    tol = {torch.float64: dict(atol=1e-15, rtol=1e-15), torch.float32: dict(atol=1e-7, rtol=1e-6),
           torch.bfloat16: dict(atol=0.0, rtol=2.0**-7)}[dtype]
    torch.testing.assert_close(got.double(), want, **tol)
    assert (want == 1.0).any() and (want < 1.0).any()  # both sides of the clamp were exercised


def test_wpo_pair_weights_detached_and_opcheck():
    wc = torch.tensor([-0.5, 0.3, -1.0], requires_grad=True)
    wr = torch.tensor([-0.2, 0.4, -0.1], requires_grad=True)
    w = prefopt.wpo_pair_weights(wc, wr)
    assert not w.requires_grad
    torch.testing.assert_close(w, torch.tensor([math.exp(-0.7), 1.0, math.exp(-1.1)]))
    opcheck(torch.ops.prefopt.wpo_pair_weights.default, (wc.detach(), wr.detach()))


def test_wpo_pair_weights_bad_input():
    w = torch.zeros(4)
    msg = "rejected_log_weights must have shape [B] matching chosen_log_weights [4], got [3]"
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        prefopt.wpo_pair_weights(w, w[:3])
    with pytest.raises(RuntimeError, match=re.escape("chosen_log_weights must have shape [B], got [2, 2]")):
        prefopt.wpo_pair_weights(w.view(2, 2), w.view(2, 2))
    with pytest.raises(TypeError, match="rejected_log_weights must be a torch.Tensor, got list"):
        prefopt.wpo_pair_weights(w, [0.0] * 4)


# ---------------------------------------------------------------------------------------------------------
# Masked-out positions and half-precision accumulation
# ---------------------------------------------------------------------------------------------------------


def test_masked_out_non_finite_values_are_ignored():
    logps = torch.tensor([[-1.0, -2.0, float("-inf")]])
    mask = torch.tensor([[True, True, False]])
    assert prefopt.mean_token_nll(logps, mask).item() == pytest.approx(1.5)
    c, r = prefopt.ld_dpo_logps(logps, mask, logps, mask, alpha=0.5)
    assert c.item() == pytest.approx(-3.0) and r.item() == pytest.approx(-3.0)


def test_mean_token_nll_float16_accumulates_in_float32():
    logps = torch.full((1, 10000), -7.0, dtype=torch.float16)
    mask = torch.ones(1, 10000, dtype=torch.bool)
    assert prefopt.mean_token_nll(logps, mask).item() == pytest.approx(7.0)
