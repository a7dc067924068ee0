"""Ranking metrics of scored lists and the idealised ranking accuracy of pairs (torch.ops.prefopt.*).

Every function forwards to one C++ operator; results are detached, per list (or per pair), float32 (float64 for
float64 scores). A list on which a metric is undefined gets NaN, so ``.nanmean()`` averages over the lists where
it is defined.
"""

from __future__ import annotations

from typing import Optional

import torch

from ._library import load_library

load_library()

__all__ = ["ranking_accuracy", "kendall_tau", "ndcg", "idealized_ranking_accuracy"]


def ranking_accuracy(scores: torch.Tensor, labels: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per list, the fraction of label-ordered pairs that the scores order the same way.

    Over the valid pairs ``(i, j)`` with ``labels[i] > labels[j]`` (ties never form a pair), the fraction with
    ``scores[i] > scores[j]`` (strict: tied scores count as wrong).

    Args:
        scores: ``[B, K]`` floating.
        labels: ``[B, K]`` graded labels, higher is better (integer or floating).
        mask: ``[B, K]`` bool or 0/1, the valid entries of lists shorter than K; None: all valid.

    Returns:
        ``[B]``; NaN for a list with no label-ordered pair.

    Example::

        >>> import torch
        >>> from prefopt.metrics import ranking_accuracy
        >>> ranking_accuracy(torch.tensor([[3.0, 1.0, 2.0]]), torch.tensor([[2, 1, 0]]))
        tensor([0.6667])
    """
    return torch.ops.prefopt.ranking_accuracy(scores, labels, mask)


def kendall_tau(scores: torch.Tensor, labels: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per list, Kendall's tau-b between scores and labels (scipy's default variant).

    ``(C - D) / sqrt((n0 - n1) (n0 - n2))`` over the valid unordered pairs: C concordant, D discordant, n0 all
    pairs, n1 tied in labels, n2 tied in scores.

    Returns:
        ``[B]`` in ``[-1, 1]``; NaN when the denominator is 0 (fewer than two valid entries, all labels tied or all
        scores tied).

    Example::

        >>> import torch
        >>> from prefopt.metrics import kendall_tau
        >>> kendall_tau(torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]]), torch.tensor([[2, 1, 0], [2, 1, 0]]))
        tensor([ 1., -1.])
    """
    return torch.ops.prefopt.kendall_tau(scores, labels, mask)


def ndcg(scores: torch.Tensor, labels: torch.Tensor, mask: Optional[torch.Tensor] = None, *, k: int = 0) -> torch.Tensor:
    """Per list, NDCG@k with gains ``2**label - 1`` and discounts ``1 / log2(1 + position)``.

    The ranking sorts the valid entries by score, descending, ties by index; the ideal ranking sorts them by
    label. ``k = 0`` uses the whole list. Labels should be ``>= 0``.

    Returns:
        ``[B]``; NaN where the ideal DCG is 0 (no valid entry with a positive gain).

    Example::

        >>> import torch
        >>> from prefopt.metrics import ndcg
        >>> round(ndcg(torch.tensor([[3.0, 1.0, 2.0]]), torch.tensor([[2, 1, 0]]), k=2).item(), 4)
        0.8262
    """
    return torch.ops.prefopt.ndcg(scores, labels, mask, k=int(k))


def idealized_ranking_accuracy(
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    preference_probs: torch.Tensor,
    *,
    beta: float = 0.1,
    check_finite: bool = True,
) -> torch.Tensor:
    """Whether the DPO optimum ranks each pair correctly (Chen et al. 2024, arXiv 2405.19534).

    ``1[(ref_chosen - ref_rejected) + (1 / beta) * log(P / (1 - P)) > 0]`` with P the ground-truth probability
    that the chosen response is preferred (P = 1 is always correct, P = 0 always wrong).

    Args:
        ref_chosen_logps, ref_rejected_logps: ``[B]`` reference log-probs, one floating dtype.
        preference_probs: ``[B]`` floating, in ``[0, 1]``.
        beta: DPO's temperature, > 0.
        check_finite: raise when a P lies outside ``[0, 1]`` or a log-prob is NaN/Inf (one host sync).

    Returns:
        ``[B]`` of 0/1 (float32, float64 for float64 input); its mean is the idealised ranking accuracy.

    Example::

        >>> import torch
        >>> from prefopt.metrics import idealized_ranking_accuracy
        >>> ref_c, ref_r = torch.tensor([-10.0, -10.0]), torch.tensor([-9.0, -9.0])
        >>> idealized_ranking_accuracy(ref_c, ref_r, torch.tensor([0.9, 0.5]), beta=0.1)
        tensor([1., 0.])
    """
    return torch.ops.prefopt.idealized_ranking_accuracy(
        ref_chosen_logps, ref_rejected_logps, preference_probs, beta=float(beta), check_finite=bool(check_finite)
    )
