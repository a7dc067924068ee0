"""Tests of token_logps' in-place backward (the inplace_backward argument and the _token_logps_backward_inplace
operator): same gradient as the ordinary backward, written into the logits' buffer; leaves fall back; vocabulary
slices with a label offset; opcheck; CUDA against CPU (skipped with "no CUDA device"). Self-contained.
"""

import os
from pathlib import Path

import pytest
import torch
from torch.library import opcheck

torch.ops.load_library(os.environ.get("PREFOPT_LIBRARY") or str(Path(__file__).resolve().parents[2] / "build" / "libprefopt.so"))
OP = torch.ops.prefopt.token_logps.default
INPLACE = torch.ops.prefopt._token_logps_backward_inplace.default
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_inplace_backward_matches_and_reuses_the_buffer(dtype):
    torch.manual_seed(0)
    base = torch.randn(12, 301, dtype=torch.float64).to(dtype)
    labels = torch.randint(0, 301, (12,))
    labels[::4] = -100
    g = torch.randn(12, dtype=torch.float64 if dtype == torch.float64 else torch.float32)
    a = base.clone().requires_grad_()
    OP(a * 2, labels, -100, 1.0, False)[0].backward(g)
    b = base.clone().requires_grad_()
    logits = b * 2
    seen = {}
    logits.register_hook(lambda grad: seen.update(ptr=grad.data_ptr()))
    buffer = logits.data_ptr()
    OP(logits, labels, -100, 1.0, True)[0].backward(g)
    assert torch.equal(a.grad, b.grad)
    assert seen["ptr"] == buffer


def test_leaf_falls_back():
    x = torch.randn(4, 9, requires_grad=True)
    before = x.detach().clone()
    OP(x, torch.tensor([0, 1, 2, 3]), -100, 1.0, True)[0].sum().backward()
    assert torch.equal(x.detach(), before)


def test_slices_with_label_offset():
    torch.manual_seed(1)
    x = torch.randn(7, 50, dtype=torch.float64)
    labels = torch.randint(0, 50, (7,))
    labels[::3] = -100
    logps, lse = OP(x, labels, -100, 1.3)
    g = torch.randn(7, dtype=torch.float64)
    full = torch.ops.prefopt._token_logps_backward(g, x, labels, lse, -100, 1.3)
    for v0 in (0, 13, 40):
        width = min(13, 50 - v0)
        chunk = x[:, v0 : v0 + width].contiguous()
        INPLACE(g, chunk, labels, lse, -100, 1.3, v0, 50)
        torch.testing.assert_close(chunk, full[:, v0 : v0 + width], atol=1e-14, rtol=0)


def test_opcheck():
    x = torch.randn(6, 37)
    labels = torch.tensor([0, -100, 3, 4, 5, 36])
    opcheck(OP, (x.clone().requires_grad_(), labels, -100, 0.8, True))
    _, lse = OP(x, labels, -100, 0.8)
    opcheck(INPLACE, (torch.randn(6), x.clone(), labels, lse, -100, 0.8, 0, -1))


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("vocab", [1, 37, 1000, 4099])
def test_cuda_matches_cpu(dtype, vocab):
    x = (torch.randn(33, vocab) * 3).to(dtype)
    labels = torch.randint(0, vocab, (33,))
    labels[::5] = -100
    _, lse = OP(x, labels, -100, 0.9)
    g = torch.randn(33)
    cpu = x.clone()
    INPLACE(g, cpu, labels, lse, -100, 0.9, 0, -1)
    gpu = x.cuda()
    INPLACE(g.cuda(), gpu, labels.cuda(), lse.cuda(), -100, 0.9, 0, -1)
    atol = 1e-6 if dtype == torch.float32 else 2.0**-7 * cpu.float().abs().max().item()
    torch.testing.assert_close(gpu.cpu().float(), cpu.float(), atol=atol, rtol=1e-5)
