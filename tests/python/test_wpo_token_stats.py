"""Tests of torch.ops.prefopt.wpo_token_stats: opcheck, a float64 reference written here from LOSSES.md section 1
(log w = log p(label) - log sum_v p_v^2, with LSE(z) and LSE(2z)), detachment, bad labels, and CUDA against CPU
(skipped with "no CUDA device"). Self-contained: loads the library itself.
"""

import os
from pathlib import Path

import pytest
import torch
from torch.library import opcheck

torch.ops.load_library(os.environ.get("PREFOPT_LIBRARY") or str(Path(__file__).resolve().parents[2] / "build" / "libprefopt.so"))
OP = torch.ops.prefopt.wpo_token_stats.default
ALL = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def reference(x, labels, temperature=1.0):
    z = x.double() / temperature
    ignored = labels == -100
    safe = torch.where(ignored, torch.zeros_like(labels), labels)
    lse = torch.logsumexp(z, -1)
    lse2 = torch.logsumexp(2 * z, -1)
    logp = z.gather(1, safe.unsqueeze(1)).squeeze(1) - lse
    log_w = logp - torch.log((torch.softmax(z, -1) ** 2).sum(-1))
    zero = torch.zeros_like(lse)
    return tuple(torch.where(ignored, zero, t) for t in (log_w, logp, lse, lse2))


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("vocab", [1, 37, 2049])
def test_matches_reference(dtype, vocab):
    torch.manual_seed(0)
    x = (torch.randn(9, vocab, dtype=torch.float64) * 3).to(dtype)
    labels = torch.randint(0, vocab, (9,))
    labels[::4] = -100
    got = OP(x, labels, -100, 0.7)
    atol = 1e-10 if dtype == torch.float64 else 3e-5
    for g, w in zip(got, reference(x, labels, 0.7)):
        torch.testing.assert_close(g.double(), w, atol=atol, rtol=0)


def test_detached_and_bad_labels():
    x = torch.randn(4, 9, requires_grad=True)
    assert not any(t.requires_grad for t in OP(x, torch.tensor([0, 1, 2, 3]), -100, 1.0))
    with pytest.raises(RuntimeError, match=r"labels\[2\] = 9 is out of range"):
        OP(x, torch.tensor([0, 1, 9, 3]), -100, 1.0)


@pytest.mark.parametrize("dtype", ALL)
def test_opcheck(dtype):
    x = torch.randn(6, 37).to(dtype)
    opcheck(OP, (x.requires_grad_(), torch.tensor([0, -100, 3, 4, 5, 36]), -100, 0.8))


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("vocab", [1, 37, 1000, 4099])
def test_cuda_matches_cpu(dtype, vocab):
    x = (torch.randn(33, vocab) * 3).to(dtype)
    labels = torch.randint(0, vocab, (33,))
    labels[::5] = -100
    for g, c in zip(OP(x.cuda(), labels.cuda(), -100, 1.0), OP(x, labels, -100, 1.0)):
        torch.testing.assert_close(g.cpu(), c, atol=1e-4, rtol=1e-5)
    opcheck(OP, (x.cuda(), labels.cuda(), -100, 1.0))
