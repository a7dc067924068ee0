"""Tests of prefopt.metrics and the torch.ops.prefopt ranking-metric operators: ranking accuracy, Kendall's tau-b,
NDCG@k against plain Python loops written from their definitions, the NaN convention, the idealised ranking
accuracy, opcheck, and bad input. Loads PREFOPT_LIBRARY or <repo>/build-losses/libprefopt.so.
"""

import math
import os
import re
import sys
from pathlib import Path

import pytest
import torch
from torch.library import opcheck

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))
LIBRARY = os.environ.get("PREFOPT_LIBRARY") or str(REPO / "build-losses" / "libprefopt.so")
os.environ["PREFOPT_LIBRARY"] = LIBRARY  # the package's own loader then loads this same file
torch.ops.load_library(LIBRARY)

from prefopt import metrics  # noqa: E402

NAN = float("nan")


def random_lists(B=16, K=5, levels=4, seed=0, integer_scores=False):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(B, K, generator=g, dtype=torch.float64)
    if integer_scores:
        scores = scores.mul(1.5).round()
    labels = torch.randint(0, levels, (B, K), generator=g).double()
    lengths = torch.randint(1, K + 1, (B,), generator=g)
    mask = torch.arange(K).unsqueeze(0) < lengths.unsqueeze(1)
    return scores, labels, mask


def valid(mask, b):
    return [k for k in range(mask.shape[1]) if mask[b, k]]


def accuracy_ref(s, y, m):
    out = []
    for b in range(s.shape[0]):
        pairs = right = 0
        for i in valid(m, b):
            for j in valid(m, b):
                if y[b, i] > y[b, j]:
                    pairs += 1
                    right += bool(s[b, i] > s[b, j])
        out.append(right / pairs if pairs else NAN)
    return out


def sign(x):
    return (x > 0) - (x < 0)


def tau_ref(s, y, m):
    out = []
    for b in range(s.shape[0]):
        v = valid(m, b)
        num = n0 = n1 = n2 = 0
        for a in range(len(v)):
            for c in range(a + 1, len(v)):
                dy, ds = sign(float(y[b, v[a]] - y[b, v[c]])), sign(float(s[b, v[a]] - s[b, v[c]]))
                n0 += 1
                n1 += dy == 0
                n2 += ds == 0
                num += dy * ds
        den = math.sqrt((n0 - n1) * (n0 - n2))
        out.append(num / den if den > 0 else NAN)
    return out


def ndcg_ref(s, y, m, k=0):
    out = []
    for b in range(s.shape[0]):
        v = valid(m, b)

        def dcg(order):
            return sum((2.0 ** float(y[b, i]) - 1) / math.log2(p + 2) for p, i in enumerate(order) if k == 0 or p < k)

        ideal = dcg(sorted(v, key=lambda i: -float(y[b, i])))
        out.append(dcg(sorted(v, key=lambda i: -float(s[b, i]))) / ideal if ideal > 0 else NAN)
    return out


def assert_same(got, want):
    want = torch.tensor(want, dtype=torch.float64)
    torch.testing.assert_close(got.double(), want, equal_nan=True, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("integer_scores", [False, True])
def test_ranking_accuracy_kendall_tau_and_ndcg_match_references(integer_scores):
    s, y, m = random_lists(integer_scores=integer_scores)
    assert_same(metrics.ranking_accuracy(s, y, m), accuracy_ref(s, y, m))
    assert_same(metrics.kendall_tau(s, y, m), tau_ref(s, y, m))
    for k in (0, 1, 3, 10):
        assert_same(metrics.ndcg(s, y, m, k=k), ndcg_ref(s, y, m, k))


def test_dtypes_and_nan_convention():
    s = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    y = torch.tensor([[0, 1, 2], [2, 1, 0], [1, 1, 1]])
    out = metrics.ranking_accuracy(s, y)
    assert out.dtype == torch.float32 and not out.requires_grad
    assert out[0] == 1 and out[1] == 1 and math.isnan(out[2])
    assert out.nanmean() == 1
    assert metrics.ranking_accuracy(s.bfloat16(), y).dtype == torch.float32
    assert metrics.kendall_tau(s.double(), y).dtype == torch.float64


def test_masked_entries_hold_anything():
    s = torch.tensor([[1.0, 2.0, float("nan")]])
    y = torch.tensor([[0.0, 1.0, 9.0]])
    m = torch.tensor([[True, True, False]])
    assert metrics.ranking_accuracy(s, y, m).item() == 1.0
    assert metrics.ndcg(s, y, m).item() == pytest.approx(1.0)


def test_idealized_ranking_accuracy():
    qc = torch.tensor([-10.0, -10.0, -10.0, -10.0, -12.0], dtype=torch.float64)
    qr = torch.tensor([-11.0, -9.0, -9.0, -9.0, -10.0], dtype=torch.float64)
    p = torch.tensor([0.5, 0.6, 0.9, 1.0, 0.0], dtype=torch.float64)
    got = metrics.idealized_ranking_accuracy(qc, qr, p, beta=0.1)
    want = []
    for a, c, q in zip(qc.tolist(), qr.tolist(), p.tolist()):
        if q in (0.0, 1.0):
            want.append(float(q))
        else:
            want.append(float((a - c) + math.log(q / (1 - q)) / 0.1 > 0))
    assert got.tolist() == want
    assert metrics.idealized_ranking_accuracy(qc, qr, p, beta=10.0)[1].item() == 0.0


def test_opcheck():
    # Every list defined (opcheck compares outputs without equal_nan): full lists, distinct labels.
    s = torch.randn(4, 4, dtype=torch.float64)
    y = torch.stack([torch.randperm(4) for _ in range(4)]).double()
    m = torch.ones(4, 4, dtype=torch.bool)
    opcheck(torch.ops.prefopt.ranking_accuracy.default, (s, y, m))
    opcheck(torch.ops.prefopt.kendall_tau.default, (s.float(), y, None))
    opcheck(torch.ops.prefopt.ndcg.default, (s, y, m), {"k": 2})
    qc, qr = torch.randn(4), torch.randn(4)
    opcheck(torch.ops.prefopt.idealized_ranking_accuracy.default, (qc, qr, torch.rand(4)), {"beta": 0.5, "check_finite": False})


def test_bad_input():
    s = torch.randn(2, 3)
    with pytest.raises(RuntimeError, match=re.escape("scores must have shape [B, K], got [3]")):
        metrics.ranking_accuracy(torch.randn(3), s)
    with pytest.raises(RuntimeError, match=re.escape("labels must have shape [2, 3] matching scores, got [2, 4]")):
        metrics.kendall_tau(s, torch.randn(2, 4))
    with pytest.raises(RuntimeError, match=re.escape("k must be >= 0 (0 = the whole list), got -1")):
        metrics.ndcg(s, s, k=-1)
    with pytest.raises(RuntimeError, match=re.escape("preference_probs must be in [0, 1], got 1.5 at index 0")):
        metrics.idealized_ranking_accuracy(torch.zeros(2), torch.zeros(2), torch.tensor([1.5, 0.5]))
    with pytest.raises(TypeError):
        metrics.ndcg(s, s, None, 2)  # k is keyword-only


@pytest.mark.parametrize(
    "module", ["prefopt.metrics", "prefopt.listwise", "prefopt.token_level", "prefopt.joint", "prefopt.degree"]
)
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
