"""Tests of prefopt.joint (DOVE) and its operators: joint labels that score the prompt but not the first token
(left and right padding), completion labels with the causal shift, joint log-probs against a plain log-softmax,
DOVE with equal prompts equals DPO, step means, gradcheck, opcheck and bad input. Loads PREFOPT_LIBRARY or
<repo>/build-losses/libprefopt.so.
"""

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
from prefopt import joint  # noqa: E402


def bigram(table, ids):
    """A causal model whose logits at t depend on token t only."""
    return table[ids]


def test_joint_labels_and_completion_labels():
    ids = torch.tensor([[5, 6, 7, 8, 0], [0, 0, 3, 4, 9]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [0, 0, 1, 1, 1]])
    assert joint.joint_labels(ids, mask).tolist() == [[6, 7, 8, -100], [-100, -100, 4, 9]]
    full = torch.tensor([[5, 6, 7, 8, 0], [1, 2, 3, 4, 9]])
    got = joint.completion_labels(full, torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]), torch.tensor([2, 3]))
    assert got.tolist() == [[-100, 7, 8, -100], [-100, -100, 4, 9]]


def test_joint_logps_match_a_plain_shifted_log_softmax():
    table = torch.randn(6, 6, dtype=torch.float64)
    ids = torch.tensor([[1, 2, 3, 4], [0, 5, 2, 1]])
    mask = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]])
    logits = bigram(table, ids)
    logps, token_logps = joint.joint_sequence_logps(logits, ids, mask)
    lsm = logits.log_softmax(-1)
    want = [sum(lsm[b, t, ids[b, t + 1]].item() for t in range(3) if mask[b, t] and mask[b, t + 1]) for b in range(2)]
    torch.testing.assert_close(logps, torch.tensor(want, dtype=torch.float64))
    assert token_logps.shape == (2, 3)


def test_dove_with_equal_prompts_is_dpo_on_completions():
    policy, reference = torch.randn(8, 8, dtype=torch.float64), torch.randn(8, 8, dtype=torch.float64)
    chosen = torch.tensor([[1, 2, 3, 4, 5, 6], [7, 1, 2, 2, 3, 0]])
    rejected = torch.tensor([[1, 2, 3, 6, 0, 0], [7, 1, 2, 5, 5, 4]])
    mc = torch.tensor([[1] * 6, [1] * 5 + [0]])
    mr = torch.tensor([[1] * 4 + [0] * 2, [1] * 6])
    prompt = torch.tensor([3, 3])

    def joint_logps(table, ids, mask):
        return joint.joint_sequence_logps(bigram(table, ids), ids, mask)[0]

    def completion_logps(table, ids, mask):
        labels = joint.completion_labels(ids, mask, prompt)
        return prefopt.sequence_logps(bigram(table, ids)[:, :-1], labels)[0]

    dove = joint.joint_dpo_loss(joint_logps(policy, chosen, mc), joint_logps(policy, rejected, mr),
                                joint_logps(reference, chosen, mc), joint_logps(reference, rejected, mr), beta=0.5)[0]
    dpo = prefopt.dpo_loss(completion_logps(policy, chosen, mc), completion_logps(policy, rejected, mr),
                           completion_logps(reference, chosen, mc), completion_logps(reference, rejected, mr), beta=0.5)[0]
    torch.testing.assert_close(dove, dpo)


def test_step_means():
    values = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([[-1, 0, 0, 1, 1, 1], [0, 2, 2, -1, 0, -1]])
    means, mask = joint.step_means(values, ids, 3)
    for b in range(2):
        for s in range(3):
            picked = [values[b, t].item() for t in range(6) if ids[b, t] == s]
            assert mask[b, s].item() == bool(picked)
            assert means[b, s].item() == pytest.approx(sum(picked) / len(picked) if picked else 0.0, abs=1e-12)
    assert torch.autograd.gradcheck(lambda v: joint.step_means(v, ids, 3)[0], (values,))


def test_gradcheck_and_opcheck():
    inputs = [(torch.randn(5, dtype=torch.float64) * 4 - 50).requires_grad_() for _ in range(4)]
    assert torch.autograd.gradcheck(lambda *x: joint.joint_dpo_loss(*x, beta=0.3)[0], inputs)
    opcheck(torch.ops.prefopt.joint_dpo_loss.default, tuple(t.detach().float().requires_grad_() for t in inputs),
            {"beta": 0.2, "check_finite": False})
    ids = torch.randint(0, 6, (2, 5))
    mask = torch.ones(2, 5, dtype=torch.bool)
    opcheck(torch.ops.prefopt.joint_labels.default, (ids, mask))
    opcheck(torch.ops.prefopt.completion_labels.default, (ids, mask, torch.tensor([2, 1])))
    opcheck(torch.ops.prefopt.joint_sequence_logps.default, (torch.randn(2, 5, 6, requires_grad=True), ids, mask))
    opcheck(torch.ops.prefopt.step_means.default, (torch.randn(2, 5, requires_grad=True), torch.tensor([[0, 0, 1, -1, 1]] * 2), 2),
            {"check_inputs": False})


def test_bad_input():
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(RuntimeError, match=re.escape("attention_mask must have shape [1, 3] matching input_ids, got [1, 2]")):
        joint.joint_labels(ids, torch.ones(1, 2))
    with pytest.raises(RuntimeError, match=re.escape("prompt_lengths must have shape [B] matching input_ids [1, 3], got [2]")):
        joint.completion_labels(ids, None, torch.tensor([1, 2]))
    with pytest.raises(RuntimeError, match=re.escape("step_ids must be < num_steps (3), got 3")):
        joint.step_means(torch.randn(1, 3), torch.tensor([[0, 1, 3]]), 3)
    with pytest.raises(RuntimeError, match=re.escape("beta must be in (0, ")):
        joint.joint_dpo_loss(*(torch.randn(2) for _ in range(4)), beta=0.0)
