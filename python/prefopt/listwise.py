"""Listwise and ranking preference losses over ``[B, K]`` scores (torch.ops.prefopt.*_loss).

Plackett-Luce (listwise DPO), the all-pairs baseline, LiPO-lambda, IRPO, PRO, TPO and RankList. Each function
forwards to one C++ operator and returns a :class:`prefopt.LossResult` with ``losses``, the per-list losses ``[B]``
(unreduced, differentiable), ``rewards``, the per-response rewards ``[B, K]`` (detached, 0 at masked entries), in
the input dtype, and ``loss``, their mean.

Shared conventions (docs/losses.md, "Listwise losses"): ``labels`` are graded scores, higher is better
(``label_type="grades"``), or ranks, lower is better (``label_type="ranks"``); ``mask`` marks the valid responses
of lists shorter than K (None: all valid), and masked entries are never read whatever they hold; ties in labels
never form a pair; a list with no pair (K = 1, all labels tied, fully masked) has loss 0; ``s = beta * (policy -
ref)`` unless stated.
"""

from __future__ import annotations

from typing import Optional

import torch

from ._library import load_library
from .results import LossResult

load_library()

__all__ = [
    "plackett_luce_loss",
    "all_pairs_loss",
    "lipo_lambda_loss",
    "irpo_loss",
    "pro_loss",
    "tpo_step_weights",
    "tpo_loss",
    "ranklist_loss",
]


def _result(out) -> LossResult:
    """The operator's (per-list losses [B], per-response rewards [B, K]) as the package's LossResult."""
    losses, rewards = out
    return LossResult(losses=losses, rewards=rewards)


def _require_reference(ref_logps: Optional[torch.Tensor], reference_free: bool) -> None:
    if ref_logps is None and not reference_free:
        raise ValueError("ref_logps is None: pass the reference model's log-probs, or reference_free=True")


def plackett_luce_loss(
    policy_logps: torch.Tensor,
    ref_logps: Optional[torch.Tensor],
    labels: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    *,
    beta: float = 0.1,
    top_m: int = 0,
    label_type: str = "grades",
    reference_free: bool = False,
    check_finite: bool = True,
) -> LossResult:
    """Plackett-Luce listwise DPO (DPO paper, appendix A.3), with top-m truncation.

    ``L = sum_i [logsumexp({s_i} u {s_j : y_j < y_i}) - s_i]`` over the valid responses among the top ``top_m``
    positions of the label order (0: all), i.e. ``-sum_k (s_tau(k) - LSE_{j >= k} s_tau(j))`` for strict labels.
    Tied responses do not compete with each other. With K = 2 it equals DPO-sigmoid.

    Args:
        policy_logps, ref_logps: ``[B, K]`` summed log-probs (``ref_logps`` may be None with ``reference_free``).
        labels: ``[B, K]`` grades or ranks.  mask: ``[B, K]`` or None.
        beta: > 0.  top_m: >= 0.  label_type: ``"grades"`` or ``"ranks"``.
        check_finite: raise on NaN/Inf in a valid entry (one host sync).

    Example::

        >>> import torch
        >>> from prefopt.listwise import plackett_luce_loss
        >>> policy = torch.tensor([[-10.0, -12.0, -11.0], [-9.0, -8.0, 0.0]], requires_grad=True)
        >>> ref = torch.full((2, 3), -11.0)
        >>> labels, mask = torch.tensor([[2, 0, 1], [0, 1, 0]]), torch.tensor([[1, 1, 1], [1, 1, 0]])
        >>> out = plackett_luce_loss(policy, ref, labels, mask, beta=0.1)
        >>> losses, rewards = out.losses, out.rewards
        >>> losses.shape, rewards.shape, rewards[1, 2].item()     # the masked entry is never read
        (torch.Size([2]), torch.Size([2, 3]), 0.0)
        >>> losses.mean().backward()
    """
    _require_reference(ref_logps, reference_free)
    return _result(torch.ops.prefopt.plackett_luce_loss(
        policy_logps, ref_logps, labels, mask, beta=float(beta), top_m=int(top_m), label_type=str(label_type),
        reference_free=bool(reference_free), check_finite=bool(check_finite),
    ))


def all_pairs_loss(
    policy_logps: torch.Tensor,
    ref_logps: Optional[torch.Tensor],
    labels: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    *,
    beta: float = 0.1,
    label_type: str = "grades",
    reference_free: bool = False,
    check_finite: bool = True,
) -> LossResult:
    """The all-pairs baseline: per list, the mean over its valid pairs (``y_i > y_j``) of ``-logsigmoid(s_i - s_j)``.

    Example::

        >>> import torch
        >>> from prefopt.listwise import all_pairs_loss
        >>> policy, ref = torch.tensor([[-10.0, -12.0, -11.0]]), torch.full((1, 3), -11.0)
        >>> out = all_pairs_loss(policy, ref, torch.tensor([[2, 0, 1]]))
        >>> losses, rewards = out.losses, out.rewards
        >>> losses.shape
        torch.Size([1])
    """
    _require_reference(ref_logps, reference_free)
    return _result(torch.ops.prefopt.all_pairs_loss(
        policy_logps, ref_logps, labels, mask, beta=float(beta), label_type=str(label_type),
        reference_free=bool(reference_free), check_finite=bool(check_finite),
    ))


def lipo_lambda_loss(
    policy_logps: torch.Tensor,
    ref_logps: Optional[torch.Tensor],
    labels: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    *,
    beta: float = 0.05,
    lambda_weighting: bool = True,
    label_type: str = "grades",
    reference_free: bool = False,
    check_finite: bool = True,
) -> LossResult:
    """LiPO-lambda (Liu et al. 2024): ``sum_{y_i > y_j} Delta_ij * log(1 + exp(-(s_i - s_j)))`` per list.

    ``Delta_ij = |G_i - G_j| * |1/D(tau_i) - 1/D(tau_j)|``, ``G = 2**y - 1``, ``D(tau) = ln(1 + tau)``, tau the
    1-based rank of each response under the current scores (detached; ties by index). With
    ``lambda_weighting=False`` every pair weighs 1 (a sum of DPO pair losses).

    Example::

        >>> import torch
        >>> from prefopt.listwise import lipo_lambda_loss
        >>> policy, ref = torch.tensor([[-10.0, -12.0, -11.0]]), torch.full((1, 3), -11.0)
        >>> out = lipo_lambda_loss(policy, ref, torch.tensor([[2, 0, 1]]), beta=0.05)
        >>> losses, rewards = out.losses, out.rewards
        >>> losses.shape
        torch.Size([1])
    """
    _require_reference(ref_logps, reference_free)
    return _result(torch.ops.prefopt.lipo_lambda_loss(
        policy_logps, ref_logps, labels, mask, beta=float(beta), lambda_weighting=bool(lambda_weighting),
        label_type=str(label_type), reference_free=bool(reference_free), check_finite=bool(check_finite),
    ))


def irpo_loss(
    policy_logps: torch.Tensor,
    ref_logps: Optional[torch.Tensor],
    labels: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    lengths: Optional[torch.Tensor] = None,
    *,
    beta: float = 1.0,
    weighting: str = "dcg",
    length_normalize: bool = False,
    label_type: str = "grades",
    reference_free: bool = False,
    check_finite: bool = True,
) -> LossResult:
    """IRPO (arXiv 2504.15477): ``-(1/n) sum_k w_k logsigmoid(-A_k)`` per list of n valid responses.

    ``A_k = log((1/(n-1)) sum_{j != k} exp(beta (h_j - h_k)))``; ``w_k`` by ``weighting``: ``"dcg"``
    ``(2**rel - 1) / log2(1 + pos)`` (default), ``"discount"`` ``1 / log2(1 + pos)`` and ``"linear_discount"``
    ``(2**rel - 1) / pos`` (the official code's two ablations), ``"uniform"`` 1; pos the 1-based position in the
    label order. ``length_normalize`` divides each log-ratio by ``lengths`` (token counts), as the official code's
    mean-token log-probs. The official code sums over lists: use ``losses.sum()``; prefopt's modules default to
    the mean.

    Example::

        >>> import torch
        >>> from prefopt.listwise import irpo_loss
        >>> policy, ref = torch.tensor([[-10.0, -12.0, -11.0]]), torch.full((1, 3), -11.0)
        >>> out = irpo_loss(policy, ref, torch.tensor([[2, 0, 1]]), weighting="dcg")
        >>> losses, rewards = out.losses, out.rewards
        >>> losses.shape
        torch.Size([1])
    """
    _require_reference(ref_logps, reference_free)
    return _result(torch.ops.prefopt.irpo_loss(
        policy_logps, ref_logps, labels, mask, lengths, beta=float(beta), weighting=str(weighting),
        length_normalize=bool(length_normalize), label_type=str(label_type), reference_free=bool(reference_free),
        check_finite=bool(check_finite),
    ))


def pro_loss(
    policy_logps: torch.Tensor,
    lengths: Optional[torch.Tensor],
    labels: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    *,
    sft_weight: float = 0.05,
    length_normalize: bool = True,
    official_epsilon: bool = False,
    label_type: str = "grades",
    check_finite: bool = True,
) -> LossResult:
    """PRO (Song et al., AAAI 2024), no reference: ranking loss plus the SFT term, per list.

    ``s_k = policy_logps_k / lengths_k``; for each response k with a strictly worse one, ``D_ki = r_k - r_i`` over
    the worse i, ``D*_k = max_i D_ki``, ``L_k = logsumexp({s_k D*_k} u {s_i D_ki}) - s_k D*_k`` (a log-sum-exp,
    never the raw exponentials of the released code); loss ``sum_k L_k + sft_weight (n-1)**2 (-p_best)``.
    Tied responses are left out of each other's terms. ``official_epsilon=True`` adds the released code's 1e-10
    inside each term's log: ``L_k = log(1e-10 + exp(s_k D*_k) + sum_i exp(s_i D_ki)) - s_k D*_k``.

    Args:
        policy_logps: ``[B, K]`` summed completion log-probs.  lengths: ``[B, K]`` token counts (None only with
            ``length_normalize=False``).  labels: the rewards r (grades) or ranks.

    Example::

        >>> import torch
        >>> from prefopt.listwise import pro_loss
        >>> policy = torch.tensor([[-10.0, -12.0, -11.0]], requires_grad=True)
        >>> lengths = torch.tensor([[5, 6, 4]])
        >>> out = pro_loss(policy, lengths, torch.tensor([[0.9, 0.1, 0.5]]), sft_weight=0.05)
        >>> losses, rewards = out.losses, out.rewards
        >>> rewards                                # the length-normalised log-probs
        tensor([[-2.0000, -2.0000, -2.7500]])
    """
    if lengths is None and length_normalize:
        raise ValueError("lengths is None: pass the responses' token counts, or length_normalize=False")
    return _result(torch.ops.prefopt.pro_loss(
        policy_logps, lengths, labels, mask, sft_weight=float(sft_weight), length_normalize=bool(length_normalize),
        official_epsilon=bool(official_epsilon), label_type=str(label_type), check_finite=bool(check_finite),
    ))


def tpo_step_weights(
    step_embeddings: torch.Tensor,
    labels: torch.Tensor,
    step_mask: Optional[torch.Tensor] = None,
    mask: Optional[torch.Tensor] = None,
    *,
    label_type: str = "grades",
) -> torch.Tensor:
    """TPO's adaptive step weights ``1 + cos(e_{k,s}, e_{best,s})``, ``[B, K, S]``, detached.

    ``step_embeddings`` ``[B, K, S, E]`` are the mean last hidden states of each step; the best response is the
    list's best-labelled valid one (first by index among ties). A step the best response lacks gets weight 1;
    invalid steps 0.

    Example::

        >>> import torch
        >>> from prefopt.listwise import tpo_step_weights
        >>> embeddings = torch.randn(1, 3, 2, 8)   # [B, K, S, E]
        >>> tpo_step_weights(embeddings, torch.tensor([[0, 2, 1]])).shape
        torch.Size([1, 3, 2])
    """
    return torch.ops.prefopt.tpo_step_weights(step_embeddings, labels, step_mask, mask, label_type=str(label_type))


def tpo_loss(
    policy_step_logps: torch.Tensor,
    ref_step_logps: torch.Tensor,
    labels: torch.Tensor,
    step_mask: Optional[torch.Tensor] = None,
    step_weights: Optional[torch.Tensor] = None,
    step_embeddings: Optional[torch.Tensor] = None,
    mask: Optional[torch.Tensor] = None,
    *,
    beta: float = 0.1,
    lambda_weighting: bool = True,
    label_type: str = "grades",
    check_finite: bool = True,
) -> LossResult:
    """TPO (Liao et al. 2024): adaptive step rewards, then the LiPO-lambda ranking loss over ``beta * R``.

    ``R_k = sum_s w_{k,s} h_{k,s} / sum_s w_{k,s}`` with ``h`` the step's mean-token log-ratio and ``w`` either
    ``step_weights`` or, from ``step_embeddings``, :func:`tpo_step_weights` (not both; neither: all 1). The loss
    is minimised: the released code's ``-logsigmoid(beta * L)`` wrapper, which maximises the ranking loss, is not
    reproduced.

    Args:
        policy_step_logps, ref_step_logps: ``[B, K, S]`` mean token log-probs of each step.
        labels: ``[B, K]``.  step_mask: ``[B, K, S]`` or None.  mask: ``[B, K]`` or None.

    Example::

        >>> import torch
        >>> from prefopt.listwise import tpo_loss
        >>> policy_steps = torch.randn(1, 3, 2, requires_grad=True)    # [B, K, S]
        >>> ref_steps, embeddings = torch.randn(1, 3, 2), torch.randn(1, 3, 2, 8)
        >>> out = tpo_loss(policy_steps, ref_steps, torch.tensor([[0, 2, 1]]), step_embeddings=embeddings)
        >>> losses, rewards = out.losses, out.rewards
        >>> losses.shape, rewards.shape
        (torch.Size([1]), torch.Size([1, 3]))
    """
    return _result(torch.ops.prefopt.tpo_loss(
        policy_step_logps, ref_step_logps, labels, step_mask, step_weights, step_embeddings, mask, beta=float(beta),
        lambda_weighting=bool(lambda_weighting), label_type=str(label_type), check_finite=bool(check_finite),
    ))


def ranklist_loss(
    policy_logps: torch.Tensor,
    ref_logps: Optional[torch.Tensor],
    labels: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    *,
    beta: float = 0.1,
    form: str = "exact",
    min_margin: float = 0.0,
    window: int = 0,
    label_type: str = "grades",
    reference_free: bool = False,
    check_finite: bool = True,
) -> LossResult:
    """RankList (Naini, Diaz, Busso 2025), prefopt's reading of its abstract (its equations were not public).

    Pairs ``y_i > y_j + min_margin`` within ``window`` levels of the label order (0: all pairs). ``form="exact"``:
    ``sum -logsigmoid(s_i - s_j)``; ``form="logsumexp"``: ``sum_i log(1 + sum_j exp(s_j - s_i))``, never above
    the exact form and equal to it with one pair per anchor.

    Example::

        >>> import torch
        >>> from prefopt.listwise import ranklist_loss
        >>> policy, ref = torch.tensor([[-10.0, -12.0, -11.0]]), torch.full((1, 3), -11.0)
        >>> exact = ranklist_loss(policy, ref, torch.tensor([[2, 0, 1]])).losses
        >>> lse = ranklist_loss(policy, ref, torch.tensor([[2, 0, 1]]), form="logsumexp").losses
        >>> bool(lse <= exact)
        True
    """
    _require_reference(ref_logps, reference_free)
    return _result(torch.ops.prefopt.ranklist_loss(
        policy_logps, ref_logps, labels, mask, beta=float(beta), form=str(form), min_margin=float(min_margin),
        window=int(window), label_type=str(label_type), reference_free=bool(reference_free),
        check_finite=bool(check_finite),
    ))
