"""The TRL versions prefopt.trl works with, and the import-time check of the installed one. Never imports more of
TRL than its version."""

from __future__ import annotations

SUPPORTED_TRL = ">=0.28,<0.29"
"""TRL 0.28 is the release prefopt.trl subclasses (its DPOTrainer methods ``concatenated_forward`` and
``get_batch_loss_metrics``); TRL 0.29 rewrote that trainer."""


def _release(version: str):
    parts = []
    for piece in version.split("+")[0].split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def require_trl() -> str:
    """Returns the installed TRL's version; raises ImportError naming the supported range otherwise."""
    try:
        import trl
    except ImportError as exc:
        raise ImportError(
            f"prefopt.trl needs TRL {SUPPORTED_TRL} (pip install 'trl{SUPPORTED_TRL}'), which is not importable: {exc}"
        ) from exc
    if _release(trl.__version__) != (0, 28):
        raise ImportError(f"prefopt.trl supports TRL {SUPPORTED_TRL}, found trl=={trl.__version__}")
    return trl.__version__
