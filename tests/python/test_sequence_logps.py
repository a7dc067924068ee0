"""Tests of prefopt.sequence_logps and the torch.ops.prefopt.sequence_logps operator.

Per-token and per-sequence log-probs (sum and mean over scored tokens) against a float64 reference written
here with explicit loops over sequences and positions (never from prefopt), gradcheck in float64 for both
modes, opcheck, edge cases (rows with no scored token, T = 1, empty batch, strided logits) and bad input.
The CUDA tests compare the CUDA path with the CPU path and are skipped without a device.
"""

import math

import pytest
import torch
from torch.library import opcheck

import prefopt

OP = torch.ops.prefopt.sequence_logps.default
ALL_DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
ATOL = {torch.float64: 1e-12, torch.float32: 5e-5, torch.bfloat16: 5e-5, torch.float16: 5e-5}


def reference(logits, labels, ignore_index=-100, average=False, temperature=1.0):
    """(logps [B], token_logps [B, T]) in float64 with plain loops: log softmax by max and sum of exp."""
    batch, steps, _ = logits.shape
    x = logits.detach().to(torch.float64)
    token = torch.zeros(batch, steps, dtype=torch.float64)
    logps = torch.zeros(batch, dtype=torch.float64)
    for b in range(batch):
        total, count = 0.0, 0
        for t in range(steps):
            label = int(labels[b, t])
            if label == ignore_index:
                continue
            row = [float(v) / temperature for v in x[b, t]]
            m = max(row)
            lse = m + math.log(sum(math.exp(v - m) for v in row))
            token[b, t] = row[label] - lse
            total += token[b, t].item()
            count += 1
        logps[b] = total / count if (average and count) else (0.0 if average else total)
    return logps, token


def make_inputs(batch, steps, vocab, dtype, prompt=2, ignore_index=-100):
    logits = (torch.randn(batch, steps, vocab, dtype=torch.float64) * 2).to(dtype)
    labels = torch.randint(0, vocab, (batch, steps))
    labels[:, :prompt] = ignore_index  # prompt positions
    if batch > 1 and steps > prompt + 1:
        labels[1, -1] = ignore_index  # padding at the end of a shorter sequence
    return logits, labels


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("average", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_forward_matches_reference(dtype, average, temperature):
    logits, labels = make_inputs(3, 6, 37, dtype)
    logps, token = prefopt.sequence_logps(logits, labels, average=average, temperature=temperature)
    ref_logps, ref_token = reference(logits, labels, average=average, temperature=temperature)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    assert logps.dtype == acc and token.dtype == acc
    assert logps.shape == (3,) and token.shape == (3, 6)
    torch.testing.assert_close(token.double(), ref_token, atol=ATOL[dtype], rtol=0)
    torch.testing.assert_close(logps.double(), ref_logps, atol=6 * ATOL[dtype], rtol=0)
    assert (token[labels == -100] == 0).all()


@pytest.mark.parametrize("average", [False, True])
def test_backward_matches_reference_autograd(average):
    logits, labels = make_inputs(3, 5, 11, torch.float32)
    x = logits.clone().requires_grad_()
    logps, token = prefopt.sequence_logps(x, labels, average=average)
    w_seq, w_tok = torch.randn(3), torch.randn(3, 5)
    ((logps * w_seq).sum() + (token * w_tok).sum()).backward()
    # Autograd of a vectorised float64 version of the same formula.
    x64 = logits.double().requires_grad_()
    scored = labels != -100
    logsm = x64 - torch.logsumexp(x64, dim=-1, keepdim=True)
    tok = torch.where(scored, logsm.gather(2, labels.clamp_min(0).unsqueeze(2)).squeeze(2), torch.zeros(()))
    seq = tok.sum(1) / (scored.sum(1).clamp_min(1) if average else 1)
    ((seq * w_seq.double()).sum() + (tok * w_tok.double()).sum()).backward()
    torch.testing.assert_close(x.grad.double(), x64.grad, atol=1e-6, rtol=0)


@pytest.mark.parametrize("average", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 1.7])
def test_gradcheck(average, temperature):
    logits = torch.randn(2, 4, 7, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[-100, 3, 6, 0], [-100, -100, 2, -100]])

    def fn(x):
        return prefopt.sequence_logps(x, labels, average=average, temperature=temperature)

    assert torch.autograd.gradcheck(fn, (logits,))


def test_gradcheck_non_contiguous():
    base = torch.randn(4, 2, 7, dtype=torch.float64, requires_grad=True)  # [T, B, V]: logits = base.transpose(0, 1)
    labels = torch.tensor([[-100, 3, 6, 0], [1, -100, 2, 5]])
    assert torch.autograd.gradcheck(
        lambda b: prefopt.sequence_logps(b.transpose(0, 1), labels, average=True), (base,)
    )


# ---------------------------------------------------------------------------------------------------------
# Edge cases
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("average", [False, True])
def test_row_with_no_scored_token_gives_zero(average):
    logits, labels = make_inputs(3, 4, 37, torch.float32)
    labels[1] = -100
    x = logits.clone().requires_grad_()
    logps, token = prefopt.sequence_logps(x, labels, average=average)
    assert logps[1].item() == 0.0 and (token[1] == 0).all()
    assert torch.isfinite(logps).all()
    logps.sum().backward()
    assert (x.grad[1] == 0).all()
    torch.testing.assert_close(logps.double(), reference(logits, labels, average=average)[0], atol=1e-4, rtol=0)


def test_all_ignored_batch():
    logits = torch.randn(2, 3, 37, requires_grad=True)
    labels = torch.full((2, 3), -100)
    for average in (False, True):
        logps, token = prefopt.sequence_logps(logits, labels, average=average)
        assert (logps == 0).all() and (token == 0).all()


@pytest.mark.parametrize("average", [False, True])
def test_length_one_sequences(average):
    logits, labels = make_inputs(4, 1, 37, torch.float32, prompt=0)
    logps, token = prefopt.sequence_logps(logits, labels, average=average)
    torch.testing.assert_close(logps, token[:, 0])
    torch.testing.assert_close(logps.double(), reference(logits, labels, average=average)[0], atol=1e-5, rtol=0)


def test_average_is_sum_over_count():
    logits, labels = make_inputs(3, 6, 37, torch.float64)
    total, _ = prefopt.sequence_logps(logits, labels)
    mean, _ = prefopt.sequence_logps(logits, labels, average=True)
    counts = (labels != -100).sum(1).double()
    torch.testing.assert_close(mean, total / counts)


@pytest.mark.parametrize("batch,steps", [(0, 5), (2, 0), (0, 0)])
def test_empty(batch, steps):
    logits = torch.randn(batch, steps, 37, requires_grad=True)
    labels = torch.zeros(batch, steps, dtype=torch.long)
    logps, token = prefopt.sequence_logps(logits, labels, average=True)
    assert logps.shape == (batch,) and token.shape == (batch, steps)
    assert (logps == 0).all()
    logps.sum().backward()
    assert logits.grad.shape == logits.shape


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_non_contiguous_logits(dtype):
    base = torch.randn(5, 3, 2 * 37).to(dtype)  # [T, B, 2V]
    logits = base.transpose(0, 1)[:, :, ::2]
    assert logits.shape == (3, 5, 37) and not logits.is_contiguous()
    labels = torch.randint(0, 37, (5, 3)).t()  # non-contiguous labels too
    labels[0, 0] = -100
    logps, token = prefopt.sequence_logps(logits, labels, average=True)
    ref_logps, ref_token = reference(logits, labels, average=True)
    torch.testing.assert_close(token.double(), ref_token, atol=ATOL[dtype], rtol=0)
    torch.testing.assert_close(logps.double(), ref_logps, atol=ATOL[dtype], rtol=0)


@pytest.mark.parametrize("ignore_index", [0, -1, 36])
def test_ignore_index_other_than_default(ignore_index):
    logits, labels = make_inputs(3, 6, 37, torch.float32, prompt=2, ignore_index=ignore_index)
    for average in (False, True):
        logps, token = prefopt.sequence_logps(logits, labels, ignore_index=ignore_index, average=average)
        ref_logps, ref_token = reference(logits, labels, ignore_index=ignore_index, average=average)
        torch.testing.assert_close(token.double(), ref_token, atol=ATOL[torch.float32], rtol=0)
        torch.testing.assert_close(logps.double(), ref_logps, atol=6 * ATOL[torch.float32], rtol=0)


def test_extreme_logits_stay_finite():
    logits = (torch.randint(0, 2, (2, 4, 37)).float() * 2 - 1) * 1e4
    labels = torch.randint(0, 37, (2, 4))
    for average in (False, True):
        logps, token = prefopt.sequence_logps(logits, labels, average=average)
        assert torch.isfinite(logps).all() and torch.isfinite(token).all()
        torch.testing.assert_close(logps.double(), reference(logits, labels, average=average)[0], atol=1e-2, rtol=1e-6)


def test_options_are_keyword_only():
    logits, labels = make_inputs(2, 3, 5, torch.float32, prompt=0)
    with pytest.raises(TypeError):
        prefopt.sequence_logps(logits, labels, -100)


# ---------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 37), (1, 2, 3, 37)])
def test_logits_wrong_rank(shape):
    with pytest.raises(RuntimeError, match=r"logits must have shape \[B, T, V\], got"):
        prefopt.sequence_logps(torch.randn(shape), torch.zeros(4, 2, dtype=torch.long))


@pytest.mark.parametrize("labels_shape", [(2, 4), (3, 3), (6,)])
def test_labels_shape_mismatch(labels_shape):
    with pytest.raises(RuntimeError, match=r"labels must have shape \[B, T\] matching logits \[2, 3, 37\], got"):
        prefopt.sequence_logps(torch.randn(2, 3, 37), torch.zeros(labels_shape, dtype=torch.long))


def test_labels_wrong_dtype():
    with pytest.raises(RuntimeError, match="labels must be int64, got Int"):
        prefopt.sequence_logps(torch.randn(2, 3, 37), torch.zeros(2, 3, dtype=torch.int32))


def test_label_out_of_range():
    labels = torch.zeros(2, 3, dtype=torch.long)
    labels[1, 2] = 37  # flat row 1 * 3 + 2 = 5
    with pytest.raises(RuntimeError, match=r"labels\[5\] = 37 is out of range"):
        prefopt.sequence_logps(torch.randn(2, 3, 37), labels)


def test_logits_not_floating():
    with pytest.raises(RuntimeError, match="logits must be a floating tensor"):
        prefopt.sequence_logps(torch.zeros(2, 3, 37, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))


@pytest.mark.parametrize("temperature", [0.0, -0.5])
def test_bad_temperature(temperature):
    with pytest.raises(RuntimeError, match="temperature must be finite and > 0"):
        prefopt.sequence_logps(torch.randn(2, 3, 37), torch.zeros(2, 3, dtype=torch.long), temperature=temperature)


# ---------------------------------------------------------------------------------------------------------
# opcheck
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("average", [False, True])
def test_opcheck(dtype, average):
    logits, labels = make_inputs(2, 4, 37, dtype)
    opcheck(OP, (logits.requires_grad_(), labels), {"ignore_index": -100, "average": average, "temperature": 0.9})


# ---------------------------------------------------------------------------------------------------------
# CUDA against CPU
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("average", [False, True])
def test_cuda_matches_cpu(cuda, dtype, average):
    logits, labels = make_inputs(3, 7, 1000, dtype)
    labels[2] = -100
    cpu = logits.clone().requires_grad_()
    gpu = logits.to(cuda).requires_grad_()
    cpu_logps, cpu_token = prefopt.sequence_logps(cpu, labels, average=average, temperature=0.8)
    gpu_logps, gpu_token = prefopt.sequence_logps(gpu, labels.to(cuda), average=average, temperature=0.8)
    torch.testing.assert_close(gpu_token.cpu(), cpu_token, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gpu_logps.cpu(), cpu_logps, atol=1e-4, rtol=1e-5)
    w = torch.randn(3)
    (cpu_logps * w).sum().backward()
    (gpu_logps * w.to(cuda)).sum().backward()
    atol = 1e-6 if dtype == torch.float32 else 2.0**-7 * cpu.grad.abs().max().item()
    torch.testing.assert_close(gpu.grad.cpu(), cpu.grad, atol=atol, rtol=1e-5)


@pytest.mark.cuda
def test_cuda_opcheck(cuda):
    logits, labels = make_inputs(2, 4, 37, torch.float32)
    opcheck(OP, (logits.to(cuda).requires_grad_(), labels.to(cuda)), {"average": True})
