"""Tests of torch.ops.prefopt.token_entropy: opcheck, a float64 reference written here from
H = -sum_v p log p, no gradient, the low-precision rule, and CUDA against CPU (skipped with "no CUDA device").
Self-contained: loads the library itself.
"""

import math
import os
from pathlib import Path

import pytest
import torch
from torch.library import opcheck

torch.ops.load_library(os.environ.get("PREFOPT_LIBRARY") or str(Path(__file__).resolve().parents[2] / "build" / "libprefopt.so"))
OP = torch.ops.prefopt.token_entropy.default
ALL = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def reference(x, labels=None, temperature=1.0):
    lp = torch.log_softmax(x.double() / temperature, -1)
    h = -(lp.exp() * lp.clamp_min(-1e300)).nan_to_num(0.0).sum(-1)
    if labels is not None:
        h = torch.where(labels == -100, torch.zeros_like(h), h)
    return h


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("vocab", [1, 37, 2049])
def test_matches_reference(dtype, vocab):
    torch.manual_seed(0)
    x = (torch.randn(9, vocab, dtype=torch.float64) * 3).to(dtype)
    labels = torch.randint(0, vocab, (9,))
    labels[::4] = -100
    h = OP(x, labels, -100, 1.3)
    atol = 1e-10 if dtype == torch.float64 else 3e-5 * max(1.0, math.log(vocab))
    torch.testing.assert_close(h.double(), reference(x, labels, 1.3), atol=atol, rtol=0)


def test_no_gradient_and_known_values():
    x = torch.zeros(2, 1000, requires_grad=True)
    h = OP(x, None, -100, 1.0)
    assert not h.requires_grad
    torch.testing.assert_close(h, torch.full((2,), math.log(1000.0)))
    one_hot = torch.full((1, 5), float("-inf"))
    one_hot[0, 2] = 1.0
    assert OP(one_hot, None, -100, 1.0).item() == 0.0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_rule(dtype):
    torch.manual_seed(1)
    x = (torch.randn(64, 3001, dtype=torch.float64) * 3).to(dtype)
    want = reference(x)
    err = (OP(x, None, -100, 1.0).double() - want).abs().max().item()
    lp = torch.log_softmax(x, -1)
    comp_err = (-(lp.exp() * lp).sum(-1).double() - want).abs().max().item()
    assert err <= max(2 * comp_err, 1e-6) and err <= 1e-4


def test_bad_input():
    with pytest.raises(RuntimeError, match=r"logits must have shape \[N, V\], got \[3\]"):
        OP(torch.randn(3), None, -100, 1.0)
    with pytest.raises(RuntimeError, match=r"labels must have shape \[N\] matching logits \[3, 5\], got \[2\]"):
        OP(torch.randn(3, 5), torch.zeros(2, dtype=torch.long), -100, 1.0)


@pytest.mark.parametrize("dtype", ALL)
def test_opcheck(dtype):
    x = torch.randn(6, 37).to(dtype)
    opcheck(OP, (x.requires_grad_(), torch.tensor([0, -100, 3, 4, 5, 6]), -100, 0.8))
    opcheck(OP, (torch.randn(9, 5).to(dtype).t(), None, -100, 1.0))


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("vocab", [1, 37, 1000, 4099])
def test_cuda_matches_cpu(dtype, vocab):
    x = (torch.randn(33, vocab) * 3).to(dtype)
    labels = torch.randint(0, vocab, (33,))
    labels[::5] = -100
    torch.testing.assert_close(OP(x.cuda(), labels.cuda(), -100, 1.0).cpu(), OP(x, labels, -100, 1.0), atol=1e-4, rtol=1e-5)
    opcheck(OP, (x.cuda(), labels.cuda(), -100, 1.0))
