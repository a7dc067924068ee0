"""Keyword-argument wrapper of the reward-model loss operator (torch.ops.prefopt.reward_loss): Bradley-Terry, with
a margin (Llama 2) or a magnitude (HelpSteer2-Preference), label smoothing and TRL's reward centring.

The function checks what only Python can name clearly (a required tensor given as None), then forwards to one
operator implemented in C++ and pairs the operator's metric vector with TRL's RewardTrainer metric names. It never
reduces the losses or re-implements the math in Python: the batch loss is ``result.losses.mean()``.
"""

from __future__ import annotations

from typing import Optional

import torch

from ._library import load_library
from .results import LossResult

load_library()

__all__ = ["RewardLossResult", "reward_loss"]

_REWARD_METRICS = sorted(["accuracy", "margin", "min_reward", "mean_reward", "max_reward"])


# The reward-model loss returns the package's one LossResult; the name is kept for code written against it.
RewardLossResult = LossResult


def reward_loss(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    *,
    loss_type: str = "bradley_terry",
    margin: Optional[torch.Tensor] = None,
    magnitude: Optional[torch.Tensor] = None,
    label_smoothing: float = 0.0,
    center_rewards_coefficient: float = 0.0,
    check_finite: bool = True,
) -> LossResult:
    """Bradley-Terry reward-model losses per pair, from the scalar rewards of the chosen and rejected responses.

    With ``d = chosen_rewards - rejected_rewards``, ``eps = label_smoothing`` and
    ``S(z) = -(1 - eps) * logsigmoid(z) - eps * logsigmoid(-z)``::

        "bradley_terry"  S(d)
        "margin"         S(d - margin)            (Llama 2; TRL's "margin" column)
        "scaled"         magnitude * S(d)         (HelpSteer2-Preference, magnitude in 1..3)
        losses = that + center_rewards_coefficient * (chosen_rewards + rejected_rewards) ** 2

    ``losses.mean()`` with ``"bradley_terry"`` or ``"margin"`` (and ``eps = 0``) is TRL's ``RewardTrainer``
    loss, including its ``center_rewards_coefficient`` term. TRL has neither ``"scaled"`` nor label smoothing.

    Args:
        chosen_rewards, rejected_rewards: ``[B]`` rewards from the reward model; B >= 1; one floating dtype
            (float32, bfloat16, float16, float64) and device. Differentiable.
        loss_type: ``"bradley_terry"``, ``"margin"`` or ``"scaled"``.
        margin: ``[B]`` floating margins; required by ``"margin"`` and rejected by the others. Not differentiated.
        magnitude: ``[B]`` magnitudes >= 0 (integer or real); required by ``"scaled"`` and rejected by the others.
        label_smoothing: probability that a preference label is flipped, in ``[0, 0.5]``.
        center_rewards_coefficient: finite and >= 0; 0 (TRL's None) turns centring off.
        check_finite: raise on NaN/Inf inputs or negative magnitudes (one host sync per input).

    Returns:
        a :class:`prefopt.LossResult` with ``losses`` (``[B]`` in the input dtype, computed in float32, or
        float64 for float64 input), ``loss`` (their mean, TRL's loss) and TRL's metrics ``accuracy`` (strict ``>``), ``margin`` (mean of ``d``,
        without the margin input), ``min_reward``, ``mean_reward``, ``max_reward`` (over all 2B rewards).

    Raises:
        ValueError: a reward tensor is None.
        RuntimeError: an unknown ``loss_type``, a missing or superfluous ``margin`` / ``magnitude``, shape, dtype or
            device mismatch, an option out of range, or a NaN/Inf input when ``check_finite``.

    Example::

        >>> import torch, prefopt.reward as rw
        >>> rc = torch.tensor([1.5, -0.2], requires_grad=True)
        >>> rr = torch.tensor([0.3, 0.4], requires_grad=True)
        >>> out = rw.reward_loss(rc, rr, loss_type="margin", margin=torch.tensor([1.0, 0.0]))
        >>> out.losses.mean().backward()
        >>> float(out.metrics["accuracy"])
        0.5
    """
    for name, value in (("chosen_rewards", chosen_rewards), ("rejected_rewards", rejected_rewards)):
        if value is None:
            raise ValueError(f"{name} is None: pass the reward model's [B] rewards")
    losses, metrics = torch.ops.prefopt.reward_loss(
        chosen_rewards,
        rejected_rewards,
        margin=margin,
        magnitude=magnitude,
        loss_type=str(loss_type),
        label_smoothing=float(label_smoothing),
        center_rewards_coefficient=float(center_rewards_coefficient),
        check_finite=bool(check_finite),
    )
    if metrics.numel() != len(_REWARD_METRICS):
        raise RuntimeError(f"the operator returned {metrics.numel()} metrics, expected {len(_REWARD_METRICS)}")
    return LossResult(losses=losses, metrics={name: metrics[i] for i, name in enumerate(_REWARD_METRICS)})
