"""Keyword-argument wrappers of the reference-free and odds-ratio loss operators: SimPO, CPO and ORPO
(torch.ops.prefopt.simpo_loss, cpo_loss, orpo_loss).

Each function checks what only Python can name clearly (a required tensor given as None), then forwards to one
operator implemented in C++ and pairs the operator's metric vector with TRL's metric names. None of them reduces
the losses or re-implements the math in Python: the batch loss is ``result.losses.mean()``.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import torch

from ._library import load_library
from .results import LossResult

load_library()

__all__ = ["PairLossResult", "simpo_loss", "cpo_loss", "orpo_loss"]

# TRL's pairwise metric names, as every loss here logs them.
_PAIR_METRICS = [
    "rewards/chosen",
    "rewards/rejected",
    "rewards/accuracies",
    "rewards/margins",
    "logps/chosen",
    "logps/rejected",
]


# SimPO, CPO and ORPO return the package's one LossResult; the name is kept for code written against it.
PairLossResult = LossResult


def _require(name: str, value: Optional[torch.Tensor], why: str) -> None:
    if value is None:
        raise ValueError(f"{name} is None: {why}")


def _named(names: List[str], values: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Pairs the operator's metric vector (ordered by name) with the names."""
    names = sorted(names)
    if values.numel() != len(names):
        raise RuntimeError(f"the operator returned {values.numel()} metrics, expected {len(names)}: {names}")
    return {name: values[i] for i, name in enumerate(names)}


def simpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    *,
    beta: float = 2.0,
    gamma: float = 0.5,
    label_smoothing: float = 0.0,
    check_finite: bool = True,
) -> LossResult:
    """SimPO per-pair losses (Meng et al., 2024), reference-free, on length-averaged log-probs.

    With ``m_c = policy_chosen_logps / chosen_lengths``, ``m_r = policy_rejected_logps / rejected_lengths``
    (lengths clamped to >= 1), ``z = beta * (m_c - m_r) - gamma`` and ``eps = label_smoothing``::

        losses           = -(1 - eps) * logsigmoid(z) - eps * logsigmoid(-z)
        chosen_rewards   = beta * m_c        (detached)
        rejected_rewards = beta * m_r        (detached)

    This is TRL's ``CPOTrainer`` with ``loss_type="simpo"`` and ``cpo_alpha=0`` (TRL's defaults there are
    beta 0.1 and cpo_alpha 1.0; these are the SimPO paper's). For SimPO plus an NLL term (CPO-SimPO) use
    :func:`cpo_loss` with ``loss_type="simpo"``.

    Args:
        policy_chosen_logps, policy_rejected_logps: ``[B]`` summed completion log-probs of the policy, e.g. from
            :func:`prefopt.sequence_logps`; B >= 1. One floating dtype (float32, bfloat16, float16, float64) and
            one device.
        chosen_lengths, rejected_lengths: ``[B]`` completion token counts (integer or real, same device). For
            log-probs that are already averaged, pass ``torch.ones_like``.
        beta: reward scale, finite and > 0.
        gamma: target reward margin (absolute), finite.
        label_smoothing: probability that a label is flipped, in ``[0, 0.5]``.
        check_finite: raise on NaN/Inf inputs or negative lengths (one host sync per input). With False, NaN/Inf
            propagate into the affected pairs' losses.

    Returns:
        a :class:`prefopt.LossResult` (``losses``, ``chosen_rewards``, ``rejected_rewards``, ``metrics``, ``loss``): ``[B]`` tensors in the
        input dtype (computed in float32, or float64 for float64 input) and TRL's metrics ``rewards/chosen``,
        ``rewards/rejected``, ``rewards/accuracies``, ``rewards/margins``, ``logps/chosen``, ``logps/rejected``
        (the log-prob metrics are means of the length-averaged log-probs).

    Raises:
        ValueError: a required tensor is None.
        RuntimeError: shape, dtype or device mismatch, an empty batch, ``beta <= 0``, ``label_smoothing`` outside
            ``[0, 0.5]``, or a NaN/Inf input or negative length when ``check_finite``.

    Example::

        >>> import torch, prefopt.reference_free as rf
        >>> pc = torch.tensor([-12.0, -30.0], requires_grad=True)
        >>> pr = torch.tensor([-20.0, -28.0], requires_grad=True)
        >>> lengths = torch.tensor([10, 20])
        >>> out = rf.simpo_loss(pc, pr, lengths, lengths, beta=2.0, gamma=0.5)
        >>> out.losses.mean().backward()
        >>> float(out.metrics["rewards/accuracies"])
        0.5
    """
    _require("chosen_lengths", chosen_lengths, "SimPO averages the log-probs over completion tokens")
    _require("rejected_lengths", rejected_lengths, "SimPO averages the log-probs over completion tokens")
    losses, chosen, rejected, metrics = torch.ops.prefopt.simpo_loss(
        policy_chosen_logps,
        policy_rejected_logps,
        chosen_lengths,
        rejected_lengths,
        beta=float(beta),
        gamma=float(gamma),
        label_smoothing=float(label_smoothing),
        check_finite=bool(check_finite),
    )
    return LossResult(losses=losses, chosen_rewards=chosen, rejected_rewards=rejected,
                      metrics=_named(_PAIR_METRICS, metrics))


def cpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    *,
    chosen_lengths: Optional[torch.Tensor] = None,
    rejected_lengths: Optional[torch.Tensor] = None,
    chosen_nll: Optional[torch.Tensor] = None,
    loss_type: str = "sigmoid",
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    cpo_alpha: float = 1.0,
    simpo_gamma: float = 0.5,
    alpha: float = 0.0,
    check_finite: bool = True,
) -> LossResult:
    """CPO per-pair losses (Xu et al., 2024) as TRL's ``CPOTrainer`` computes them, with TRL's option names.

    ``l_c``, ``l_r`` are the summed log-probs, or for ``ipo`` and ``simpo`` the length-averaged ones
    (``policy_*_logps / *_lengths``). With ``alpha != 0`` (AlphaPO) each becomes ``(1 - exp(l)**-alpha) / alpha``.
    With ``z = l_c - l_r`` and ``eps = label_smoothing``::

        sigmoid  -(1 - eps) * logsigmoid(beta * z) - eps * logsigmoid(-beta * z)
        hinge    relu(1 - beta * z)
        ipo      (z - 1 / (2 * beta)) ** 2
        simpo    the sigmoid form on z - simpo_gamma / beta       (CPO-SimPO when cpo_alpha > 0)

        losses           = loss_type(z) + cpo_alpha * chosen_nll
        chosen_rewards   = beta * l_c        (detached; AlphaPO-shaped when alpha != 0)
        rejected_rewards = beta * l_r

    ``losses.mean()`` equals TRL's ``losses.mean() + cpo_alpha * nll_loss``. TRL's ``loss_type="alphapo"`` is
    ``loss_type="simpo", cpo_alpha=0`` with a non-zero ``alpha``.

    Args:
        policy_chosen_logps, policy_rejected_logps: ``[B]`` summed completion log-probs of the policy; B >= 1;
            one floating dtype and device.
        chosen_lengths, rejected_lengths: ``[B]`` completion token counts; required by ``ipo`` and ``simpo``.
        chosen_nll: 0-dim mean token NLL of the chosen completions (``torch.ops.prefopt.mean_token_nll``; TRL's
            ``nll_loss``); required when ``cpo_alpha > 0``. Differentiable.
        loss_type: ``"sigmoid"``, ``"hinge"``, ``"ipo"`` or ``"simpo"``.
        beta: temperature, finite and > 0.
        label_smoothing: in ``[0, 0.5]`` for sigmoid and simpo; must be 0 for hinge and ipo (TRL ignores it there
            with a warning; prefopt raises).
        cpo_alpha: weight of the chosen NLL, finite and >= 0.
        simpo_gamma: target reward margin of simpo (absolute), finite.
        alpha: AlphaPO's reward-shape parameter, finite; 0 turns it off.
        check_finite: raise on NaN/Inf inputs or negative lengths (one host sync per input).

    Returns:
        a :class:`prefopt.LossResult` (``losses``, ``chosen_rewards``, ``rejected_rewards``, ``metrics``, ``loss``); metrics are TRL's
        ``rewards/*``, ``logps/chosen``, ``logps/rejected`` (means of ``l`` before AlphaPO) and ``nll_loss`` when
        ``chosen_nll`` is given.

    Raises:
        ValueError: a policy tensor is None.
        RuntimeError: an unknown ``loss_type``, a missing input the loss type needs (named), shape, dtype or device
            mismatch, ``beta <= 0``, an option out of range, or a NaN/Inf input when ``check_finite``.

    Example::

        >>> import torch, prefopt.reference_free as rf
        >>> pc, pr = torch.tensor([-12.0, -30.0]), torch.tensor([-20.0, -28.0])
        >>> out = rf.cpo_loss(pc, pr, chosen_nll=torch.tensor(1.2), beta=0.1, cpo_alpha=1.0)
        >>> out.metrics["nll_loss"]
        tensor(1.2000)
    """
    _require("policy_chosen_logps", policy_chosen_logps, "pass the policy's summed log-probs")
    _require("policy_rejected_logps", policy_rejected_logps, "pass the policy's summed log-probs")
    losses, chosen, rejected, metrics = torch.ops.prefopt.cpo_loss(
        policy_chosen_logps,
        policy_rejected_logps,
        chosen_lengths=chosen_lengths,
        rejected_lengths=rejected_lengths,
        chosen_nll=chosen_nll,
        loss_type=str(loss_type),
        beta=float(beta),
        label_smoothing=float(label_smoothing),
        cpo_alpha=float(cpo_alpha),
        simpo_gamma=float(simpo_gamma),
        alpha=float(alpha),
        check_finite=bool(check_finite),
    )
    names = _PAIR_METRICS + (["nll_loss"] if chosen_nll is not None else [])
    return LossResult(losses=losses, chosen_rewards=chosen, rejected_rewards=rejected, metrics=_named(names, metrics))


def orpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    chosen_nll: torch.Tensor,
    *,
    beta: float = 0.1,
    check_finite: bool = True,
) -> LossResult:
    """ORPO per-pair losses (Hong et al., 2024): the chosen NLL minus the weighted log-sigmoid of the log odds ratio.

    With mean token log-probs ``m_c = policy_chosen_logps / chosen_lengths``, ``m_r`` likewise::

        log_odds         = (m_c - m_r) - (log1mexp(m_c) - log1mexp(m_r))     (float32 or wider)
        losses           = chosen_nll - beta * logsigmoid(log_odds)
        chosen_rewards   = beta * m_c        (detached)
        rejected_rewards = beta * m_r

    ``log1mexp(x) = log(1 - exp(x))``, computed as ``log1p(-exp(x))`` below ``-ln 2`` and ``log(-expm1(x))``
    above. ``losses.mean()`` is TRL's ORPO loss ``nll_loss - (beta * logsigmoid(log_odds)).mean()``; TRL's own
    per-pair ``losses`` are ``beta * logsigmoid(log_odds)``, the negated second term.

    Args:
        policy_chosen_logps, policy_rejected_logps: ``[B]`` summed completion log-probs; B >= 1; one floating
            dtype and device.
        chosen_lengths, rejected_lengths: ``[B]`` completion token counts (clamped to >= 1); pass ones for
            log-probs that are already averaged.
        chosen_nll: 0-dim mean token NLL of the chosen completions (TRL's ``nll_loss``). Differentiable.
        beta: lambda of the paper (TRL's ``beta``), finite and > 0.
        check_finite: raise on NaN/Inf inputs, negative lengths or a mean log-prob > 0.

    Returns:
         a :class:`prefopt.LossResult`; metrics are TRL's ``rewards/*``, ``logps/chosen``, ``logps/rejected`` (means of
        ``m``), ``nll_loss``, ``log_odds_ratio`` (mean of ``logsigmoid(log_odds)``) and ``log_odds_chosen``
        (mean of ``log_odds``).

    Raises:
        ValueError: a required tensor is None.
        RuntimeError: shape, dtype or device mismatch, ``beta <= 0``, or a bad value when ``check_finite``.

    Example::

        >>> import torch, prefopt.reference_free as rf
        >>> pc, pr = torch.tensor([-12.0, -30.0]), torch.tensor([-20.0, -28.0])
        >>> lengths = torch.tensor([10, 20])
        >>> out = rf.orpo_loss(pc, pr, lengths, lengths, torch.tensor(1.2), beta=0.1)
        >>> sorted(out.metrics)[:3]
        ['log_odds_chosen', 'log_odds_ratio', 'logps/chosen']
    """
    _require("chosen_lengths", chosen_lengths, "ORPO uses mean token log-probs")
    _require("rejected_lengths", rejected_lengths, "ORPO uses mean token log-probs")
    _require("chosen_nll", chosen_nll, "ORPO's loss includes the chosen completions' mean token NLL")
    losses, chosen, rejected, metrics = torch.ops.prefopt.orpo_loss(
        policy_chosen_logps,
        policy_rejected_logps,
        chosen_lengths,
        rejected_lengths,
        chosen_nll,
        beta=float(beta),
        check_finite=bool(check_finite),
    )
    names = _PAIR_METRICS + ["nll_loss", "log_odds_ratio", "log_odds_chosen"]
    return LossResult(losses=losses, chosen_rewards=chosen, rejected_rewards=rejected, metrics=_named(names, metrics))
