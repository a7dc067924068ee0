"""Tests of prefopt.degree (SPO): the degree cross-entropy against a float64 reference, the SPO combination, hidden
state pooling, the deterministic key-phrase extractor and graded-removal augmenter on fixed texts, opcheck and bad
input. Loads PREFOPT_LIBRARY or <repo>/build-losses/libprefopt.so.
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
os.environ["PREFOPT_LIBRARY"] = LIBRARY
torch.ops.load_library(LIBRARY)

import prefopt  # noqa: E402
from prefopt import degree  # noqa: E402

RAKE_TEXT = (
    "Compatibility of systems of linear constraints over the set of natural numbers. Criteria of compatibility "
    "of a system of linear Diophantine equations are considered."
)


def ce_ref(logits, target, eps=0.0):
    row = logits.tolist()
    m = max(row)
    lse = m + math.log(sum(math.exp(v - m) for v in row))
    return (1 - eps) * (lse - row[target]) + eps * sum(lse - v for v in row) / len(row)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_degree_loss_matches_cross_entropy(eps):
    logits = torch.randn(10, 4, dtype=torch.float64) * 3
    degrees = torch.randint(0, 4, (10,))
    got = degree.degree_loss(logits, degrees, label_smoothing=eps)
    torch.testing.assert_close(got, torch.tensor([ce_ref(logits[i], int(degrees[i]), eps) for i in range(10)], dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda x: degree.degree_loss(x, degrees, label_smoothing=eps), (logits.requires_grad_(),))


def test_spo_adds_the_weighted_degree_loss():
    pc, pr, rc, rr = (torch.randn(4, dtype=torch.float64) - 30 for _ in range(4))
    align = prefopt.dpo_loss(pc, pr, rc, rr)[0].mean()
    logits = torch.randn(8, 4, dtype=torch.float64, requires_grad=True)
    degrees = torch.arange(8) % 4
    loss, per_example = degree.spo_loss(align, logits, degrees, degree_weight=0.25)
    assert loss.item() == pytest.approx(align.item() + 0.25 * per_example.mean().item(), abs=1e-12)
    loss.backward()
    assert logits.grad.abs().sum() > 0


def test_pooling():
    hidden = torch.randn(2, 4, 3, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]])
    torch.testing.assert_close(degree.pool_hidden_states(hidden, mask)[0], hidden[0, :2].mean(0))
    torch.testing.assert_close(degree.pool_hidden_states(hidden, mask, pooling="last")[1], hidden[1, 3])


def test_keyphrases_on_a_fixed_text():
    phrases = degree.extract_keyphrases(RAKE_TEXT)
    assert phrases[:4] == [("linear diophantine equations", 8.5), ("linear constraints", 4.5), ("natural numbers", 4.0),
                           ("compatibility", 1.0)]
    assert len(phrases) == 9
    assert degree.extract_keyphrases(RAKE_TEXT) == phrases  # deterministic
    assert degree.extract_keyphrases("red apples and green pears", stop_words=["and"]) == [("red apples", 4.0), ("green pears", 4.0)]


def test_graded_removal_on_a_fixed_text():
    text = "The quick brown fox jumps over the lazy dog."
    assert degree.graded_removal(text, num_degrees=3) == [(text, 0), ("The over the lazy dog.", 1), ("The over the.", 2)]
    assert [n for _, n in degree.graded_removal(RAKE_TEXT, num_degrees=4)] == [0, 3, 6, 9]
    assert [n for _, n in degree.graded_removal(RAKE_TEXT, num_degrees=5)] == [0, 2, 5, 7, 9]


def test_opcheck():
    logits = torch.randn(6, 3, requires_grad=True)
    degrees = torch.tensor([0, 1, 2, 0, 1, 2])
    opcheck(torch.ops.prefopt.degree_loss.default, (logits, degrees), {"check_inputs": False})
    opcheck(torch.ops.prefopt.spo_loss.default, (torch.tensor(0.5, requires_grad=True), logits, degrees), {"check_inputs": False})
    opcheck(torch.ops.prefopt.pool_hidden_states.default, (torch.randn(2, 4, 3, requires_grad=True), torch.ones(2, 4)),
            {"pooling": "last"})


def test_bad_input():
    with pytest.raises(RuntimeError, match=re.escape("degrees must be in [0, 3), got 3 at index 1")):
        degree.degree_loss(torch.randn(2, 3), torch.tensor([0, 3]))
    with pytest.raises(RuntimeError, match=re.escape("num_degrees must be >= 1, got 0")):
        degree.graded_removal("x", num_degrees=0)
    with pytest.raises(RuntimeError, match=re.escape("pooling must be one of: mean, last; got 'max'")):
        degree.pool_hidden_states(torch.randn(1, 2, 3), pooling="max")


def test_opcheck_text_operators():
    # No tensors in or out: schema, autograd registration and fake-tensor checks apply. test_aot_dispatch_dynamic
    # is left out because its output comparison (torch.testing.assert_close) cannot compare str results.
    utils = ("test_schema", "test_autograd_registration", "test_faketensor")
    opcheck(torch.ops.prefopt.extract_keyphrases.default, (RAKE_TEXT,), {"max_words": 3}, test_utils=utils)
    opcheck(torch.ops.prefopt.graded_removal.default, (RAKE_TEXT,), {"num_degrees": 3, "stop_words": ["of", "the"]},
            test_utils=utils)
