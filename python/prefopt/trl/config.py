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

PAIRWISE_LOSS_TYPES = ("tdpo1", "tdpo2")
"""Pairwise loss types prefopt adds to TRL's DPOTrainer (TDPO, Zeng et al. 2024; :func:`prefopt.tdpo_loss`)."""

TERM_LOSS_TYPES = ("spo",)
"""Terms added to the pairwise losses of the list: ``spo``, SPO's degree loss (:func:`prefopt.spo_loss`) on graded
variants of each chosen response, with a degree head trained alongside."""

RANKED_LOSS_TYPES = ("plackett_luce", "all_pairs", "lipo_lambda", "irpo", "pro", "ranklist", "tpo")
"""Listwise loss types, trained on ranked datasets (``prompt``, ``responses``, ``scores`` or ``ranks``); ``tpo`` cuts
each plain-text response into steps after every ``tpo_step_delimiter``."""

JOINT_LOSS_TYPES = ("dove",)
"""DOVE (Bansal et al. 2024; :func:`prefopt.joint_dpo_loss`), trained on rows whose chosen and rejected responses
answer different prompts: ``{"chosen_prompt", "chosen", "rejected_prompt", "rejected"}``."""

LISTWISE_DATA_LOSS_TYPES = RANKED_LOSS_TYPES + JOINT_LOSS_TYPES
"""Loss types that train on their own data format (not TRL's prompt/chosen/rejected), each alone in loss_type."""

PREFOPT_LOSS_TYPES = PAIRWISE_LOSS_TYPES + TERM_LOSS_TYPES + LISTWISE_DATA_LOSS_TYPES
"""Every loss type prefopt adds to TRL's DPOTrainer."""

# The operator computing each added loss type: its schema declares the options (names, types, defaults).
OPERATORS = {"tdpo1": "tdpo_loss", "tdpo2": "tdpo_loss", "dove": "joint_dpo_loss", "spo": "spo_loss",
             **{t: f"{t}_loss" for t in RANKED_LOSS_TYPES}}
# Options the trainer sets itself: beta (and DOVE's label_smoothing) are DPOConfig's, the TDPO variant is the loss
# type's name, label_type follows the data (scores or ranks).
_SET_BY_THE_TRAINER = {"beta", "variant", "label_type"}
_FROM_DPO_CONFIG = {"dove": {"label_smoothing"}}


def operator_options(loss_type: str) -> dict:
    """The keyword options of the operator behind ``loss_type`` with their defaults, read from its schema (declared
    once, in C++), less those the trainer sets (``beta``, TDPO's ``variant``)."""
    import torch

    import prefopt  # noqa: F401  (loads the operators)

    schema = getattr(torch.ops.prefopt, OPERATORS[loss_type]).default._schema
    skip = _SET_BY_THE_TRAINER | _FROM_DPO_CONFIG.get(loss_type, set())
    return {a.name: a.default_value for a in schema.arguments
            if a.kwarg_only and a.has_default_value() and a.name not in skip}


def _check_loss_options(options, types) -> None:
    if not isinstance(options, dict):
        raise ValueError(f"prefopt_loss_options must be a dict {{loss_type: {{option: value}}}}, got {options!r}")
    for loss_type, given in options.items():
        if loss_type not in types or loss_type not in PREFOPT_LOSS_TYPES:
            raise ValueError(f"prefopt_loss_options: {loss_type!r} is not one of the prefopt loss types in loss_type "
                             f"({[t for t in types if t in PREFOPT_LOSS_TYPES]})")
        if not isinstance(given, dict):
            raise ValueError(f"prefopt_loss_options[{loss_type!r}] must be a dict of options, got {given!r}")
        declared = operator_options(loss_type)
        for name, value in given.items():
            if name == "beta" or name in _FROM_DPO_CONFIG.get(loss_type, set()):
                raise ValueError(f"prefopt_loss_options[{loss_type!r}]: set {name} with the config's {name}")
            if name == "label_type":
                raise ValueError(f"prefopt_loss_options[{loss_type!r}]: label_type follows the data: rows with "
                                 "'scores' are grades, rows with 'ranks' are ranks")
            if name not in declared:
                raise ValueError(f"prefopt_loss_options[{loss_type!r}]: unknown option {name!r}; "
                                 f"{OPERATORS[loss_type]} takes {sorted(declared)}")
            want = type(declared[name])
            ok = isinstance(value, want) and not (want is not bool and isinstance(value, bool))
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                ok = True
            if not ok:
                raise ValueError(f"prefopt_loss_options[{loss_type!r}][{name!r}] must be {want.__name__}, "
                                 f"got {value!r}")


def _loss_type_list(loss_type):
    return [loss_type] if isinstance(loss_type, str) else list(loss_type)


@dataclass
class PrefoptDPOConfig(DPOConfig):
    """TRL's ``DPOConfig`` with prefopt's extra options; every TRL option keeps its meaning and default.

    ``loss_type`` also accepts ``"tdpo1"`` and ``"tdpo2"`` (alone or in a list with TRL's types and
    ``loss_weights``; they need the reference model's token distributions, so not with
    ``precompute_ref_log_probs``), and, alone, a listwise loss type of :data:`RANKED_LOSS_TYPES`, which trains on
    a ranked dataset (rows ``{"prompt", "responses": [...], "scores": [...]}`` or ``"ranks"``, lower is better),
    or ``"dove"`` alone, on rows ``{"chosen_prompt", "chosen", "rejected_prompt", "rejected"}``.

    Args:
        prefopt_loss_options: options of the added loss types, ``{loss_type: {option: value}}``; the names, types
            and defaults are the operators' (``torch.ops.prefopt.<name>_loss``, docs/losses.md), e.g.
            ``{"tdpo2": {"alpha": 0.5}}`` or ``{"lipo_lambda": {"lambda_weighting": False}}``. ``beta`` is the
            config's own for every loss, as is ``label_smoothing`` for ``dove``.
        spo_num_degrees: ``spo``'s K >= 2 graded variants of each chosen response (degree d removes the top
            d / (K - 1) of its key phrases, :func:`prefopt.graded_removal`) and the degree head's classes.
        spo_pooling: ``"mean"`` or ``"last"``: how the degree head pools each variant's final hidden states.
        tpo_step_delimiter: ``tpo`` cuts each (plain-text) response into steps after every occurrence of this text,
            kept with the step it ends (as prefopt-train's ``step_delimiter``); non-empty.
        prefopt_chunk_bytes: the memory budget, in bytes, of the one chunk of logits alive at a time while
            scoring (forward and backward) and while computing TDPO's token KL; > 0.

    Example::

        >>> from prefopt.trl import PrefoptDPOConfig
        >>> args = PrefoptDPOConfig(output_dir="out", loss_type=["sigmoid", "tdpo2"], loss_weights=[1.0, 0.5],
        ...                         prefopt_loss_options={"tdpo2": {"alpha": 0.5}}, report_to=[])
    """

    prefopt_loss_options: dict = field(
        default_factory=dict,
        metadata={"help": "Options of prefopt's added loss types: {loss_type: {option: value}} (the operators' names)."},
    )
    spo_num_degrees: int = field(
        default=4, metadata={"help": "SPO: K >= 2 graded variants of each chosen response and the degree head's classes."})
    spo_pooling: str = field(
        default="mean", metadata={"help": "SPO: how the degree head pools the final hidden states: mean or last."})
    tpo_step_delimiter: str = field(
        default="\n",
        metadata={"help": "TPO: each response is cut into steps after every occurrence of this text (kept with its step)."},
    )
    prefopt_chunk_bytes: int = field(
        default=128 << 20,
        metadata={"help": "Bytes of logits alive at a time in prefopt's fused scoring and TDPO's KL (> 0)."},
    )

    def __post_init__(self):
        check_config(self)
        super().__post_init__()


def option(config, name: str):
    """A PrefoptDPOConfig option of ``config``, or its default when ``config`` is TRL's plain DPOConfig."""
    if hasattr(config, name):
        return getattr(config, name)
    declared = PrefoptDPOConfig.__dataclass_fields__[name]
    return declared.default_factory() if callable(declared.default_factory) else declared.default


def check_config(config) -> None:
    """Raises ValueError naming the setting when ``config`` (a PrefoptDPOConfig or TRL's DPOConfig) asks for
    something prefopt.trl cannot do."""
    types = _loss_type_list(config.loss_type)
    spo_num_degrees, spo_pooling = option(config, "spo_num_degrees"), option(config, "spo_pooling")
    tpo_step_delimiter, prefopt_chunk_bytes = option(config, "tpo_step_delimiter"), option(config, "prefopt_chunk_bytes")
    prefopt_loss_options = option(config, "prefopt_loss_options")
    known = TRL_LOSS_TYPES + PREFOPT_LOSS_TYPES + ("aot_pair",)
    for name in types:
        if name not in known:
            raise ValueError(
                f"loss_type: {name!r} is not a loss type of prefopt.trl; supported: {', '.join(known[:-1])}"
            )
    ranked = [t for t in types if t in LISTWISE_DATA_LOSS_TYPES]
    if ranked:
        if len(types) != 1:
            raise ValueError(f"loss_type: {ranked[0]!r} trains on its own data format and cannot be combined "
                             f"with others, got {types}")
        for name, value in (("precompute_ref_log_probs", config.precompute_ref_log_probs),
                            ("rpo_alpha", config.rpo_alpha), ("ld_alpha", config.ld_alpha),
                            ("use_weighting", config.use_weighting or None), ("padding_free", config.padding_free or None)):
            if value not in (None, False):
                raise ValueError(f"{name} applies to TRL's pairs; it is not available with the loss type "
                                 f"{ranked[0]!r}")
    _check_loss_options(prefopt_loss_options, types)
    if "spo" in types:
        if not any(t in TRL_LOSS_TYPES + PAIRWISE_LOSS_TYPES for t in types):
            raise ValueError("loss_type 'spo' adds SPO's degree term to an alignment loss: list one, e.g. "
                             "['sigmoid', 'spo']")
        if config.loss_weights is not None and float(config.loss_weights[types.index("spo")]) != 1.0:
            raise ValueError("loss_weights: the 'spo' entry must be 1.0; the degree term's weight is "
                             "prefopt_loss_options['spo']['degree_weight']")
        if isinstance(spo_num_degrees, bool) or not isinstance(spo_num_degrees, int) or \
                spo_num_degrees < 2:
            raise ValueError(f"spo_num_degrees must be an int >= 2, got {spo_num_degrees!r}")
        if spo_pooling not in ("mean", "last"):
            raise ValueError(f"spo_pooling must be 'mean' or 'last', got {spo_pooling!r}")
        if config.padding_free:
            raise ValueError("padding_free is not available with loss_type 'spo' (its variants run padded)")
    if "exo_pair" in types and not 0.0 < config.label_smoothing < 1.0:
        raise ValueError(
            f"loss_type 'exo_pair' needs label_smoothing in (0, 1), got {config.label_smoothing}; TRL 0.28 silently "
            "uses 1e-3 for 0: set label_smoothing=1e-3 for its numbers"
        )
    if not isinstance(tpo_step_delimiter, str) or not tpo_step_delimiter:
        raise ValueError(f"tpo_step_delimiter must be a non-empty string, got {tpo_step_delimiter!r}")
    if not isinstance(prefopt_chunk_bytes, int) or prefopt_chunk_bytes <= 0:
        raise ValueError(f"prefopt_chunk_bytes must be an int > 0, got {prefopt_chunk_bytes!r}")
    if any(t in PAIRWISE_LOSS_TYPES for t in types) and config.precompute_ref_log_probs:
        raise ValueError(
            "loss_type tdpo1/tdpo2 needs the reference model's token distributions at every step; "
            "precompute_ref_log_probs=True keeps only its sequence log-probs: set it to False"
        )
