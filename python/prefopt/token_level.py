"""Token-level DPO (TDPO) from summed log-probs and summed per-token KL (torch.ops.prefopt.tdpo_loss).

The per-token KL(reference || policy) over the vocabulary is computed by scoring (a fused kernel) and summed over
each response's completion tokens; the loss only sees the ``[B]`` sums. No math is done in Python.
"""

from __future__ import annotations

from typing import Tuple

import torch

from ._library import load_library

load_library()

__all__ = ["tdpo_loss"]


def tdpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    chosen_kl: torch.Tensor,
    rejected_kl: torch.Tensor,
    *,
    variant: str = "tdpo2",
    beta: float = 0.1,
    alpha: float = 0.5,
    check_finite: bool = True,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TDPO per-pair losses and rewards, unreduced, as the official ``tdpo_loss`` (Zeng et al., ICML 2024).

    With ``h = policy - ref`` and ``K`` the summed KL::

        tdpo1: z = (h_c - h_r) - (K_r - K_c)
        tdpo2: z = (h_c - h_r) - alpha * (K_r - K_c.detach())     # only the chosen KL is detached
        losses           = -logsigmoid(beta * z)
        chosen_rewards   = beta * (h_c + K_c)     (detached)
        rejected_rewards = beta * (h_r + K_r)     (detached)

    Args:
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps: ``[B]`` summed
            completion log-probs.
        chosen_kl, rejected_kl: ``[B]`` per-token KL(ref || policy) summed (not averaged) over completion tokens;
            differentiable with respect to the policy.
        variant: ``"tdpo2"`` (default; the paper's main method) or ``"tdpo1"``.
        beta: temperature, > 0.  alpha: TDPO2's KL weight, >= 0 (ignored by TDPO1).
        check_finite: raise on NaN/Inf inputs (one host sync per input).

    Returns:
        ``(losses, chosen_rewards, rejected_rewards)``, each ``[B]`` in the input dtype.

    Example::

        >>> import torch
        >>> from prefopt.token_level import tdpo_loss
        >>> pc = torch.tensor([-10.0, -12.0], requires_grad=True)
        >>> pr, ref = torch.tensor([-11.0, -11.5]), torch.tensor([-11.0, -11.0])
        >>> kl_c, kl_r = torch.tensor([0.2, 0.1]), torch.tensor([0.3, 0.4])
        >>> losses, chosen_rewards, rejected_rewards = tdpo_loss(pc, pr, ref, ref, kl_c, kl_r, alpha=0.5)
        >>> losses.shape, chosen_rewards.requires_grad
        (torch.Size([2]), False)
        >>> losses.mean().backward()      # reaches pc (and a KL that requires grad, except TDPO2's chosen one)
    """
    return torch.ops.prefopt.tdpo_loss(
        policy_chosen_logps,
        policy_rejected_logps,
        ref_chosen_logps,
        ref_rejected_logps,
        chosen_kl,
        rejected_kl,
        variant=str(variant),
        beta=float(beta),
        alpha=float(alpha),
        check_finite=bool(check_finite),
    )
