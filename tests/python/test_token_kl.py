"""Tests of torch.ops.prefopt.token_kl / _token_kl_backward: opcheck (schema, autograd registration, fake
kernels, AOT dispatch), forward and backward against a float64 reference written here from
KL(ref || policy) = sum_v p_ref (log p_ref - log p_pol), gradcheck, the low-precision rule, and the CUDA kernel
against the CPU kernel (skipped with "no CUDA device"). Self-contained: loads the library itself.
"""

import os
from pathlib import Path

import pytest
import torch
from torch.library import opcheck

torch.ops.load_library(os.environ.get("PREFOPT_LIBRARY") or str(Path(__file__).resolve().parents[2] / "build" / "libprefopt.so"))
OP = torch.ops.prefopt.token_kl.default
BACKWARD = torch.ops.prefopt._token_kl_backward.default
ALL = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def reference(pol, ref, labels=None, temperature=1.0, ignore_index=-100):
    lp = torch.log_softmax(pol.double() / temperature, -1)
    lr = torch.log_softmax(ref.double() / temperature, -1)
    kl = (lr.exp() * (lr - lp)).sum(-1)
    if labels is not None:
        kl = torch.where(labels == ignore_index, torch.zeros_like(kl), kl)
    return kl


def inputs(n, v, dtype):
    pol = (torch.randn(n, v, dtype=torch.float64) * 3).to(dtype)
    ref = (torch.randn(n, v, dtype=torch.float64) * 3).to(dtype)
    labels = torch.randint(0, v, (n,))
    labels[::3] = -100
    return pol, ref, labels


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("vocab", [1, 37, 2049])
def test_forward_and_backward_match_reference(dtype, vocab):
    torch.manual_seed(0)
    pol, ref, labels = inputs(7, vocab, dtype)
    x = pol.clone().requires_grad_()
    kl, lse_p, lse_r = OP(x, ref, labels, -100, 0.8)
    assert kl.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    atol = 1e-10 if dtype == torch.float64 else 3e-5
    torch.testing.assert_close(kl.double(), reference(pol, ref, labels, 0.8), atol=atol, rtol=0)
    g = torch.randn(7, dtype=kl.dtype)
    kl.backward(g)
    xd = pol.double().requires_grad_()
    reference(xd, ref, labels, 0.8).backward(g.double())
    gtol = {torch.float64: 1e-12, torch.float32: 1e-6}.get(dtype, 2e-2)
    rtol = {torch.float64: 1e-12, torch.float32: 1e-5}.get(dtype, 2.0**-7)
    torch.testing.assert_close(x.grad.double(), xd.grad, atol=gtol, rtol=rtol)


def test_gradcheck_and_reference_detached():
    pol = torch.randn(5, 9, dtype=torch.float64, requires_grad=True)
    ref = torch.randn(5, 9, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, -100, 3, 8, 1])
    assert torch.autograd.gradcheck(lambda p: OP(p, ref.detach(), labels, -100, 0.7)[0], (pol,))
    OP(pol, ref, None, -100, 1.0)[0].sum().backward()
    assert ref.grad is None and pol.grad is not None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_rule(dtype):
    torch.manual_seed(1)
    pol, ref, labels = inputs(64, 301, dtype)
    want = reference(pol, ref, labels)
    err = (OP(pol, ref, labels, -100, 1.0)[0].double() - want).abs().max().item()
    lr = torch.log_softmax(ref, -1)
    comp = (lr.exp() * (lr - torch.log_softmax(pol, -1))).sum(-1) * (labels != -100)
    assert err <= max(2 * (comp.double() - want).abs().max().item(), 1e-6)
    assert err <= 1e-4


def test_bad_input():
    with pytest.raises(RuntimeError, match=r"ref_logits must have the shape of policy_logits \[3, 5\], got \[3, 6\]"):
        OP(torch.randn(3, 5), torch.randn(3, 6), None, -100, 1.0)
    with pytest.raises(RuntimeError, match=r"ref_logits must have the dtype of policy_logits \(Float\), got Double"):
        OP(torch.randn(3, 5), torch.randn(3, 5, dtype=torch.float64), None, -100, 1.0)
    with pytest.raises(RuntimeError, match="labels must be int64"):
        OP(torch.randn(3, 5), torch.randn(3, 5), torch.zeros(3, dtype=torch.int32), -100, 1.0)


@pytest.mark.parametrize("dtype", ALL)
def test_opcheck(dtype):
    pol, ref, labels = inputs(6, 37, dtype)
    opcheck(OP, (pol.clone().requires_grad_(), ref, labels, -100, 0.8))
    opcheck(OP, (pol, ref, None, -100, 1.0))
    _, lp, lr = OP(pol, ref, labels, -100, 0.8)
    opcheck(BACKWARD, (torch.randn(6, dtype=lp.dtype), pol, ref, labels, lp, lr, -100, 0.8))


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("vocab", [1, 37, 1000, 4099])
def test_cuda_matches_cpu(dtype, vocab):
    pol, ref, labels = inputs(33, vocab, dtype)
    pol[5, : vocab - 1] = float("-inf")
    ref[5, : vocab - 1] = float("-inf")
    c = pol.clone().requires_grad_()
    g = pol.cuda().requires_grad_()
    kc = OP(c, ref, labels, -100, 0.9)
    kg = OP(g, ref.cuda(), labels.cuda(), -100, 0.9)
    for a, b in zip(kc, kg):
        torch.testing.assert_close(b.cpu(), a, atol=1e-4, rtol=1e-5)
    grad = torch.randn(33)
    kc[0].backward(grad)
    kg[0].backward(grad.cuda())
    torch.testing.assert_close(g.grad.cpu().float(), c.grad.float(), atol=1e-2 if dtype == torch.bfloat16 else 1e-6, rtol=1e-5)
    opcheck(OP, (g.detach(), ref.cuda(), labels.cuda(), -100, 0.9))
