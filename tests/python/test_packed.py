"""Tests of prefopt.segment_sum, packed_sequence_logps and packed_fused_linear_logps: opcheck of the segment_sum
operator, sums against a plain float64 loop (empty and length-1 sequences), packed scores equal to the padded
prefopt.sequence_logps of the same sequences with the same gradients, and against a transformers model run
padded and packed (position_ids restarting per sequence, flash-attention-style cu_seqlens) on its own logits.
"""

import pytest
import torch
from torch.library import opcheck

import prefopt

OP = torch.ops.prefopt.segment_sum.default


def test_opcheck_and_float64_loop():
    torch.manual_seed(0)
    cu = torch.tensor([0, 0, 1, 6, 6, 40])
    values = torch.randn(40, dtype=torch.float64, requires_grad=True)
    opcheck(OP, (values, cu))
    expected = torch.stack([values[cu[i]:cu[i + 1]].sum() for i in range(5)])
    got = prefopt.segment_sum(values, cu)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    (got * torch.arange(5.0, dtype=torch.float64)).sum().backward()
    torch.testing.assert_close(values.grad, torch.repeat_interleave(torch.arange(5.0, dtype=torch.float64), cu.diff()))


def test_bad_offsets_are_named():
    with pytest.raises(RuntimeError, match=r"cu_seqlens must end at S = 3"):
        prefopt.segment_sum(torch.ones(3), torch.tensor([0, 2]))
    with pytest.raises(RuntimeError, match=r"cu_seqlens must be non-decreasing"):
        prefopt.segment_sum(torch.ones(3), torch.tensor([0, 2, 1, 3]))


def _padded_and_packed(lengths, vocab=29, seed=1):
    """Random logits/labels for sequences of `lengths`, padded [N, T, V] and packed [S, V]."""
    torch.manual_seed(seed)
    n, t = len(lengths), max(lengths)
    logits = torch.randn(n, t, vocab)
    labels = torch.randint(vocab, (n, t))
    for i, length in enumerate(lengths):
        labels[i, max(length - 1, 0):] = -100
        labels[i, : min(2, length)] = -100  # a prompt of two tokens
    keep = torch.arange(t).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    cu = torch.tensor([0] + list(torch.tensor(lengths).cumsum(0).tolist()))
    return logits, labels, logits[keep], labels[keep], cu, keep


@pytest.mark.parametrize("average", [False, True])
def test_packed_equals_padded_with_gradients(average):
    lengths = [3, 30, 1, 12, 7]  # lengths varying tenfold, one of a single token
    logits, labels, packed_logits, packed_labels, cu, keep = _padded_and_packed(lengths)
    a = logits.clone().requires_grad_()
    b = packed_logits.clone().requires_grad_()
    padded, _ = prefopt.sequence_logps(a, labels, average=average)
    packed, per_token = prefopt.packed_sequence_logps(b, packed_labels, cu, average=average)
    torch.testing.assert_close(packed, padded, rtol=1e-5, atol=1e-6)
    assert per_token.shape == (sum(lengths),)
    w = torch.randn(len(lengths))
    (padded * w).sum().backward()
    (packed * w).sum().backward()
    torch.testing.assert_close(b.grad, a.grad[keep], rtol=1e-5, atol=1e-7)


def test_fused_linear_packed_equals_unfused():
    torch.manual_seed(2)
    h, w = torch.randn(20, 8, dtype=torch.float64), torch.randn(31, 8, dtype=torch.float64)
    labels = torch.randint(31, (20,))
    labels[[4, 9, 19]] = -100
    cu = torch.tensor([0, 5, 10, 10, 20])
    hx, wx = h.clone().requires_grad_(), w.clone().requires_grad_()
    fused, _ = prefopt.packed_fused_linear_logps(hx, wx, labels, cu, chunk_bytes=256)
    hy, wy = h.clone().requires_grad_(), w.clone().requires_grad_()
    plain, _ = prefopt.packed_sequence_logps(hy @ wy.t(), labels, cu)
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
    fused.sum().backward()
    plain.sum().backward()
    torch.testing.assert_close(hx.grad, hy.grad)
    torch.testing.assert_close(wx.grad, wy.grad)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_transformers_packed_forward_scores_like_its_padded_forward(attn):
    """Golden test of the packed layout against transformers: its own packed forward (one row, position_ids
    restarting per sequence, no attention mask, no cache; transformers then confines attention to each sequence) scored with
    prefopt.packed_sequence_logps gives the scores prefopt.sequence_logps gives its padded forward."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(3)
    config = transformers.LlamaConfig(vocab_size=53, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                      attn_implementation=attn)
    model = transformers.LlamaForCausalLM(config).eval()
    lengths = [4, 17, 2, 9, 1]
    seqs = [torch.randint(1, 53, (n,)) for n in lengths]
    t = max(lengths)
    ids = torch.zeros(len(seqs), t, dtype=torch.long)
    mask = torch.zeros(len(seqs), t, dtype=torch.long)
    labels = torch.full((len(seqs), t), -100)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
        labels[i, 1 : len(s) - 1] = s[2:]  # every token after the second, at the position that predicts it
    keep = mask.bool()
    cu = torch.tensor([0] + torch.tensor(lengths).cumsum(0).tolist())
    with torch.no_grad():
        padded_logits = model(input_ids=ids, attention_mask=mask).logits
        positions = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0)
        packed_logits = model(input_ids=ids[keep].unsqueeze(0), position_ids=positions, use_cache=False).logits[0]
    padded, _ = prefopt.sequence_logps(padded_logits, labels)
    packed, _ = prefopt.packed_sequence_logps(packed_logits, labels[keep], cu)
    torch.testing.assert_close(packed, padded, rtol=1e-5, atol=1e-5)
    # Packing without restarting positions would let sequences see each other: the scores then differ.
    with torch.no_grad():
        crossed = model(input_ids=ids[keep].unsqueeze(0), use_cache=False).logits[0]
    assert not torch.allclose(prefopt.packed_sequence_logps(crossed, labels[keep], cu)[0], padded, atol=1e-3)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_cuda_segment_sum_and_packed_logps_match_cpu(dtype):
    torch.manual_seed(4)
    cu = torch.tensor([0, 0, 1, 300, 300, 5000])
    values = torch.randn(5000).to(dtype)
    torch.testing.assert_close(prefopt.segment_sum(values.cuda(), cu.cuda()).cpu(), prefopt.segment_sum(values, cu),
                               rtol=1e-5, atol=1e-4)
    logits, labels = torch.randn(5000, 301).to(dtype), torch.randint(301, (5000,))
    labels[cu[1:] - 1] = -100
    cpu, _ = prefopt.packed_sequence_logps(logits, labels, cu)
    gpu, _ = prefopt.packed_sequence_logps(logits.cuda(), labels.cuda(), cu)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-3)
