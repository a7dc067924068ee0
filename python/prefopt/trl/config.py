"""PrefoptDPOConfig: TRL's DPOConfig plus the options of the losses prefopt adds and of its fused scoring. It only
declares and validates options; it computes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import DPOConfig

TRL_LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot", "aot_unpaired",
    "discopop", "apo_zero", "apo_down", "sft",
)
"""TRL 0.28's DPO loss types; each is computed by :func:`prefopt.dpo_loss`."""

PREFOPT_LOSS_TYPES = ("tdpo1", "tdpo2")
"""Loss types prefopt adds to TRL's DPOTrainer (TDPO, Zeng et al. 2024; :func:`prefopt.tdpo_loss`)."""


def _loss_type_list(loss_type):
    return [loss_type] if isinstance(loss_type, str) else list(loss_type)


@dataclass
class PrefoptDPOConfig(DPOConfig):
    """TRL's ``DPOConfig`` with prefopt's extra options; every TRL option keeps its meaning and default.

    ``loss_type`` also accepts ``"tdpo1"`` and ``"tdpo2"`` (alone or in a list with TRL's types and
    ``loss_weights``). TDPO needs the reference model's token distributions, so it cannot be combined with
    ``precompute_ref_log_probs``.

    Args:
        tdpo_alpha: TDPO2's weight of the sequential KL difference (the paper's alpha), >= 0; TDPO1 ignores it.
        prefopt_chunk_bytes: the memory budget, in bytes, of the one chunk of logits alive at a time while
            scoring (forward and backward) and while computing TDPO's token KL; > 0.

    Example::

        >>> from prefopt.trl import PrefoptDPOConfig
        >>> args = PrefoptDPOConfig(output_dir="out", loss_type=["sigmoid", "tdpo2"], loss_weights=[1.0, 0.5],
        ...                         tdpo_alpha=0.5, report_to=[])
    """

    tdpo_alpha: float = field(default=0.5, metadata={"help": "TDPO2's KL weight alpha (>= 0)."})
    prefopt_chunk_bytes: int = field(
        default=128 << 20,
        metadata={"help": "Bytes of logits alive at a time in prefopt's fused scoring and TDPO's KL (> 0)."},
    )

    def __post_init__(self):
        types = _loss_type_list(self.loss_type)
        known = TRL_LOSS_TYPES + PREFOPT_LOSS_TYPES + ("aot_pair",)
        for name in types:
            if name not in known:
                raise ValueError(
                    f"loss_type: {name!r} is not a loss type of prefopt.trl; supported: {', '.join(known[:-1])}"
                )
        if "exo_pair" in types and not 0.0 < self.label_smoothing < 1.0:
            raise ValueError(
                f"loss_type 'exo_pair' needs label_smoothing in (0, 1), got {self.label_smoothing}; TRL 0.28 silently "
                "uses 1e-3 for 0: set label_smoothing=1e-3 for its numbers"
            )
        if not (self.tdpo_alpha >= 0.0 and self.tdpo_alpha < float("inf")):
            raise ValueError(f"tdpo_alpha must be finite and >= 0, got {self.tdpo_alpha}")
        if not isinstance(self.prefopt_chunk_bytes, int) or self.prefopt_chunk_bytes <= 0:
            raise ValueError(f"prefopt_chunk_bytes must be an int > 0, got {self.prefopt_chunk_bytes!r}")
        if any(t in PREFOPT_LOSS_TYPES for t in types) and self.precompute_ref_log_probs:
            raise ValueError(
                "loss_type tdpo1/tdpo2 needs the reference model's token distributions at every step; "
                "precompute_ref_log_probs=True keeps only its sequence log-probs: set it to False"
            )
        super().__post_init__()
