"""The one result type of every prefopt loss in Python, mirroring the C++ ``prefopt::LossOutput``.

It holds what a loss computed; it never computes anything itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

import torch

__all__ = ["LossResult"]


@dataclass(frozen=True)
class LossResult:
    """What a prefopt loss returns (the fields of C++'s ``LossOutput``).

    Attributes:
        losses: per-example losses (``[B]`` pairs, lists or examples) in the input dtype; differentiable.
        metrics: the loss's metrics under TRL's names (``"rewards/accuracies"``, ``"accuracy"``, ...), 0-dim float32
            tensors, detached.
        loss: the reduced loss (0-dim; the batch mean unless the loss's ``reduction`` says otherwise);
            differentiable.
        chosen_rewards, rejected_rewards: ``[B]`` implicit rewards of the chosen and rejected responses, detached
            (None for losses without that split, e.g. the reward-model loss, whose rewards are its inputs).
        rewards: per-response rewards of losses without a chosen/rejected split (KTO's ``[B]``), detached, else
            None.
    """

    losses: torch.Tensor
    metrics: Dict[str, torch.Tensor] = field(default_factory=dict)
    loss: Optional[torch.Tensor] = None
    chosen_rewards: Optional[torch.Tensor] = None
    rejected_rewards: Optional[torch.Tensor] = None
    rewards: Optional[torch.Tensor] = None

    def __post_init__(self):
        if self.loss is None:
            object.__setattr__(self, "loss", self.losses.mean())
