"""Keyword-argument wrappers of the operators that turn per-token or per-sequence scores into the extra inputs of
the DPO family (torch.ops.prefopt.wpo_pair_weights, ld_dpo_logps, mean_token_nll).

They read ``[B]`` or ``[B, T]`` tensors and masks only, never logits: the per-token log-probs come from
:func:`prefopt.sequence_logps`. Each forwards to one operator implemented in C++.
"""

from __future__ import annotations

from typing import Tuple

import torch

from ._library import load_library

load_library()

__all__ = ["wpo_pair_weights", "ld_dpo_logps", "mean_token_nll"]


def _require_tensor(name: str, value) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


def wpo_pair_weights(chosen_log_weights: torch.Tensor, rejected_log_weights: torch.Tensor) -> torch.Tensor:
    """WPO's per-pair weight ``W = min(1, exp(w_c + w_r))`` (Zhou et al., 2024), detached.

    ``w`` is a sequence's log-weight: the mean over its completion tokens of ``logp_t - log sum_v p_v^2`` (the
    token's log-prob under the policy minus the log of the policy's collision probability at that position),
    computed by scoring from the logits. Pass ``W`` as ``weights=`` to :func:`prefopt.dpo_loss` (TRL's
    ``use_weighting=True``), which multiplies every pair's loss by it.

    Args:
        chosen_log_weights, rejected_log_weights: ``[B]`` floating, one dtype and device; B >= 1.

    Returns:
        ``[B]`` in the input dtype, in ``(0, 1]``, with no gradient.

    Raises:
        RuntimeError: a shape, dtype or device mismatch, or an empty batch.

    Example::

        >>> import torch, prefopt
        >>> w = prefopt.wpo_pair_weights(torch.tensor([-0.2, 0.3]), torch.tensor([-0.1, 0.4]))
        >>> w                                        # exp(-0.3), and min(1, exp(0.7))
        tensor([0.7408, 1.0000])
    """
    _require_tensor("chosen_log_weights", chosen_log_weights)
    _require_tensor("rejected_log_weights", rejected_log_weights)
    return torch.ops.prefopt.wpo_pair_weights(chosen_log_weights, rejected_log_weights)


def ld_dpo_logps(
    chosen_token_logps: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected_token_logps: torch.Tensor,
    rejected_mask: torch.Tensor,
    *,
    alpha: float,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """LD-DPO's length-desensitised sequence log-probs (Liu et al., 2024; TRL's ``ld_alpha``).

    Per pair, with ``l = min(L_c, L_r)`` the number of scored tokens the two responses share (``L`` = the count of
    true entries of a row's mask) and ``j`` the 1-based index of a scored token counted from the first scored token
    of the completion::

        p = sum_{j <= l} logp_j + alpha * sum_{j > l} logp_j

    Apply it to the policy's and to the reference's per-token log-probs alike, then pass the results to
    :func:`prefopt.dpo_loss`. (TRL 0.28 applies it to the policy only and counts positions from the start of the
    whole sequence, prompt included; docs/losses.md gives the relation.)

    Args:
        chosen_token_logps, rejected_token_logps: ``[B, T_c]`` and ``[B, T_r]`` floating per-token log-probs
            (e.g. the second output of :func:`prefopt.sequence_logps`); T_c and T_r may differ.
        chosen_mask, rejected_mask: bool tensors of the same shapes, on the same device: true where a token is
            scored (e.g. ``labels != -100``). Scored tokens need not be contiguous. Masked-out positions must hold
            finite values (they are multiplied by 0; :func:`prefopt.sequence_logps` writes 0 there).
        alpha: weight of the tokens beyond the shared length, in ``[0, 1]``; 1 gives the plain sums.

    Returns:
        ``(chosen, rejected)``, each ``[B]`` in the dtype of the token log-probs; differentiable with respect to
        them.

    Raises:
        RuntimeError: a shape, dtype or device mismatch, a mask that is not bool, or ``alpha`` outside ``[0, 1]``.

    Example::

        >>> import torch, prefopt
        >>> logps = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, 0.0]])
        >>> mask = torch.tensor([[True, True, True], [True, True, False]])
        >>> c, r = prefopt.ld_dpo_logps(logps, mask, logps[:, :2], mask[:, :2], alpha=0.5)
        >>> c                                        # l = 2 in both rows: -1 - 2 + 0.5 * (-3), and -2
        tensor([-4.5000, -2.0000])
    """
    for name, value in (
        ("chosen_token_logps", chosen_token_logps),
        ("chosen_mask", chosen_mask),
        ("rejected_token_logps", rejected_token_logps),
        ("rejected_mask", rejected_mask),
    ):
        _require_tensor(name, value)
    return torch.ops.prefopt.ld_dpo_logps(
        chosen_token_logps, chosen_mask, rejected_token_logps, rejected_mask, float(alpha)
    )


def mean_token_nll(token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean NLL over every scored token of a batch: ``-sum(token_logps[mask]) / max(1, mask.sum())``.

    Computed over the chosen completions, it is TRL's ``nll_loss``: the ``chosen_nll`` input of
    :func:`prefopt.dpo_loss` for ``loss_type="sft"`` and ``rpo_alpha``. A batch mean over tokens (not a mean of
    per-sequence means), as TRL's cross-entropy over the flattened chosen tokens.

    Args:
        token_logps: ``[B, T]`` floating per-token log-probs (e.g. from :func:`prefopt.sequence_logps`).
        mask: ``[B, T]`` bool, on the same device: true where a token is scored. Masked-out positions must hold
            finite values (they are multiplied by 0).

    Returns:
        0-dim, in the dtype of ``token_logps`` (summed in that dtype too: pass float32 token log-probs, as
        :func:`prefopt.sequence_logps` returns them, rather than float16); differentiable. 0 when no token is
        scored.

    Raises:
        RuntimeError: a shape or device mismatch, or a mask that is not bool.

    Example::

        >>> import torch, prefopt
        >>> logps = torch.tensor([[-1.0, -2.0, -9.0], [-3.0, 0.0, 0.0]])
        >>> mask = torch.tensor([[True, True, False], [True, False, False]])
        >>> prefopt.mean_token_nll(logps, mask)
        tensor(2.)
    """
    _require_tensor("token_logps", token_logps)
    _require_tensor("mask", mask)
    return torch.ops.prefopt.mean_token_nll(token_logps, mask)
