"""Keyword-argument wrapper of the unpaired loss operator: KTO and apo_zero_unpaired (torch.ops.prefopt.kto_loss).

The function checks what only Python can name clearly (a required tensor given as None), forwards to one operator
implemented in C++, pairs the operator's metric vector with TRL's metric names and splits the rewards by label.
It never reduces the losses or re-implements the math in Python: the batch loss is ``result.losses.mean()``.
"""

from __future__ import annotations

from typing import Optional

import torch

from ._library import load_library
from .results import LossResult

load_library()

__all__ = ["KTOLossResult", "kto_loss"]

_KTO_METRICS = sorted(
    [
        "kl",
        "count/chosen",
        "count/rejected",
        "rewards/chosen_sum",
        "rewards/rejected_sum",
        "logps/chosen_sum",
        "logps/rejected_sum",
        "rewards/chosen",
        "rewards/rejected",
        "rewards/margins",
        "logps/chosen",
        "logps/rejected",
    ]
)


# KTO returns the package's one LossResult; the name is kept for code written against it.
KTOLossResult = LossResult


def kto_loss(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    labels: torch.Tensor,
    policy_kl_logps: Optional[torch.Tensor] = None,
    ref_kl_logps: Optional[torch.Tensor] = None,
    *,
    kl: Optional[torch.Tensor] = None,
    loss_type: str = "kto",
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
    check_finite: bool = True,
) -> LossResult:
    """KTO per-example losses (Ethayarajh et al., 2024) as TRL's ``KTOTrainer.kto_loss``, examples in input order.

    Each example is one completion with a label, desirable (``True``) or undesirable. With ``h = policy_logps -
    ref_logps`` and the KL baseline ``z0 = max(0, mean(policy_kl_logps - ref_kl_logps))`` (or ``max(0, kl)``),
    detached::

        loss_type "kto":                desirable    desirable_weight   * (1 - sigmoid(beta * (h - z0)))
                                        undesirable  undesirable_weight * (1 - sigmoid(beta * (z0 - h)))
        loss_type "apo_zero_unpaired":  desirable    desirable_weight   * (1 - sigmoid(beta * h))
                                        undesirable  undesirable_weight * sigmoid(beta * h)       (no z0)
        rewards = beta * h              (detached)

    TRL returns the desirable losses first, then the undesirable ones; prefopt keeps input order
    (``losses[labels]`` and ``losses[~labels]`` are TRL's two halves). No gradient reaches the KL log-probs.

    Args:
        policy_logps, ref_logps: ``[B]`` summed completion log-probs under the policy and the reference; B >= 1;
            one floating dtype (float32, bfloat16, float16, float64) and device.
        labels: ``[B]`` bool, ``True`` for desirable examples.
        policy_kl_logps, ref_kl_logps: ``[M]`` summed log-probs of mismatched prompt/completion pairs (TRL's KL
            completions), the dtype and device of ``policy_logps``. ``loss_type="kto"`` needs these or ``kl``;
            ``"apo_zero_unpaired"`` takes neither.
        kl: 0-dim precomputed ``mean(KL_p - KL_q)`` (for example averaged across processes, as TRL gathers it),
            instead of the KL log-probs.
        loss_type: ``"kto"`` or ``"apo_zero_unpaired"``.
        beta: temperature, finite and > 0.
        desirable_weight, undesirable_weight: weights of the two kinds of examples, finite and >= 0.
        check_finite: raise on NaN/Inf inputs (one host sync per input). With False, NaN/Inf propagate (through z0
            into every example).

    Returns:
        a :class:`prefopt.LossResult`: ``losses`` ([B], input order), ``rewards`` ([B] ``beta (policy - ref)``,
        detached), ``chosen_rewards`` / ``rejected_rewards`` (``rewards[labels]`` / ``rewards[~labels]``, TRL's two
        reward tensors), ``metrics``, ``loss`` (the mean, TRL's loss). Metrics, TRL's
        names: ``kl``, ``count/chosen``, ``count/rejected``, ``rewards/chosen_sum``, ``rewards/rejected_sum``,
        ``logps/chosen_sum``, ``logps/rejected_sum`` (per-batch sums, as TRL stores them) and the means TRL logs
        from them, ``rewards/chosen``, ``rewards/rejected``, ``logps/chosen``, ``logps/rejected`` (0 for an empty
        side) and ``rewards/margins``.

    Raises:
        ValueError: a required tensor is None.
        RuntimeError: an unknown ``loss_type``, a missing or superfluous KL input, labels that are not bool, shape,
            dtype or device mismatch, ``beta <= 0``, a negative weight, or a NaN/Inf input when ``check_finite``.

    Example::

        >>> import torch, prefopt.unpaired as up
        >>> policy = torch.tensor([-20.0, -25.0, -30.0], requires_grad=True)
        >>> ref = torch.tensor([-21.0, -24.0, -30.5])
        >>> labels = torch.tensor([True, False, True])
        >>> kl_p, kl_q = torch.tensor([-40.0, -41.0, -39.0]), torch.tensor([-40.5, -41.0, -39.2])
        >>> out = up.kto_loss(policy, ref, labels, kl_p, kl_q, beta=0.1)
        >>> out.losses.mean().backward()
        >>> float(out.metrics["count/chosen"])
        2.0
    """
    for name, value in (("policy_logps", policy_logps), ("ref_logps", ref_logps), ("labels", labels)):
        if value is None:
            raise ValueError(f"{name} is None: pass a [B] tensor")
    losses, rewards, metrics = torch.ops.prefopt.kto_loss(
        policy_logps,
        ref_logps,
        labels,
        policy_kl_logps,
        ref_kl_logps,
        kl=kl,
        loss_type=str(loss_type),
        beta=float(beta),
        desirable_weight=float(desirable_weight),
        undesirable_weight=float(undesirable_weight),
        check_finite=bool(check_finite),
    )
    if metrics.numel() != len(_KTO_METRICS):
        raise RuntimeError(f"the operator returned {metrics.numel()} metrics, expected {len(_KTO_METRICS)}")
    named = {name: metrics[i] for i, name in enumerate(_KTO_METRICS)}
    # TRL's two reward tensors are the rewards split by label (either may be empty).
    return LossResult(losses=losses, rewards=rewards, chosen_rewards=rewards[labels],
                      rejected_rewards=rewards[~labels], metrics=named)
