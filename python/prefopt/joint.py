"""DOVE's joint preference loss and the joint scoring recipes (torch.ops.prefopt.joint_*, .completion_labels,
.step_means).

DOVE (Bansal et al. 2024) compares instruction-response pairs whose prompts may differ: ``(x_c, y_c)`` against
``(x_l, y_l)``. Each side is scored with its joint log-prob ``log pi(x) + log pi(y | x)`` (prompt tokens included,
the first token not scored): :func:`joint_sequence_logps`. The data needs two prompts per pair (for instance
JSONL records ``{"prompt_chosen", "chosen", "prompt_rejected", "rejected"}``). Every function forwards to one C++
operator; the log-probs come from the fused token_logps kernel.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from ._library import load_library

load_library()

__all__ = ["joint_dpo_loss", "joint_labels", "completion_labels", "joint_sequence_logps", "step_means"]


def joint_dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    check_finite: bool = True,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DOVE's joint DPO loss: DPO-sigmoid over joint log-prob ratios, unreduced.

    ``losses = -logsigmoid(beta * ((P_c - Q_c) - (P_l - Q_l)))`` with P, Q the joint log-probs under the policy
    and the reference (from :func:`joint_sequence_logps`). With equal prompts it equals DPO on completions.

    Returns:
        ``(losses, chosen_rewards, rejected_rewards)``, each ``[B]``; rewards ``beta * (P - Q)``, detached.

    Example::

        >>> import torch
        >>> from prefopt.joint import joint_dpo_loss
        >>> pc, pl = torch.tensor([-30.0, -25.0]), torch.tensor([-31.0, -24.0])   # joint log-probs
        >>> qc, ql = torch.tensor([-30.5, -25.0]), torch.tensor([-30.5, -25.0])
        >>> losses, chosen_rewards, rejected_rewards = joint_dpo_loss(pc, pl, qc, ql, beta=0.1)
        >>> losses.shape
        torch.Size([2])
    """
    return torch.ops.prefopt.joint_dpo_loss(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta=float(beta),
        label_smoothing=float(label_smoothing), check_finite=bool(check_finite),
    )


def joint_labels(
    input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None, *, ignore_index: int = -100
) -> torch.Tensor:
    """Shifted labels ``[B, T-1]`` scoring every attended token but the first (prompt included).

    ``labels[b, t] = input_ids[b, t+1]`` when positions t and t+1 are both attended, else ``ignore_index``; pair
    them with ``logits[:, :-1]``. Works with left or right padding.

    Example::

        >>> import torch
        >>> from prefopt.joint import joint_labels
        >>> joint_labels(torch.tensor([[5, 6, 7], [0, 3, 4]]), torch.tensor([[1, 1, 1], [0, 1, 1]]))
        tensor([[   6,    7],
                [-100,    4]])
    """
    return torch.ops.prefopt.joint_labels(input_ids, attention_mask, ignore_index=int(ignore_index))


def completion_labels(
    input_ids: torch.Tensor,
    attention_mask: Optional[torch.Tensor],
    prompt_lengths: torch.Tensor,
    *,
    ignore_index: int = -100,
) -> torch.Tensor:
    """As :func:`joint_labels`, and also ``ignore_index`` for the first ``prompt_lengths[b]`` positions of row b
    (the prompt): completion-only labels with the causal shift.

    Example::

        >>> import torch
        >>> from prefopt.joint import completion_labels
        >>> completion_labels(torch.tensor([[5, 6, 7, 8]]), None, torch.tensor([2]))
        tensor([[-100,    7,    8]])
    """
    return torch.ops.prefopt.completion_labels(input_ids, attention_mask, prompt_lengths, ignore_index=int(ignore_index))


def joint_sequence_logps(
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: Optional[torch.Tensor] = None,
    *,
    average: bool = False,
    temperature: float = 1.0,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Joint log-probs ``log pi(x) + log pi(y | x)`` of whole sequences, the first token not scored.

    Args:
        logits: ``[B, T, V]`` as a causal LM emits them (position t predicts token t + 1).
        input_ids, attention_mask: ``[B, T]``.

    Returns:
        ``(logps [B], token_logps [B, T-1])``, differentiable with respect to ``logits``.

    Example::

        >>> import torch
        >>> from prefopt.joint import joint_sequence_logps
        >>> logits = torch.randn(2, 4, 10, requires_grad=True)
        >>> logps, token_logps = joint_sequence_logps(logits, torch.randint(10, (2, 4)))
        >>> logps.shape, token_logps.shape
        (torch.Size([2]), torch.Size([2, 3]))
    """
    return torch.ops.prefopt.joint_sequence_logps(
        logits, input_ids, attention_mask, average=bool(average), temperature=float(temperature)
    )


def step_means(
    values: torch.Tensor, step_ids: torch.Tensor, num_steps: int, *, check_inputs: bool = True
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-step means of per-token values (TPO's step log-probs and step embeddings).

    Args:
        values: ``[B, T]`` or ``[B, T, E]``.  step_ids: ``[B, T]`` integer in ``[0, num_steps)`` or negative
            (no step); aligned with ``values``.
        check_inputs: raise on a step id ``>= num_steps`` (one host sync); without it such positions are in no
            step.

    Returns:
        ``(means [B, S] or [B, S, E], mask [B, S])``; 0 for a step with no token.

    Example::

        >>> import torch
        >>> from prefopt.joint import step_means
        >>> means, mask = step_means(torch.tensor([[1.0, 3.0, 5.0, 7.0]]), torch.tensor([[0, 0, -1, 2]]), 3)
        >>> means, mask
        (tensor([[2., 0., 7.]]), tensor([[ True, False,  True]]))
    """
    return torch.ops.prefopt.step_means(values, step_ids, int(num_steps), check_inputs=bool(check_inputs))
