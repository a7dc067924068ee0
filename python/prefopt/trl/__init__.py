"""prefopt inside TRL: a drop-in ``DPOTrainer`` that scores with prefopt's fused kernels and adds prefopt's losses.

Two lines switch a TRL script over::

    from prefopt.trl import PrefoptDPOConfig as DPOConfig, PrefoptDPOTrainer as DPOTrainer

Everything else (datasets, collators, PEFT, accelerate, logging, saving) stays TRL's. What changes:
sequences are scored from the model's final hidden states with :func:`prefopt.fused_linear_logps`, so the
``[B, T, V]`` logits are never formed, and the losses come from :func:`prefopt.dpo_loss` (every TRL loss type)
and :func:`prefopt.tdpo_loss` (``tdpo1``, ``tdpo2``). docs/trl.md says what differs from stock TRL and why.

This package needs ``trl`` in the supported range (:data:`SUPPORTED_TRL`); importing it without TRL, or with a TRL
outside the range, raises ImportError saying which versions work. It never patches TRL or transformers.
"""

from ._versions import SUPPORTED_TRL, require_trl

require_trl()

from .config import PREFOPT_LOSS_TYPES, TRL_LOSS_TYPES, PrefoptDPOConfig  # noqa: E402
from .trainer import PrefoptDPOTrainer  # noqa: E402

__all__ = ["PrefoptDPOConfig", "PrefoptDPOTrainer", "SUPPORTED_TRL", "TRL_LOSS_TYPES", "PREFOPT_LOSS_TYPES"]
