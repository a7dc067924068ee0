"""Tests of prefopt.token_logps and the torch.ops.prefopt.token_logps / _token_logps_backward operators.

Forward and backward against a plain float64 reference written here from the formula (never from prefopt),
gradcheck in float64, opcheck, the low-precision rule (bf16/fp16 error at most 2x that of the same-dtype
ATen composite, and within a fixed tolerance), edge cases and bad input. The CUDA tests compare the CUDA
kernel with the CPU kernel and are skipped without a device.
"""

import pytest
import torch
from torch.library import opcheck

import prefopt

OP = torch.ops.prefopt.token_logps.default
BACKWARD_OP = torch.ops.prefopt._token_logps_backward.default

LOW_PRECISION = [torch.bfloat16, torch.float16]
ALL_DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
# Absolute forward tolerance against the float64 reference computed from the same (already rounded)
# logits: only the kernel's fp32 accumulation contributes, so it is tight for every input dtype.
FWD_ATOL = {torch.float64: 1e-12, torch.float32: 2e-5, torch.bfloat16: 2e-5, torch.float16: 2e-5}
# The gradient comes back in the logits dtype: one rounding, relative to the largest gradient entry.
GRAD_RTOL = {torch.float64: 1e-12, torch.float32: 1e-6, torch.bfloat16: 2.0**-7, torch.float16: 2.0**-9}


# ---------------------------------------------------------------------------------------------------------
# Reference: log softmax(x / T)[label] in float64, from the per-row max and the sum of exponentials.
# ---------------------------------------------------------------------------------------------------------


def reference(logits, labels, ignore_index=-100, temperature=1.0):
    """(logps, lse) in float64; differentiable (autograd of the formula gives the reference gradient).

    Every scored row must hold at least one finite logit.
    """
    x = logits.to(torch.float64) / temperature
    ignored = labels == ignore_index
    safe_labels = torch.where(ignored, torch.zeros_like(labels), labels)
    row_max = x.max(dim=1, keepdim=True).values.detach()
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    lse = row_max.squeeze(1) + torch.log(torch.exp(x - row_max).sum(dim=1))
    picked = x.gather(1, safe_labels.unsqueeze(1)).squeeze(1)
    zero = torch.zeros_like(lse)
    return torch.where(ignored, zero, picked - lse), torch.where(ignored, zero, lse).detach()


def reference_grad(logits, labels, grad_logps, ignore_index=-100, temperature=1.0):
    """d(sum grad_logps * logps)/d logits by autograd of the float64 reference."""
    x = logits.detach().to(torch.float64).requires_grad_()
    logps, _ = reference(x, labels, ignore_index, temperature)
    (grad,) = torch.autograd.grad(logps, x, grad_logps.to(torch.float64))
    return grad


def make_inputs(n, v, dtype, scale=3.0, ignore_every=4, ignore_index=-100):
    logits = (torch.randn(n, v, dtype=torch.float64) * scale).to(dtype)
    labels = torch.randint(0, v, (n,))
    if ignore_every:
        labels[::ignore_every] = ignore_index
    return logits, labels


def prefopt_grad(logits, labels, grad_logps, **kwargs):
    x = logits.detach().clone().requires_grad_()
    prefopt.token_logps(x, labels, **kwargs).backward(grad_logps)
    return x.grad


def max_err(a, b):
    return (a.to(torch.float64) - b.to(torch.float64)).abs().max().item()


# ---------------------------------------------------------------------------------------------------------
# Forward and backward against the reference
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("vocab", [37, 128])
@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_forward_matches_reference(dtype, vocab, temperature):
    logits, labels = make_inputs(12, vocab, dtype)
    logps, lse = OP(logits, labels, -100, temperature)
    ref_logps, ref_lse = reference(logits, labels, temperature=temperature)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    assert logps.dtype == acc and lse.dtype == acc
    assert logps.shape == (12,) and lse.shape == (12,)
    torch.testing.assert_close(logps.double(), ref_logps, atol=FWD_ATOL[dtype], rtol=0)
    torch.testing.assert_close(lse.double(), ref_lse, atol=FWD_ATOL[dtype], rtol=0)
    ignored = labels == -100
    assert (logps[ignored] == 0).all() and (lse[ignored] == 0).all()


def test_wrapper_returns_logps_only_and_lse_is_not_differentiable():
    logits, labels = make_inputs(6, 37, torch.float32)
    logits.requires_grad_()
    logps = prefopt.token_logps(logits, labels, ignore_index=-100, temperature=1.0)
    assert isinstance(logps, torch.Tensor) and logps.shape == (6,)
    assert logps.requires_grad
    _, lse = OP(logits, labels, -100, 1.0)
    assert not lse.requires_grad
    with pytest.raises(TypeError):
        prefopt.token_logps(logits, labels, -100)  # options are keyword-only


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_backward_matches_reference(dtype, temperature):
    logits, labels = make_inputs(10, 37, dtype)
    grad_logps = torch.randn(10, dtype=torch.float64).to(logits.dtype)
    grad = prefopt_grad(logits, labels, grad_logps, temperature=temperature)
    ref = reference_grad(logits, labels, grad_logps, temperature=temperature)
    assert grad.dtype == dtype and grad.shape == logits.shape
    atol = GRAD_RTOL[dtype] * ref.abs().max().item() + 1e-12
    torch.testing.assert_close(grad.double(), ref, atol=atol, rtol=0)
    assert (grad[labels == -100] == 0).all()


@pytest.mark.parametrize("temperature", [1.0, 0.6, 2.5])
@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_gradcheck(temperature, ignore_index):
    logits = torch.randn(6, 11, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, ignore_index, 10, 3, ignore_index, 7])
    assert torch.autograd.gradcheck(
        lambda x: prefopt.token_logps(x, labels, ignore_index=ignore_index, temperature=temperature), (logits,)
    )


def test_gradcheck_non_contiguous():
    base = torch.randn(9, 5, dtype=torch.float64, requires_grad=True)  # logits are base.t(): [5, 9]
    labels = torch.tensor([0, -100, 8, 3, 4])
    assert torch.autograd.gradcheck(lambda b: prefopt.token_logps(b.t(), labels, temperature=0.8), (base,))


def test_double_backward_is_refused():
    logits = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2])
    (grad,) = torch.autograd.grad(prefopt.token_logps(logits, labels).sum(), logits, create_graph=True)
    with pytest.raises(RuntimeError, match="does not support double backward"):
        grad.sum().backward()


# ---------------------------------------------------------------------------------------------------------
# Low precision: error <= 2x that of the same-dtype ATen composite, and within a fixed tolerance
# ---------------------------------------------------------------------------------------------------------


def aten_composite(logits, labels, ignore_index=-100, temperature=1.0):
    """What a user would write in the logits' own dtype: log_softmax then gather."""
    x = logits if temperature == 1.0 else logits / temperature
    ignored = labels == ignore_index
    safe_labels = torch.where(ignored, torch.zeros_like(labels), labels)
    picked = torch.log_softmax(x, dim=-1).gather(1, safe_labels.unsqueeze(1)).squeeze(1)
    return torch.where(ignored, torch.zeros_like(picked), picked)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("scale", [1.0, 8.0])
def test_low_precision_forward_error(dtype, temperature, scale):
    logits, labels = make_inputs(64, 37, dtype, scale=scale)
    ref, _ = reference(logits, labels, temperature=temperature)
    err = max_err(prefopt.token_logps(logits, labels, temperature=temperature), ref)
    aten_err = max_err(aten_composite(logits, labels, temperature=temperature), ref)
    assert err <= 2 * aten_err, f"prefopt error {err:.3e} > 2 x ATen {dtype} composite error {aten_err:.3e}"
    assert err <= 1e-4


@pytest.mark.parametrize("dtype", LOW_PRECISION)
@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("scale", [1.0, 8.0])
def test_low_precision_backward_error(dtype, temperature, scale):
    logits, labels = make_inputs(64, 37, dtype, scale=scale)
    grad_logps = torch.randn(64, dtype=torch.float64)
    ref = reference_grad(logits, labels, grad_logps, temperature=temperature)
    grad = prefopt_grad(logits, labels, grad_logps.float(), temperature=temperature)
    assert grad.dtype == dtype
    x = logits.detach().clone().requires_grad_()
    aten_composite(x, labels, temperature=temperature).backward(grad_logps.to(dtype))
    err, aten_err = max_err(grad, ref), max_err(x.grad, ref)
    assert err <= 2 * aten_err, f"prefopt grad error {err:.3e} > 2 x ATen {dtype} composite error {aten_err:.3e}"
    assert err <= GRAD_RTOL[dtype] * ref.abs().max().item()


# ---------------------------------------------------------------------------------------------------------
# Edge cases
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_vocabulary_of_one(dtype):
    logits = torch.randn(4, 1).to(dtype).requires_grad_()
    labels = torch.tensor([0, 0, -100, 0])
    logps, lse = OP(logits, labels, -100, 0.5)
    assert (logps == 0).all()
    torch.testing.assert_close(lse.double(), reference(logits, labels, temperature=0.5)[1], atol=1e-5, rtol=0)
    logps.sum().backward()
    assert (logits.grad == 0).all()


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_all_labels_ignored(dtype):
    logits = torch.randn(5, 37).to(dtype).requires_grad_()
    labels = torch.full((5,), -100)
    logps, lse = OP(logits, labels, -100, 1.0)
    assert (logps == 0).all() and (lse == 0).all()
    logps.sum().backward()
    assert logits.grad.shape == (5, 37) and (logits.grad == 0).all()


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_rows_of_neg_inf_except_one_entry(dtype, temperature):
    logits = torch.full((4, 9), float("-inf"), dtype=torch.float64)
    logits[0, 2], logits[1, 0], logits[2, 8], logits[3, 4] = 1.0, 3.0, -2.0, 0.5
    logits = logits.to(dtype)
    labels = torch.tensor([2, 1, 8, -100])  # row 1's label points at -inf: log-prob -inf, not NaN
    ref = reference(logits, labels, temperature=temperature)[0]
    x = logits.clone().requires_grad_()
    logps = prefopt.token_logps(x, labels, temperature=temperature)
    assert not torch.isnan(logps).any()
    assert logps[0].item() == 0.0 and logps[2].item() == 0.0 and logps[3].item() == 0.0
    assert logps[1].item() == float("-inf")
    torch.testing.assert_close(logps.double(), ref)
    grad_logps = torch.ones(4)
    logps.backward(grad_logps)
    assert torch.isfinite(x.grad).all()
    torch.testing.assert_close(x.grad.double(), reference_grad(logits, labels, grad_logps, temperature=temperature))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_extreme_logits_stay_finite(dtype):
    sign = torch.randint(0, 2, (8, 37)).double() * 2 - 1
    logits = (sign * 1e4 + torch.randn(8, 37, dtype=torch.float64)).to(dtype)
    labels = torch.randint(0, 37, (8,))
    labels[0] = logits[0].double().argmax()
    labels[1] = logits[1].double().argmin()
    x = logits.clone().requires_grad_()
    logps = prefopt.token_logps(x, labels, temperature=0.9)
    grad_logps = torch.randn(8)
    logps.backward(grad_logps)
    assert torch.isfinite(logps).all() and torch.isfinite(x.grad).all()
    ref = reference(logits, labels, temperature=0.9)[0]
    # logp = x/T - lse loses |lse| * 2^-24 to cancellation in fp32: a few 1e-3 at |x| ~ 1e4.
    atol = 1e-9 if dtype == torch.float64 else 4e-3
    torch.testing.assert_close(logps.double(), ref, atol=atol, rtol=1e-6)
    ref_grad = reference_grad(logits, labels, grad_logps, temperature=0.9)
    torch.testing.assert_close(x.grad.double(), ref_grad, atol=max(atol, GRAD_RTOL[dtype] * 3) * 2, rtol=0)


def strided_view(base, layout, v):
    """The non-contiguous [N, V] view of `base` that the layout names."""
    if layout == "transposed":
        return base.t()
    if layout == "vocab_strided":
        return base[:, ::2]
    if layout == "rows_strided":
        return base[::2, 1 : v + 1]
    return base.expand(6, v)


BASE_SHAPES = {"transposed": (37, 6), "vocab_strided": (6, 74), "rows_strided": (12, 40), "expanded": (1, 37)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", list(BASE_SHAPES))
def test_non_contiguous_logits(dtype, layout):
    n, v = 6, 37
    base = torch.randn(BASE_SHAPES[layout]).to(dtype).requires_grad_()
    logits = strided_view(base, layout, v)
    assert logits.shape == (n, v) and not logits.is_contiguous()
    labels = torch.stack([torch.randint(0, v, (n,)), torch.zeros(n, dtype=torch.long)], dim=1)[:, 0]
    labels[1] = -100
    assert not labels.is_contiguous()
    logps = prefopt.token_logps(logits, labels)
    torch.testing.assert_close(logps.double(), reference(logits, labels)[0], atol=FWD_ATOL[dtype], rtol=0)
    grad_logps = torch.randn(n)
    logps.backward(grad_logps)
    x = base.detach().to(torch.float64).requires_grad_()
    ref_logps, _ = reference(strided_view(x, layout, v), labels)
    ref_logps.backward(grad_logps.double())  # the gradient of the base, through the same view
    atol = GRAD_RTOL[dtype] * x.grad.abs().max().item() + 1e-6
    torch.testing.assert_close(base.grad.double(), x.grad, atol=atol, rtol=0)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("vocab", [37, 0])
def test_empty_batch(dtype, vocab):
    logits = torch.randn(0, vocab).to(dtype).requires_grad_()
    labels = torch.zeros(0, dtype=torch.long)
    logps, lse = OP(logits, labels, -100, 1.0)
    assert logps.shape == (0,) and lse.shape == (0,)
    logps.sum().backward()
    assert logits.grad.shape == (0, vocab)


@pytest.mark.parametrize("ignore_index", [0, -1, 5, 10_000])
def test_ignore_index_other_than_default(ignore_index):
    logits, _ = make_inputs(8, 37, torch.float32, ignore_every=0)
    labels = torch.tensor([1, 2, 3, 4, 6, 7, 8, 9])
    labels[[1, 4]] = ignore_index
    x = logits.clone().requires_grad_()
    logps = prefopt.token_logps(x, labels, ignore_index=ignore_index)
    ref = reference(logits, labels, ignore_index=ignore_index)[0]
    torch.testing.assert_close(logps.double(), ref, atol=FWD_ATOL[torch.float32], rtol=0)
    assert logps[1] == 0 and logps[4] == 0 and (logps[[0, 2, 3, 5, 6, 7]] != 0).all()
    logps.sum().backward()
    assert (x.grad[[1, 4]] == 0).all()
    # with a custom ignore_index, -100 is an ordinary (out-of-range) label again
    with pytest.raises(RuntimeError, match=r"labels\[0\] = -100 is out of range"):
        prefopt.token_logps(logits, torch.full((8,), -100), ignore_index=ignore_index)


# ---------------------------------------------------------------------------------------------------------
# Bad input: the error names the argument
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [37, 1000, -1])
def test_label_out_of_range(bad):
    logits = torch.randn(4, 37)
    labels = torch.tensor([0, 5, bad, 3])
    msg = rf"labels\[2\] = {bad} is out of range: expected a class index in \[0, 37\) or ignore_index \(-100\)"
    with pytest.raises(RuntimeError, match=msg):
        prefopt.token_logps(logits, labels)


def test_labels_wrong_dtype():
    with pytest.raises(RuntimeError, match="labels must be int64, got Int"):
        prefopt.token_logps(torch.randn(4, 37), torch.zeros(4, dtype=torch.int32))


@pytest.mark.parametrize("labels", [torch.zeros(5, dtype=torch.long), torch.zeros(4, 1, dtype=torch.long)])
def test_labels_shape_mismatch(labels):
    with pytest.raises(RuntimeError, match=r"labels must have shape \[N\] matching logits \[4, 37\], got"):
        prefopt.token_logps(torch.randn(4, 37), labels)


@pytest.mark.parametrize("shape", [(37,), (2, 3, 37)])
def test_logits_wrong_rank(shape):
    with pytest.raises(RuntimeError, match=r"logits must have shape \[N, V\], got"):
        prefopt.token_logps(torch.randn(shape), torch.zeros(shape[0], dtype=torch.long))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_logits_not_floating(dtype):
    with pytest.raises(RuntimeError, match="logits must be a floating tensor"):
        prefopt.token_logps(torch.zeros(4, 37, dtype=dtype), torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_temperature(temperature):
    with pytest.raises(RuntimeError, match="temperature must be finite and > 0"):
        prefopt.token_logps(torch.randn(4, 37), torch.zeros(4, dtype=torch.long), temperature=temperature)


def test_empty_vocabulary_with_rows():
    with pytest.raises(RuntimeError, match="logits must have a vocabulary of at least 1"):
        prefopt.token_logps(torch.randn(2, 0), torch.zeros(2, dtype=torch.long))


def test_backward_op_checks_lse_dtype():
    logits, labels = make_inputs(4, 37, torch.bfloat16)
    with pytest.raises(RuntimeError, match="lse must have dtype Float, got BFloat16"):
        BACKWARD_OP(torch.ones(4), logits, labels, torch.zeros(4, dtype=torch.bfloat16), -100, 1.0)
    with pytest.raises(RuntimeError, match=r"grad_logps must have shape \[N\]"):
        BACKWARD_OP(torch.ones(3), logits, labels, torch.zeros(4), -100, 1.0)


# ---------------------------------------------------------------------------------------------------------
# opcheck: schema, autograd registration, fake (Meta) kernels, AOT dispatch
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_opcheck_forward(dtype):
    logits, labels = make_inputs(6, 37, dtype)
    opcheck(OP, (logits.requires_grad_(), labels, -100, 0.8))
    opcheck(OP, (torch.randn(9, 5).to(dtype).t(), torch.tensor([0, 1, 8, -1, 4]), -1, 1.0))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_opcheck_backward(dtype):
    logits, labels = make_inputs(6, 37, dtype)
    _, lse = OP(logits, labels, -100, 0.8)
    grad_logps = torch.randn(6, dtype=lse.dtype)
    opcheck(BACKWARD_OP, (grad_logps, logits, labels, lse, -100, 0.8))


# ---------------------------------------------------------------------------------------------------------
# CUDA kernel against the CPU kernel on the same inputs
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("vocab", [1, 37, 1000, 4099])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_cuda_matches_cpu(cuda, dtype, vocab, temperature):
    logits, labels = make_inputs(33, vocab, dtype)
    logits[5, : vocab - 1] = float("-inf")
    grad_logps = torch.randn(33)
    cpu = logits.clone().requires_grad_()
    gpu = logits.to(cuda).requires_grad_()
    cpu_logps, cpu_lse = OP(cpu, labels, -100, temperature)
    gpu_logps, gpu_lse = OP(gpu, labels.to(cuda), -100, temperature)
    torch.testing.assert_close(gpu_logps.cpu(), cpu_logps, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gpu_lse.cpu(), cpu_lse, atol=1e-5, rtol=1e-5)
    cpu_logps.backward(grad_logps)
    gpu_logps.backward(grad_logps.to(cuda))
    assert gpu.grad.dtype == dtype
    atol = 1e-6 if dtype == torch.float32 else GRAD_RTOL[dtype] * cpu.grad.abs().max().item()
    torch.testing.assert_close(gpu.grad.cpu(), cpu.grad, atol=atol, rtol=1e-5)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_non_contiguous_and_empty(cuda, dtype):
    base = torch.randn(37, 6).to(dtype)
    labels = torch.tensor([0, -100, 36, 3, 4, 5])
    torch.testing.assert_close(
        prefopt.token_logps(base.to(cuda).t(), labels.to(cuda)).cpu(),
        prefopt.token_logps(base.t(), labels),
        atol=1e-5,
        rtol=1e-5,
    )
    empty_logits = torch.randn(0, 37, device=cuda).to(dtype)
    empty = prefopt.token_logps(empty_logits, torch.zeros(0, dtype=torch.long, device=cuda))
    assert empty.shape == (0,) and empty.device.type == "cuda"


@pytest.mark.cuda
def test_cuda_opcheck(cuda):
    logits, labels = make_inputs(6, 37, torch.float32)
    opcheck(OP, (logits.to(cuda).requires_grad_(), labels.to(cuda), -100, 0.8))
    _, lse = OP(logits.to(cuda), labels.to(cuda), -100, 0.8)
    opcheck(BACKWARD_OP, (torch.randn(6, device=cuda), logits.to(cuda), labels.to(cuda), lse, -100, 0.8))


@pytest.mark.cuda
def test_cuda_labels_on_other_device(cuda):
    with pytest.raises(RuntimeError, match="labels must be on the device of logits"):
        prefopt.token_logps(torch.randn(4, 37, device=cuda), torch.zeros(4, dtype=torch.long))
