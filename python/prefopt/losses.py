"""Keyword-argument wrappers of the loss operators (torch.ops.prefopt.dpo_loss).

Each function checks what only Python can name clearly (a missing optional tensor), then forwards to one
operator implemented in C++. None of them reduces the losses or re-implements the math in Python.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from ._library import load_library

load_library()

__all__ = ["dpo_loss"]


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: Optional[torch.Tensor] = None,
    ref_rejected_logps: Optional[torch.Tensor] = None,
    *,
    loss_type: str = "sigmoid",
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    reference_free: bool = False,
    check_finite: bool = True,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO-family per-pair losses and implicit rewards, unreduced, as TRL's ``DPOTrainer.dpo_loss``.

    With ``h_c = policy_chosen_logps - ref_chosen_logps``, ``h_r = policy_rejected_logps - ref_rejected_logps``
    (the reference terms taken as 0 when ``reference_free``) and ``z = beta * (h_c - h_r)``::

        losses           = -(1 - label_smoothing) * logsigmoid(z) - label_smoothing * logsigmoid(-z)
        chosen_rewards   = beta * h_c        (detached)
        rejected_rewards = beta * h_r        (detached)

    ``label_smoothing = 0`` is DPO (Rafailov et al., 2023); above 0 it is conservative DPO (cDPO).
    One difference from TRL: with ``reference_free`` the reference log-probs are taken as 0 in the rewards
    too (``chosen_rewards = beta * policy_chosen_logps``), where TRL still subtracts any it was given.

    Args:
        policy_chosen_logps, policy_rejected_logps: ``[B]`` summed (or averaged) sequence log-probs of the
            policy, e.g. from :func:`prefopt.sequence_logps`; B >= 1. One floating dtype (float32, bfloat16,
            float16 or float64) and one device for all inputs.
        ref_chosen_logps, ref_rejected_logps: ``[B]`` the same under the reference model. Required unless
            ``reference_free``; ignored (and may be None) when it is set.
        loss_type: the per-pair loss; only ``"sigmoid"`` exists for now.
        beta: temperature of the implicit reward, finite and > 0.
        label_smoothing: cDPO's probability that a preference label is flipped, in ``[0, 0.5]``.
        reference_free: take the reference log-probs as 0.
        check_finite: raise when an input holds NaN or Inf (costs one host sync). With False, NaN/Inf
            propagate into the affected pairs' losses.

    Returns:
        ``(losses, chosen_rewards, rejected_rewards)``, each ``[B]`` in the input dtype (computed in float32,
        or float64 for float64 input). ``losses`` is differentiable with respect to the policy log-probs
        (and the reference ones, if they require grad); both rewards are detached.

    Raises:
        ValueError: a reference tensor is None while ``reference_free`` is False.
        RuntimeError: shape, dtype or device mismatch, an empty batch, ``beta <= 0``, ``label_smoothing``
            outside ``[0, 0.5]``, an unknown ``loss_type``, or a NaN/Inf input when ``check_finite``.

    Example::

        >>> import torch, prefopt
        >>> pc = torch.tensor([-10.0, -12.0], requires_grad=True)
        >>> pr = torch.tensor([-11.0, -11.5], requires_grad=True)
        >>> rc, rr = torch.tensor([-10.5, -12.0]), torch.tensor([-10.5, -12.0])
        >>> losses, chosen_rewards, rejected_rewards = prefopt.dpo_loss(pc, pr, rc, rr, beta=0.1)
        >>> losses.mean().backward()                    # gradients reach pc and pr
        >>> chosen_rewards.requires_grad
        False
    """
    if not reference_free:
        if ref_chosen_logps is None:
            raise ValueError("ref_chosen_logps is None: pass the reference model's log-probs, or reference_free=True")
        if ref_rejected_logps is None:
            raise ValueError(
                "ref_rejected_logps is None: pass the reference model's log-probs, or reference_free=True"
            )
    return torch.ops.prefopt.dpo_loss(
        policy_chosen_logps,
        policy_rejected_logps,
        ref_chosen_logps,
        ref_rejected_logps,
        loss_type=str(loss_type),
        beta=float(beta),
        label_smoothing=float(label_smoothing),
        reference_free=bool(reference_free),
        check_finite=bool(check_finite),
    )
