"""Tests of torch.ops.prefopt.pairwise_margin_reduce / _pairwise_margin_reduce_backward: opcheck, per-anchor values
and gradients against a float64 [B, K, K] composite written here from LOSSES.md section 5, gradcheck, bad input,
and CUDA against CPU (skipped with "no CUDA device"). Self-contained: loads the library itself.
"""

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.library import opcheck

torch.ops.load_library(os.environ.get("PREFOPT_LIBRARY") or str(Path(__file__).resolve().parents[2] / "build" / "libprefopt.so"))
OP = torch.ops.prefopt.pairwise_margin_reduce.default
BACKWARD = torch.ops.prefopt._pairwise_margin_reduce_backward.default
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

FNS = {
    "logsigmoid": F.logsigmoid,
    "log1p_exp_neg": lambda x: F.softplus(-x),
    "exp": torch.exp,
    "exp_neg": lambda x: torch.exp(-x),
}


def composite(s, labels=None, mask=None, gain=None, discount=None, positions=None, fn="log1p_exp_neg", reduce="sum",
              pairs="label_order", label_margin=0.0, max_distance=-1):
    k = s.shape[1]
    x = s.unsqueeze(2) - s.unsqueeze(1)
    w = (1 - torch.eye(k, dtype=s.dtype)).expand_as(x).clone()
    d = lambda t: t.to(s.dtype).unsqueeze(2) - t.to(s.dtype).unsqueeze(1)
    if mask is not None:
        w = w * (mask.unsqueeze(2) & mask.unsqueeze(1))
    if pairs == "label_order":
        w = w * (d(labels) > label_margin)
    if positions is not None and max_distance >= 0:
        w = w * (d(positions).abs() <= max_distance)
    if gain is not None:
        w = w * d(gain).abs()
    if discount is not None:
        w = w * d(discount).abs()
    has = w > 0
    if reduce == "sum":
        f = FNS[fn](x)
        return torch.where(has, w * f, torch.zeros_like(f)).sum(-1), w.sum(-1)
    sign = 1.0 if fn == "exp" else -1.0
    terms = torch.where(has, sign * x + w.clamp_min(1e-300).log(), torch.full_like(x, float("-inf")))
    any_ = has.any(-1)
    safe = torch.where(any_.unsqueeze(-1), terms, torch.zeros_like(terms))
    return torch.where(any_, torch.logsumexp(safe, -1), torch.full_like(w.sum(-1), float("-inf"))), w.sum(-1)


def inputs(b=3, k=7, dtype=torch.float64):
    torch.manual_seed(0)
    s = (torch.randn(b, k, dtype=torch.float64) * 2).to(dtype)
    labels = torch.randint(0, 4, (b, k))
    mask = torch.rand(b, k) > 0.2
    gain = 2.0 ** labels.double() - 1
    discount = 1 / torch.log1p(torch.randperm(k).double() + 1).repeat(b, 1)
    positions = torch.argsort(torch.argsort(-labels.double(), 1), 1)
    return s, labels, mask, gain, discount, positions


CONFIGS = [
    ("logsigmoid", "sum", "label_order"),
    ("log1p_exp_neg", "sum", "label_order"),
    ("exp_neg", "sum", "all"),
    ("exp_neg", "logsumexp", "label_order"),
    ("exp", "logsumexp", "all"),
]


@pytest.mark.parametrize("fn,reduce,pairs", CONFIGS)
@pytest.mark.parametrize("extras", [False, True])
def test_matches_composite(fn, reduce, pairs, extras):
    s, labels, mask, gain, discount, positions = inputs()
    kw = dict(mask=mask, gain=gain, discount=discount, positions=positions) if extras else {}
    md = 2 if extras else -1
    sx, sr = s.clone().requires_grad_(), s.clone().requires_grad_()
    r, w = OP(sx, labels, kw.get("mask"), kw.get("gain"), kw.get("discount"), kw.get("positions"), fn, reduce, pairs, 0.0, md)
    rr, wr = composite(sr, labels, fn=fn, reduce=reduce, pairs=pairs, max_distance=md, **kw)
    torch.testing.assert_close(r, rr, atol=1e-12, rtol=0)
    torch.testing.assert_close(w, wr, atol=1e-12, rtol=0)
    g = torch.randn_like(r)
    (torch.where(r.isfinite(), r, torch.zeros_like(r)) * g).sum().backward()
    (torch.where(rr.isfinite(), rr, torch.zeros_like(rr)) * g).sum().backward()
    torch.testing.assert_close(sx.grad, sr.grad, atol=1e-12, rtol=0)


def test_gradcheck():
    s, labels, _, gain, discount, _ = inputs(2, 6)
    s.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: OP(x, labels, None, gain, discount, None, "log1p_exp_neg", "sum", "label_order", 0.0, -1)[0], (s,))
    assert torch.autograd.gradcheck(lambda x: OP(x, None, None, None, None, None, "exp_neg", "logsumexp", "all", 0.0, -1)[0], (s,))


def test_bad_input():
    s = torch.randn(2, 4)
    with pytest.raises(RuntimeError, match="fn must be one of logsigmoid, log1p_exp_neg, exp, exp_neg, got 'hinge'"):
        OP(s, torch.zeros(2, 4), None, None, None, None, "hinge", "sum", "label_order", 0.0, -1)
    with pytest.raises(RuntimeError, match="reduce 'logsumexp' needs fn exp or exp_neg"):
        OP(s, torch.zeros(2, 4), None, None, None, None, "logsigmoid", "logsumexp", "label_order", 0.0, -1)
    with pytest.raises(RuntimeError, match=r"labels are required with pairs 'label_order'"):
        OP(s)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_opcheck(dtype):
    s, labels, mask, gain, discount, positions = inputs(3, 5, dtype)
    opcheck(OP, (s.requires_grad_(), labels, mask, gain, discount, positions, "log1p_exp_neg", "sum", "label_order", 0.0, 2))
    opcheck(OP, (s, None, mask, None, None, None, "exp_neg", "logsumexp", "all", 0.0, -1))
    r, _ = OP(s.detach(), labels, mask, None, None, None, "logsigmoid", "sum", "label_order", 0.0, -1)
    opcheck(BACKWARD, (torch.randn_like(r), s.detach(), r, labels, mask, None, None, None, "logsigmoid", "sum", "label_order", 0.0, -1))


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("k", [1, 5, 33, 300])
@pytest.mark.parametrize("fn,reduce,pairs", CONFIGS)
def test_cuda_matches_cpu(k, fn, reduce, pairs):
    s, labels, mask, gain, discount, positions = inputs(4, k, torch.float32)
    args = (labels, mask, gain, discount, positions, fn, reduce, pairs, 0.0, 3)
    c = s.clone().requires_grad_()
    g = s.cuda().requires_grad_()
    rc, wc = OP(c, *args)
    rg, wg = OP(g, *[a.cuda() if isinstance(a, torch.Tensor) else a for a in args])
    torch.testing.assert_close(rg.cpu(), rc, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(wg.cpu(), wc, atol=1e-5, rtol=1e-5)
    torch.where(rc.isfinite(), rc, torch.zeros_like(rc)).sum().backward()
    torch.where(rg.isfinite(), rg, torch.zeros_like(rg)).sum().backward()
    torch.testing.assert_close(g.grad.cpu(), c.grad, atol=1e-4, rtol=1e-5)
