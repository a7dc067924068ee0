"""Tests of torch.ops.prefopt.fused_linear_logps / _fused_linear_logps_backward: opcheck, forward and gradients
against log_softmax(hidden @ weight.T).gather in float64 at chunk budgets that force many chunks, gradcheck, bad
input, and CUDA against CPU (skipped with "no CUDA device"). Self-contained: loads the library itself.
"""

import os
from pathlib import Path

import pytest
import torch
from torch.library import opcheck

torch.ops.load_library(os.environ.get("PREFOPT_LIBRARY") or str(Path(__file__).resolve().parents[2] / "build" / "libprefopt.so"))
OP = torch.ops.prefopt.fused_linear_logps.default
BACKWARD = torch.ops.prefopt._fused_linear_logps_backward.default
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def reference(h, w, labels, temperature=1.0):
    z = (h.double() @ w.double().t()) / temperature
    ignored = labels == -100
    safe = torch.where(ignored, torch.zeros_like(labels), labels)
    lp = torch.log_softmax(z, -1).gather(1, safe.unsqueeze(1)).squeeze(1)
    return torch.where(ignored, torch.zeros_like(lp), lp)


def inputs(n=13, hdim=6, v=301, dtype=torch.float64):
    torch.manual_seed(0)
    h = torch.randn(n, hdim, dtype=torch.float64).to(dtype)
    w = torch.randn(v, hdim, dtype=torch.float64).to(dtype)
    labels = torch.randint(0, v, (n,))
    labels[::4] = -100
    return h, w, labels


@pytest.mark.parametrize("chunk_bytes", [1, 5000, 1 << 27])
def test_matches_reference(chunk_bytes):
    h, w, labels = inputs()
    hx, wx = h.clone().requires_grad_(), w.clone().requires_grad_()
    logps, lse = OP(hx, wx, labels, -100, 0.7, chunk_bytes)
    want = reference(h, w, labels, 0.7)
    torch.testing.assert_close(logps, want, atol=1e-12, rtol=0)
    g = torch.randn(13, dtype=torch.float64)
    logps.backward(g)
    hr, wr = h.clone().requires_grad_(), w.clone().requires_grad_()
    reference(hr, wr, labels, 0.7).backward(g)
    torch.testing.assert_close(hx.grad, hr.grad, atol=1e-11, rtol=0)
    torch.testing.assert_close(wx.grad, wr.grad, atol=1e-11, rtol=0)


def test_gradcheck():
    h, w, labels = inputs(5, 4, 11)
    assert torch.autograd.gradcheck(
        lambda a, b: OP(a, b, labels, -100, 0.8, 100)[0], (h.requires_grad_(), w.requires_grad_())
    )


def test_bad_input():
    h, w, labels = inputs(4, 8, 10, torch.float32)
    with pytest.raises(RuntimeError, match=r"weight must have shape \[V, H\] with H = 8 matching hidden \[4, 8\], got \[10, 6\]"):
        OP(h, torch.randn(10, 6), labels, -100, 1.0, 1 << 20)
    with pytest.raises(RuntimeError, match=r"labels\[1\] = 10 is out of range"):
        OP(h, w, torch.tensor([0, 10, 1, 2]), -100, 1.0, 1 << 20)
    with pytest.raises(RuntimeError, match="chunk_bytes must be > 0"):
        OP(h, w, labels, -100, 1.0, 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_opcheck(dtype):
    h, w, labels = inputs(6, 8, 37, dtype)
    opcheck(OP, (h.requires_grad_(), w.requires_grad_(), labels, -100, 0.8, 4096))
    logps, lse = OP(h.detach(), w.detach(), labels, -100, 0.8, 4096)
    opcheck(BACKWARD, (torch.randn(6, dtype=lse.dtype), h.detach(), w.detach(), labels, lse, -100, 0.8, 4096, [True, True]))


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_matches_cpu(dtype):
    h, w, labels = inputs(37, 64, 3001, dtype)
    h = h / 4
    hc, wc = h.clone().requires_grad_(), w.clone().requires_grad_()
    hg, wg = h.cuda().requires_grad_(), w.cuda().requires_grad_()
    lc = OP(hc, wc, labels, -100, 1.0, 100000)[0]
    lg = OP(hg, wg, labels.cuda(), -100, 1.0, 100000)[0]
    tol = 1e-3 if dtype == torch.float32 else 5e-2
    torch.testing.assert_close(lg.cpu(), lc, atol=tol, rtol=1e-3)
    lc.sum().backward()
    lg.sum().backward()
    torch.testing.assert_close(hg.grad.cpu().float(), hc.grad.float(), atol=5e-2, rtol=1e-2)
    torch.testing.assert_close(wg.grad.cpu().float(), wc.grad.float(), atol=5e-2, rtol=1e-2)
