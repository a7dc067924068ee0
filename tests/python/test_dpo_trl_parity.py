"""Parity of prefopt's DPO family with TRL's own code, pinned to TRL_VERSION.

TRL 0.28 keeps the DPO losses inside trainer methods. These tests call them unbound, with a
``types.SimpleNamespace`` standing in for the trainer (only the attributes the methods read, at TRL's defaults):

- ``DPOTrainer.dpo_loss``: the per-pair losses and rewards of every loss type;
- ``DPOTrainer.get_batch_loss_metrics``: TRL's combination of several loss types with ``loss_weights``, RPO's
  ``rpo_alpha * nll_loss``, WPO's ``policy_weights``, the batch loss and the logged metrics (its
  ``concatenated_forward`` is replaced by the stand-in's, which returns the log-probs under test);
- ``DPOTrainer.concatenated_forward`` (with a stand-in model that returns fixed logits): LD-DPO's ``ld_alpha``
  and RPO's ``nll_loss``, which TRL computes from the logits there.

TRL's math is never re-derived here. Where prefopt differs from TRL on purpose (docs/losses.md, "DPO family",
lists each difference), the test says so and checks the documented relation instead of equality:

(a) ipo: TRL is handed length-averaged log-probs; prefopt takes summed ones and the lengths. TRL gets ``p/L``.
(b) exo_pair with label_smoothing 0: TRL silently uses 1e-3; prefopt raises.
(c) forward_kl: TRL 0.28 has no such f-divergence (its dpo_loss falls through to the reverse-KL formula).
(d) alpha divergence: TRL's coefficient ``c`` is prefopt's ``a = 1 - c``.
(e) TRL applies the f-divergence to sigmoid, robust, exo_pair, hinge and ipo only; prefopt also in nca_pair,
    bco_pair (without running mean), sppo_hard and discopop, and in ipo before the length division. Under
    reverse_kl they agree; otherwise prefopt equals TRL's reverse-KL loss handed ``phi(h)`` as log-ratios.
(f) bco_pair: TRL 0.28 always subtracts its running mean; compared with prefopt's bco_running_mean over
    consecutive batches (state carried in both).
(g) reference_free: TRL still subtracts the reference in its rewards and in the loss types that read the
    log-ratios directly; prefopt takes q = 0 everywhere.
(h) several loss types: TRL's rewards are the weighted sum of each type's rewards; prefopt's are ``beta h``.
(i) ld_alpha: TRL counts positions from the start of the whole sequence and applies it to the policy only.
(j) sigmoid_norm is not in TRL 0.28: checked against a float64 reference written from LOSSES.md.

Also: TRL 0.28's ``DPOTrainer`` stores ``args.f_divergence_type``, which ``DPOConfig`` has turned into a plain
string, while ``dpo_loss`` compares it with ``FDivergenceType`` members; a trainer built from a ``DPOConfig``
therefore never applies an f-divergence. The stand-in holds the enum member, so that TRL's f-divergence code runs
as written; ``test_trl_string_f_divergence_is_reverse_kl`` shows the string form.

The largest absolute difference per loss type, quantity and dtype is printed as a table when the module finishes
(``pytest -s``); set PREFOPT_TRL_PARITY_LOG to a file path to also append it there as JSON lines.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import types
from collections import defaultdict

import pytest
import torch
import torch.nn.functional as F

import prefopt

TRL_VERSION = "0.28.0"  # pinned: requirements.txt installs exactly this version

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
trl = pytest.importorskip(
    "trl", reason=f"trl=={TRL_VERSION} is not importable (pip install trl=={TRL_VERSION})", exc_type=ImportError
)
if trl.__version__ != TRL_VERSION:
    pytest.skip(
        f"the DPO parity tests are pinned to trl=={TRL_VERSION}, found trl=={trl.__version__}",
        allow_module_level=True,
    )


try:
    from trl.trainer.dpo_config import FDivergenceConstants, FDivergenceType
    from trl.trainer.dpo_trainer import DPOTrainer
    from trl.trainer.utils import RunningMoments
except ImportError as exc:  # pragma: no cover - depends on the environment
    pytest.fail(f"trl.trainer.dpo_trainer (trl=={TRL_VERSION}) could not be imported with requirements.txt's pins: {exc}")

DTYPES = [torch.float32, torch.float64]
# Tolerances on the per-pair values: both libraries compute in the input dtype (prefopt: float32 for float32,
# float64 for float64), in a slightly different order.
TOL = {torch.float64: dict(atol=1e-12, rtol=1e-12), torch.float32: dict(atol=1e-5, rtol=1e-5)}
# TRL's RunningMoments keeps the batch mean in float32 (``xs_mean.float()``), whatever the input dtype; prefopt
# keeps float64 state. In float64 the bco_pair shift therefore differs by float32 rounding of a value of order 1.
BCO_FP64_TOL = dict(atol=1e-7, rtol=0.0)
# prefopt's metrics are float32 tensors; TRL's are Python floats from input-dtype tensors.
METRIC_TOL = dict(atol=1e-6, rtol=1e-6)

TRL_LOSS_TYPES = [
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "discopop",
    "apo_zero",
    "apo_down",
    "sft",
]

# ---------------------------------------------------------------------------------------------------------
# Recording the differences
# ---------------------------------------------------------------------------------------------------------

DIFFS: dict = defaultdict(float)
ROWS = TRL_LOSS_TYPES + ["multiple types", "rpo_alpha", "use_weighting", "ld_alpha", "reference_free", "sigmoid_norm"]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def check(row: str, quantity: str, dtype: torch.dtype, got, want, *, atol: float, rtol: float) -> None:
    """Asserts got ~ want (compared in float64) and records the max abs difference under (row, quantity, dtype)."""
    got_t = torch.as_tensor(got, dtype=torch.float64 if not torch.is_tensor(got) else None).detach()
    want_t = torch.as_tensor(want, dtype=torch.float64 if not torch.is_tensor(want) else None).detach()
    got_t, want_t = got_t.to(torch.float64).reshape(-1), want_t.to(torch.float64).reshape(-1)
    assert got_t.shape == want_t.shape, f"{row} {quantity}: shape {tuple(got_t.shape)} vs {tuple(want_t.shape)}"
    diff = (got_t - want_t).abs().max().item() if got_t.numel() else 0.0
    key = (row, quantity, dtype_name(dtype))
    DIFFS[key] = max(DIFFS[key], diff)
    torch.testing.assert_close(got_t, want_t, atol=atol, rtol=rtol, msg=lambda m: f"{row} {quantity} {dtype}: {m}")


@pytest.fixture(scope="module", autouse=True)
def difference_table():
    yield
    if not DIFFS:
        return
    quantities = ["losses", "rewards", "loss", "metrics"]
    quantities += sorted({q for (_, q, _) in DIFFS} - set(quantities))
    lines = [
        "",
        f"prefopt vs TRL {TRL_VERSION} DPOTrainer: max abs difference (float32 | float64)",
        f"{'loss type':<16}" + "".join(f"{q:>22}" for q in quantities),
    ]
    for row in ROWS:
        cells = []
        for q in quantities:
            values = [DIFFS.get((row, q, dtype_name(d))) for d in DTYPES]
            cells.append(" | ".join("-".rjust(8) if v is None else f"{v:8.1e}" for v in values))
        if any(c.strip(" |-") for c in cells):
            lines.append(f"{row:<16}" + "".join(f"{c:>22}" for c in cells))
    print("\n".join(lines), file=sys.stdout)
    path = os.environ.get("PREFOPT_TRL_PARITY_LOG")
    if path:
        with open(path, "a") as f:
            for (row, quantity, dtype), diff in sorted(DIFFS.items()):
                entry = dict(
                    module=__name__, trl=TRL_VERSION, loss=row, quantity=quantity, dtype=dtype, max_abs_diff=diff
                )
                f.write(json.dumps(entry, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------------------
# The stand-in for DPOTrainer's self
# ---------------------------------------------------------------------------------------------------------


def accelerator() -> types.SimpleNamespace:
    """One process on the CPU: gathers are the identity."""
    return types.SimpleNamespace(
        device=torch.device("cpu"),
        use_distributed=False,
        is_main_process=True,
        gather_for_metrics=lambda x: x,
        gather=lambda x: x,
    )


TRL_DIVERGENCE = {
    "reverse_kl": FDivergenceType.REVERSE_KL,
    "js_divergence": FDivergenceType.JS_DIVERGENCE,
    "alpha_divergence": FDivergenceType.ALPHA_DIVERGENCE,
}


def trl_trainer(
    loss_type="sigmoid",
    *,
    beta=0.1,
    label_smoothing=0.0,
    reference_free=False,
    f_divergence="reverse_kl",
    f_alpha_divergence_coef=1.0,
    loss_weights=None,
    discopop_tau=0.05,
    rpo_alpha=None,
    use_weighting=False,
    ld_alpha=None,
    f_divergence_as_string=False,
):
    """What DPOTrainer.__init__ sets from a DPOConfig and the three methods under test read; TRL's defaults.

    ``f_divergence`` is stored as the FDivergenceType member (see the module docstring), unless
    ``f_divergence_as_string``, which is what a real DPOTrainer stores.
    """
    acc = accelerator()
    trainer = types.SimpleNamespace(
        beta=beta,
        label_smoothing=label_smoothing,
        reference_free=reference_free,
        f_divergence_type=f_divergence if f_divergence_as_string else TRL_DIVERGENCE[f_divergence],
        f_divergence_params={FDivergenceConstants.ALPHA_DIVERGENCE_COEF_KEY: f_alpha_divergence_coef},
        loss_type=list(loss_type) if isinstance(loss_type, (list, tuple)) else [loss_type],
        loss_weights=loss_weights,
        use_weighting=use_weighting,
        aux_loss_enabled=False,
        accelerator=acc,
        running=RunningMoments(acc),
        args=types.SimpleNamespace(
            discopop_tau=discopop_tau, rpo_alpha=rpo_alpha, ld_alpha=ld_alpha, use_liger_kernel=False
        ),
        # concatenated_forward
        is_encoder_decoder=False,
        pad_token_id=0,
        label_pad_token_id=-100,
        max_length=None,
        truncation_mode="keep_end",
        use_logits_to_keep=False,
        padding_free=False,
        concatenated_inputs=DPOTrainer.concatenated_inputs,
    )
    trainer.dpo_loss = functools.partial(DPOTrainer.dpo_loss, trainer)
    return trainer


def trl_dpo_loss(trainer, pc, pr, rc, rr, loss_type, nll=None):
    """TRL's DPOTrainer.dpo_loss for one loss type: (losses, chosen_rewards, rejected_rewards)."""
    model_output = {} if nll is None else {"nll_loss": nll}
    return DPOTrainer.dpo_loss(trainer, pc, pr, rc, rr, loss_type, model_output)


def trl_batch(trainer, pc, pr, rc, rr, *, nll=None, policy_weights=None):
    """TRL's DPOTrainer.get_batch_loss_metrics on precomputed log-probs.

    Returns (per-pair losses, chosen_rewards, rejected_rewards, batch loss, metrics). get_batch_loss_metrics returns
    only the mean of its per-pair losses; they are rebuilt here from the dpo_loss calls it made, with the same
    expressions in the same order as its body, and the rebuilt mean is checked to be TRL's loss bit for bit.
    """
    model_output = {
        "chosen_logps": pc,
        "rejected_logps": pr,
        "mean_chosen_logits": torch.zeros((), dtype=pc.dtype),
        "mean_rejected_logits": torch.zeros((), dtype=pc.dtype),
    }
    if nll is not None:
        model_output["nll_loss"] = nll
    if policy_weights is not None:
        model_output["policy_weights"] = policy_weights
    calls = []

    def recording_dpo_loss(*args, **kwargs):
        out = DPOTrainer.dpo_loss(trainer, *args, **kwargs)
        calls.append(out)
        return out

    trainer.dpo_loss = recording_dpo_loss
    trainer.concatenated_forward = lambda model, batch: model_output
    loss, metrics = DPOTrainer.get_batch_loss_metrics(
        trainer, None, {"ref_chosen_logps": rc, "ref_rejected_logps": rr}
    )
    losses, chosen, rejected = 0, 0, 0
    for idx, (_losses, _chosen, _rejected) in enumerate(calls):
        weight = trainer.loss_weights[idx] if trainer.loss_weights else 1.0
        losses = losses + _losses * weight
        chosen = chosen + _chosen * weight
        rejected = rejected + _rejected * weight
    if trainer.args.rpo_alpha is not None:
        losses = losses + trainer.args.rpo_alpha * model_output["nll_loss"]
    if trainer.use_weighting:
        losses = losses * model_output["policy_weights"]
    assert torch.equal(losses.mean(), loss), "the rebuilt per-pair losses are not TRL's"
    return losses, chosen, rejected, loss, metrics


# ---------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------


def make_scores(dtype, batch=8, seed=0, spread=3.0):
    """Summed completion log-probs (tens of nats, policy within a few nats of the reference) and lengths."""
    g = torch.Generator().manual_seed(seed)
    rc = -20 - 30 * torch.rand(batch, generator=g, dtype=torch.float64)
    rr = -20 - 30 * torch.rand(batch, generator=g, dtype=torch.float64)
    pc = rc + spread * torch.randn(batch, generator=g, dtype=torch.float64)
    pr = rr + spread * torch.randn(batch, generator=g, dtype=torch.float64)
    lc = torch.randint(5, 40, (batch,), generator=g)
    lr = torch.randint(5, 40, (batch,), generator=g)
    nll = torch.tensor(1.7, dtype=torch.float64) + torch.rand((), generator=g, dtype=torch.float64)
    return [t.to(dtype) for t in (pc, pr, rc, rr)], (lc, lr), nll.to(dtype)


def phi(h: torch.Tensor, f_divergence: str, a: float) -> torch.Tensor:
    """LOSSES.md's f-divergence transform (prefopt's; used only to hand TRL phi(h) as log-ratios, relation (e))."""
    if f_divergence == "reverse_kl":
        return h
    if f_divergence == "forward_kl":
        return -torch.exp(-h)
    if f_divergence == "js_divergence":
        return F.logsigmoid(h)
    return torch.exp((a - 1.0) * h) / (a - 1.0)


def prefopt_result(pc, pr, rc, rr, *, module=None, **options):
    """prefopt.DPOLoss (its options, or a given module carrying state) on one batch."""
    names = ("chosen_lengths", "rejected_lengths", "chosen_nll", "weights")
    inputs = {k: options.pop(k) for k in names if k in options}
    module = module if module is not None else prefopt.DPOLoss(**options)
    return module(pc, pr, rc, rr, **inputs)


def check_metrics(row, dtype, got, trl_metrics, *, reward_scale=1.0):
    """prefopt's metrics against TRL's logged ones (TRL's reward metrics are reward_scale times prefopt's)."""
    for name in ("rewards/chosen", "rewards/rejected", "rewards/margins"):
        check(row, "metrics", dtype, got[name] * reward_scale, trl_metrics[name], **METRIC_TOL)
    for name in ("rewards/accuracies", "logps/chosen", "logps/rejected"):
        check(row, "metrics", dtype, got[name], trl_metrics[name], **METRIC_TOL)
    if "nll_loss" in trl_metrics:
        check(row, "metrics", dtype, got["nll_loss"], trl_metrics["nll_loss"], **METRIC_TOL)


# ---------------------------------------------------------------------------------------------------------
# Every loss type, TRL's defaults and non-default options: direct equality
# ---------------------------------------------------------------------------------------------------------

# (loss type, options shared by both sides). f_divergence applies in TRL to sigmoid, robust, exo_pair, hinge (and
# ipo, below); aot*, apo_* ignore it in both; the others are compared under reverse_kl here and under the other
# divergences in test_phi_where_trl_ignores_it. "c" is TRL's f_alpha_divergence_coef (prefopt's a = 1 - c).
EQUAL_CASES = [
    ("sigmoid", {}),
    ("sigmoid", dict(beta=0.5, label_smoothing=0.2)),
    ("sigmoid", dict(beta=0.3, f_divergence="js_divergence")),
    ("sigmoid", dict(f_divergence="alpha_divergence")),  # TRL's default c = 1 (a = 0)
    ("sigmoid", dict(beta=0.2, f_divergence="alpha_divergence", c=0.5, label_smoothing=0.1)),
    ("hinge", {}),
    ("hinge", dict(beta=0.5)),
    ("hinge", dict(beta=0.05, f_divergence="js_divergence")),
    ("hinge", dict(beta=0.3, f_divergence="alpha_divergence", c=0.3)),
    ("exo_pair", dict(label_smoothing=1e-3)),  # TRL's value for its default 0, relation (b)
    ("exo_pair", dict(beta=0.5, label_smoothing=0.2)),
    ("exo_pair", dict(beta=0.2, label_smoothing=0.05, f_divergence="js_divergence")),
    ("exo_pair", dict(label_smoothing=0.3, f_divergence="alpha_divergence", c=0.7)),
    ("nca_pair", {}),
    ("nca_pair", dict(beta=0.5)),
    ("robust", {}),
    ("robust", dict(beta=0.5, label_smoothing=0.2)),
    ("robust", dict(label_smoothing=0.1, f_divergence="js_divergence")),
    ("robust", dict(beta=0.2, label_smoothing=0.4, f_divergence="alpha_divergence", c=0.5)),
    ("sppo_hard", {}),
    ("sppo_hard", dict(beta=0.5)),
    ("aot", {}),
    ("aot", dict(beta=0.5, label_smoothing=0.2)),
    ("aot", dict(label_smoothing=0.1, f_divergence="js_divergence")),  # phi ignored by both
    ("aot_unpaired", {}),
    ("aot_unpaired", dict(beta=0.5, label_smoothing=0.3)),
    ("aot_unpaired", dict(f_divergence="alpha_divergence", c=0.5)),
    ("discopop", {}),
    ("discopop", dict(beta=0.5, discopop_tau=0.2)),
    ("apo_zero", {}),
    ("apo_zero", dict(beta=0.5)),
    ("apo_zero", dict(f_divergence="js_divergence")),
    ("apo_down", {}),
    ("apo_down", dict(beta=0.5)),
    ("apo_down", dict(beta=0.2)),  # with an f-divergence prefopt follows LOSSES.md (phi in D): test_dpo_family
    ("sft", {}),
    ("sft", dict(beta=0.5)),
]


def split_options(options):
    """(TRL stand-in kwargs, prefopt DPOLoss kwargs) from the shared options of a case."""
    options = dict(options)
    c = options.pop("c", 1.0)
    trl_kwargs = dict(options, f_alpha_divergence_coef=c)
    prefopt_kwargs = dict(options, alpha_divergence_coef=1.0 - c)
    return trl_kwargs, prefopt_kwargs


def case_id(case):
    loss_type, options = case
    return loss_type + "".join(f"-{k}={v}" for k, v in options.items())


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("case", EQUAL_CASES, ids=[case_id(c) for c in EQUAL_CASES])
def test_loss_type_matches_trl(case, dtype):
    loss_type, options = case
    trl_kwargs, prefopt_kwargs = split_options(options)
    (pc, pr, rc, rr), _, nll = make_scores(dtype)
    nll = nll if loss_type == "sft" else None
    want_losses, want_chosen, want_rejected, want_loss, want_metrics = trl_batch(
        trl_trainer(loss_type, **trl_kwargs), pc, pr, rc, rr, nll=nll
    )
    got = prefopt_result(pc, pr, rc, rr, loss_type=loss_type, chosen_nll=nll, **prefopt_kwargs)
    tol = TOL[dtype]
    check(loss_type, "losses", dtype, got.losses, want_losses, **tol)
    check(loss_type, "rewards", dtype, got.chosen_rewards, want_chosen, **tol)
    check(loss_type, "rewards", dtype, got.rejected_rewards, want_rejected, **tol)
    check(loss_type, "loss", dtype, got.loss, want_loss, **tol)
    check_metrics(loss_type, dtype, got.metrics, want_metrics)
    assert got.losses.dtype == dtype and got.chosen_rewards.dtype == dtype


# ---------------------------------------------------------------------------------------------------------
# (a) ipo: TRL is handed length-averaged log-probs
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_ipo_with_trl_given_length_averaged_logps(beta, dtype):
    (pc, pr, rc, rr), (lc, lr), _ = make_scores(dtype)
    # TRL's concatenated_forward divides every log-prob by its completion length when "ipo" is in loss_type.
    want_losses, want_chosen, want_rejected = trl_dpo_loss(
        trl_trainer("ipo", beta=beta), pc / lc, pr / lr, rc / lc, rr / lr, "ipo"
    )
    got = prefopt.dpo_loss(pc, pr, rc, rr, loss_type="ipo", beta=beta, chosen_lengths=lc, rejected_lengths=lr)
    tol = TOL[dtype]
    check("ipo", "losses", dtype, got[0], want_losses, **tol)
    # TRL's rewards are of the averaged log-probs: prefopt's rewards (beta h, summed) divided by the lengths.
    check("ipo", "rewards", dtype, got[1] / lc, want_chosen, **tol)
    check("ipo", "rewards", dtype, got[2] / lr, want_rejected, **tol)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("f_divergence,c", [("js_divergence", 1.0), ("alpha_divergence", 0.5)])
def test_ipo_f_divergence_before_the_length_division(f_divergence, c, dtype):
    """prefopt: (phi(h_c)/L_c - phi(h_r)/L_r - 1/(2 beta))^2 (LOSSES.md); TRL: phi of the averaged log-ratios."""
    (pc, pr, rc, rr), (lc, lr), _ = make_scores(dtype)
    a = 1.0 - c
    got = prefopt.dpo_loss(
        pc, pr, rc, rr, loss_type="ipo", f_divergence=f_divergence, alpha_divergence_coef=a,
        chosen_lengths=lc, rejected_lengths=lr,
    )[0]
    s_c, s_r = phi(pc - rc, f_divergence, a), phi(pr - rr, f_divergence, a)
    zeros = torch.zeros_like(pc)
    relation = trl_dpo_loss(trl_trainer("ipo"), s_c / lc, s_r / lr, zeros, zeros, "ipo")[0]
    check("ipo", "losses", dtype, got, relation, **TOL[dtype])
    trl_own = trl_dpo_loss(
        trl_trainer("ipo", f_divergence=f_divergence, f_alpha_divergence_coef=c),
        pc / lc, pr / lr, rc / lc, rr / lr, "ipo",
    )[0]
    assert (got.double() - trl_own.double()).abs().max() > 1e-3, "documented difference (e) no longer shows"


# ---------------------------------------------------------------------------------------------------------
# (b) exo_pair at label_smoothing 0
# ---------------------------------------------------------------------------------------------------------


def test_exo_pair_label_smoothing_zero_is_an_error_where_trl_uses_1e_3():
    (pc, pr, rc, rr), _, _ = make_scores(torch.float64)
    trainer = trl_trainer("exo_pair")
    trl_losses = trl_dpo_loss(trainer, pc, pr, rc, rr, "exo_pair")[0]
    assert trainer.label_smoothing == 1e-3  # TRL rewrote its own option
    with pytest.raises(RuntimeError, match=r"label_smoothing \(for loss_type exo_pair\) must be in \(0, 1\), got 0"):
        prefopt.dpo_loss(pc, pr, rc, rr, loss_type="exo_pair")
    got = prefopt.dpo_loss(pc, pr, rc, rr, loss_type="exo_pair", label_smoothing=1e-3)[0]
    check("exo_pair", "losses", torch.float64, got, trl_losses, **TOL[torch.float64])


# ---------------------------------------------------------------------------------------------------------
# (c) forward_kl, and TRL's string f_divergence_type
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
def test_forward_kl_is_not_in_trl(dtype):
    assert not hasattr(FDivergenceType, "FORWARD_KL")
    (pc, pr, rc, rr), _, _ = make_scores(dtype)
    trainer = trl_trainer("sigmoid")
    trainer.f_divergence_type = "forward_kl"  # unknown to TRL's dpo_loss: it computes the reverse-KL loss
    trl_fallback = trl_dpo_loss(trainer, pc, pr, rc, rr, "sigmoid")[0]
    reverse = prefopt.dpo_loss(pc, pr, rc, rr)[0]
    check("sigmoid", "losses", dtype, reverse, trl_fallback, **TOL[dtype])
    # prefopt's forward_kl is TRL's sigmoid loss handed phi(h) = -exp(-h) as log-ratios.
    forward = prefopt.dpo_loss(pc, pr, rc, rr, f_divergence="forward_kl", beta=0.5)[0]
    zeros = torch.zeros_like(pc)
    s_c, s_r = phi(pc - rc, "forward_kl", 0.0), phi(pr - rr, "forward_kl", 0.0)
    relation = trl_dpo_loss(trl_trainer("sigmoid", beta=0.5), s_c, s_r, zeros, zeros, "sigmoid")[0]
    check("sigmoid", "losses", dtype, forward, relation, **TOL[dtype])


@pytest.mark.parametrize("f_divergence", ["js_divergence", "alpha_divergence"])
def test_trl_string_f_divergence_is_reverse_kl(f_divergence):
    """A DPOTrainer built from DPOConfig holds the string, which TRL 0.28's dpo_loss never matches."""
    (pc, pr, rc, rr), _, _ = make_scores(torch.float64)
    as_string = trl_trainer("sigmoid", f_divergence=f_divergence, f_divergence_as_string=True)
    as_enum = trl_trainer("sigmoid", f_divergence=f_divergence)
    string_losses = trl_dpo_loss(as_string, pc, pr, rc, rr, "sigmoid")[0]
    enum_losses = trl_dpo_loss(as_enum, pc, pr, rc, rr, "sigmoid")[0]
    reverse = prefopt.dpo_loss(pc, pr, rc, rr)[0]
    check("sigmoid", "losses", torch.float64, reverse, string_losses, **TOL[torch.float64])
    assert (enum_losses - string_losses).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------------------------
# (d) alpha divergence coefficient: a = 1 - c, over several c (the cases above use c = 1, 0.5, 0.3, 0.7)
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("c", [2.0, 1.0, 0.25, -0.5])
def test_alpha_divergence_coefficient_mapping(c, dtype):
    (pc, pr, rc, rr), _, _ = make_scores(dtype, spread=1.0)
    want = trl_dpo_loss(
        trl_trainer("sigmoid", f_divergence="alpha_divergence", f_alpha_divergence_coef=c), pc, pr, rc, rr, "sigmoid"
    )[0]
    got = prefopt.dpo_loss(pc, pr, rc, rr, f_divergence="alpha_divergence", alpha_divergence_coef=1.0 - c)[0]
    check("sigmoid", "losses", dtype, got, want, **TOL[dtype])


# ---------------------------------------------------------------------------------------------------------
# (e) the f-divergence in loss types where TRL ignores it
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("f_divergence,c", [("js_divergence", 1.0), ("alpha_divergence", 0.5), ("forward_kl", None)])
@pytest.mark.parametrize("loss_type", ["nca_pair", "sppo_hard", "discopop"])
def test_phi_where_trl_ignores_it(loss_type, f_divergence, c, dtype):
    (pc, pr, rc, rr), _, _ = make_scores(dtype, spread=1.0)
    a = 0.5 if c is None else 1.0 - c
    got = prefopt.dpo_loss(pc, pr, rc, rr, loss_type=loss_type, f_divergence=f_divergence, alpha_divergence_coef=a)
    zeros = torch.zeros_like(pc)
    s_c, s_r = phi(pc - rc, f_divergence, a), phi(pr - rr, f_divergence, a)
    relation = trl_dpo_loss(trl_trainer(loss_type), s_c, s_r, zeros, zeros, loss_type)[0]
    check(loss_type, "losses", dtype, got[0], relation, **TOL[dtype])
    # TRL's own loss ignores phi: the documented difference.
    if c is not None:
        trl_kwargs = dict(f_divergence=f_divergence, f_alpha_divergence_coef=c)
        trl_own = trl_dpo_loss(trl_trainer(loss_type, **trl_kwargs), pc, pr, rc, rr, loss_type)
        assert (got[0].double() - trl_own[0].double()).abs().max() > 1e-4, "documented difference (e) no longer shows"
        check(loss_type, "rewards", dtype, got[1], trl_own[1], **TOL[dtype])  # rewards never see phi


# ---------------------------------------------------------------------------------------------------------
# (f) bco_pair: the running mean, over consecutive batches
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("options", [{}, dict(beta=0.5), dict(beta=0.2, f_divergence="js_divergence")], ids=str)
def test_bco_pair_running_mean_over_batches(options, dtype):
    trl_kwargs, prefopt_kwargs = split_options(options)
    trainer = trl_trainer("bco_pair", **trl_kwargs)
    module = prefopt.DPOLoss(loss_type="bco_pair", bco_running_mean=True, **prefopt_kwargs)
    tol = TOL[dtype] if dtype == torch.float32 else BCO_FP64_TOL
    for step in range(4):
        (pc, pr, rc, rr), _, _ = make_scores(dtype, seed=step, spread=1.0 + step)
        pc, pr = pc + step, pr - step  # moves the batch reward mean from batch to batch
        want_losses, want_chosen, want_rejected, want_loss, want_metrics = trl_batch(trainer, pc, pr, rc, rr)
        got = module(pc, pr, rc, rr)
        check("bco_pair", "losses", dtype, got.losses, want_losses, **tol)
        check("bco_pair", "loss", dtype, got.loss, want_loss, **tol)
        check("bco_pair", "rewards", dtype, got.chosen_rewards, want_chosen, **TOL[dtype])
        check("bco_pair", "rewards", dtype, got.rejected_rewards, want_rejected, **TOL[dtype])
        check_metrics("bco_pair", dtype, got.metrics, want_metrics)
        # The state itself: TRL's RunningMoments.mean / count and the module's buffers.
        assert module.bco_running_count.item() == trainer.running.count == pytest.approx(step + 1)
        check("bco_pair", "state", dtype, module.bco_running_mean, trainer.running.mean, atol=1e-6, rtol=1e-6)


def test_bco_pair_state_survives_a_checkpoint():
    """The running mean is module state: a module loaded from state_dict() continues TRL's sequence."""
    trainer = trl_trainer("bco_pair")
    module = prefopt.DPOLoss(loss_type="bco_pair", bco_running_mean=True)
    batches = [make_scores(torch.float32, seed=s)[0] for s in range(3)]
    for scores in batches[:2]:
        trl_batch(trainer, *scores)
        module(*scores)
    restored = prefopt.DPOLoss(loss_type="bco_pair", bco_running_mean=True)
    restored.load_state_dict(module.state_dict())
    want = trl_batch(trainer, *batches[2])[0]
    check("bco_pair", "losses", torch.float32, restored(*batches[2]).losses, want, **TOL[torch.float32])


# ---------------------------------------------------------------------------------------------------------
# (g) reference_free
# ---------------------------------------------------------------------------------------------------------

# TRL honours reference_free in the loss types that use its `logits` (sigmoid, robust, exo_pair, hinge, ipo).
HONOURED = [
    ("sigmoid", {}),
    ("sigmoid", dict(f_divergence="js_divergence", beta=0.2)),
    ("sigmoid", dict(f_divergence="alpha_divergence", c=0.5)),
    ("hinge", {}),
    ("robust", dict(label_smoothing=0.1)),
    ("exo_pair", dict(label_smoothing=0.1)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("case", HONOURED, ids=[case_id(c) for c in HONOURED])
def test_reference_free_where_trl_honours_it(case, dtype):
    loss_type, options = case
    trl_kwargs, prefopt_kwargs = split_options(options)
    (pc, pr, rc, rr), _, _ = make_scores(dtype)
    want = trl_dpo_loss(trl_trainer(loss_type, reference_free=True, **trl_kwargs), pc, pr, rc, rr, loss_type)
    got = prefopt.dpo_loss(pc, pr, loss_type=loss_type, reference_free=True, **prefopt_kwargs)
    tol = TOL[dtype]
    check("reference_free", "losses", dtype, got[0], want[0], **tol)
    # TRL's rewards still subtract the reference log-probs it was handed: prefopt's = TRL's + beta q.
    beta = options.get("beta", 0.1)
    check("reference_free", "rewards", dtype, got[1], want[1] + beta * rc, **tol)
    check("reference_free", "rewards", dtype, got[2], want[2] + beta * rr, **tol)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize(
    "loss_type", ["nca_pair", "sppo_hard", "aot", "aot_unpaired", "discopop", "apo_zero", "apo_down", "ipo"]
)
def test_reference_free_is_trl_with_zero_reference(loss_type, dtype):
    """The other loss types read TRL's reference log-probs whatever reference_free says: hand TRL zeros."""
    (pc, pr, rc, rr), (lc, lr), _ = make_scores(dtype)
    zeros = torch.zeros_like(pc)
    if loss_type == "ipo":
        want = trl_dpo_loss(trl_trainer("ipo", reference_free=True), pc / lc, pr / lr, zeros, zeros, "ipo")
        got = prefopt.dpo_loss(pc, pr, loss_type="ipo", reference_free=True, chosen_lengths=lc, rejected_lengths=lr)
        got = (got[0], got[1] / lc, got[2] / lr)
    else:
        want = trl_dpo_loss(trl_trainer(loss_type, reference_free=True), pc, pr, zeros, zeros, loss_type)
        got = prefopt.dpo_loss(pc, pr, None, None, loss_type=loss_type, reference_free=True)
    for quantity, g, w in zip(("losses", "rewards", "rewards"), got, want):
        check("reference_free", quantity, dtype, g, w, **TOL[dtype])


# ---------------------------------------------------------------------------------------------------------
# (h) several loss types with weights, RPO and WPO: through TRL's get_batch_loss_metrics
# ---------------------------------------------------------------------------------------------------------

MULTI_CASES = [
    (["sigmoid", "bco_pair", "sft"], [0.8, 0.2, 1.0], {}),  # MPO
    (["hinge", "apo_zero"], None, dict(beta=0.2)),
    (["sigmoid", "exo_pair"], [1.0, 0.5], dict(label_smoothing=0.1)),
    (["robust", "aot", "nca_pair"], [1.0, -0.25, 0.5], dict(label_smoothing=0.2, beta=0.3)),
    (["discopop", "sppo_hard", "apo_down", "aot_unpaired"], [0.1, 0.2, 0.3, 0.4], dict(discopop_tau=0.1)),
    (["sigmoid"], [0.5], {}),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("case", MULTI_CASES, ids=lambda c: "+".join(c[0]))
def test_multiple_loss_types_match_trl(case, dtype):
    loss_types, weights, options = case
    trl_kwargs, prefopt_kwargs = split_options(options)
    trainer = trl_trainer(loss_types, loss_weights=weights, **trl_kwargs)
    module = prefopt.DPOLoss(
        loss_type=loss_types, loss_weights=weights, bco_running_mean="bco_pair" in loss_types, **prefopt_kwargs
    )
    scale = sum(weights) if weights else float(len(loss_types))
    tol = TOL[dtype] if dtype == torch.float32 or "bco_pair" not in loss_types else BCO_FP64_TOL
    for step in range(2 if "bco_pair" in loss_types else 1):
        (pc, pr, rc, rr), _, nll = make_scores(dtype, seed=10 + step)
        nll = nll if "sft" in loss_types else None
        want_losses, want_chosen, want_rejected, want_loss, want_metrics = trl_batch(trainer, pc, pr, rc, rr, nll=nll)
        got = module(pc, pr, rc, rr, chosen_nll=nll)
        check("multiple types", "losses", dtype, got.losses, want_losses, **tol)
        check("multiple types", "loss", dtype, got.loss, want_loss, **tol)
        # TRL sums the weighted rewards of each type; prefopt's are beta h, whatever the types and weights.
        check("multiple types", "rewards", dtype, got.chosen_rewards * scale, want_chosen, **TOL[dtype])
        check("multiple types", "rewards", dtype, got.rejected_rewards * scale, want_rejected, **TOL[dtype])
        check_metrics("multiple types", dtype, got.metrics, want_metrics, reward_scale=scale)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize(
    "loss_type,rpo_alpha,options",
    [("sigmoid", 1.0, {}), ("sigmoid", 0.25, dict(beta=0.5)), ("apo_down", 0.5, {}), ("hinge", 0.0, {})],
)
def test_rpo_alpha_matches_trl(loss_type, rpo_alpha, options, dtype):
    (pc, pr, rc, rr), _, nll = make_scores(dtype)
    want_losses, want_chosen, _, want_loss, want_metrics = trl_batch(
        trl_trainer(loss_type, rpo_alpha=rpo_alpha, **options), pc, pr, rc, rr, nll=nll
    )
    got = prefopt_result(pc, pr, rc, rr, loss_type=loss_type, rpo_alpha=rpo_alpha, chosen_nll=nll, **options)
    check("rpo_alpha", "losses", dtype, got.losses, want_losses, **TOL[dtype])
    check("rpo_alpha", "loss", dtype, got.loss, want_loss, **TOL[dtype])
    check("rpo_alpha", "rewards", dtype, got.chosen_rewards, want_chosen, **TOL[dtype])
    check_metrics("rpo_alpha", dtype, got.metrics, want_metrics)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize(
    "loss_type,weights,rpo_alpha",
    [("sigmoid", None, None), ("ipo", None, None), (["sigmoid", "sft"], [1.0, 0.3], 0.5), ("robust", None, 1.0)],
    ids=["sigmoid", "ipo", "sigmoid+sft+rpo", "robust+rpo"],
)
def test_use_weighting_matches_trl(loss_type, weights, rpo_alpha, dtype):
    """TRL multiplies the per-pair losses (after RPO's term) by policy_weights; prefopt by ``weights``."""
    (pc, pr, rc, rr), (lc, lr), nll = make_scores(dtype)
    g = torch.Generator().manual_seed(7)
    log_weights = [-0.5 * torch.rand(pc.shape[0], generator=g, dtype=torch.float64).to(dtype) for _ in range(2)]
    log_weights[0][0] = 0.4  # one pair above 1 before the clamp
    policy_weights = prefopt.wpo_pair_weights(*log_weights)
    nll = nll if rpo_alpha is not None or "sft" in loss_type else None
    ipo = loss_type == "ipo"
    trl_scores = (pc / lc, pr / lr, rc / lc, rr / lr) if ipo else (pc, pr, rc, rr)
    trainer = trl_trainer(loss_type, loss_weights=weights, rpo_alpha=rpo_alpha, use_weighting=True)
    want_losses, _, _, want_loss, _ = trl_batch(trainer, *trl_scores, nll=nll, policy_weights=policy_weights)
    lengths = dict(chosen_lengths=lc, rejected_lengths=lr) if ipo else {}
    got = prefopt_result(
        pc, pr, rc, rr, loss_type=loss_type, loss_weights=weights, rpo_alpha=rpo_alpha or 0.0, chosen_nll=nll,
        weights=policy_weights, **lengths,
    )
    check("use_weighting", "losses", dtype, got.losses, want_losses, **TOL[dtype])
    check("use_weighting", "loss", dtype, got.loss, want_loss, **TOL[dtype])


# ---------------------------------------------------------------------------------------------------------
# (i) ld_alpha and RPO's nll_loss, through TRL's concatenated_forward
# ---------------------------------------------------------------------------------------------------------


class FixedLogits:
    """A stand-in causal LM: returns the logits it was built with, whatever the input ids."""

    def __init__(self, logits):
        self.logits = logits

    def __call__(self, input_ids, **kwargs):
        assert input_ids.shape == self.logits.shape[:2]
        return types.SimpleNamespace(logits=self.logits)


def ld_batch(dtype, *, prompt_length, batch=3, vocab=11, seed=3):
    """A TRL DPO batch (prompt and completion ids, right-padded) and a policy and a reference stand-in model."""
    g = torch.Generator().manual_seed(seed)
    lc = torch.tensor([6, 3, 8])[:batch]
    lr = torch.tensor([4, 7, 8])[:batch]
    width = int(max(lc.max(), lr.max()))
    # Token ids >= 1: TRL's nll_loss ignores id 0 (its padding label).
    ids = lambda: torch.randint(1, vocab, (batch, width), generator=g)  # noqa: E731
    positions = torch.arange(width)
    chosen_mask, rejected_mask = (positions < lc[:, None]).long(), (positions < lr[:, None]).long()
    batch_dict = {
        "prompt_input_ids": torch.randint(1, vocab, (batch, prompt_length), generator=g),
        "prompt_attention_mask": torch.ones(batch, prompt_length, dtype=torch.long),
        "chosen_input_ids": ids() * chosen_mask,
        "chosen_attention_mask": chosen_mask,
        "rejected_input_ids": ids() * rejected_mask,
        "rejected_attention_mask": rejected_mask,
    }
    prompts = torch.cat([batch_dict["prompt_input_ids"]] * 2)
    completions = torch.cat([batch_dict["chosen_input_ids"], batch_dict["rejected_input_ids"]])
    input_ids = torch.cat([prompts, completions], dim=1)
    models = []
    for _ in range(2):
        logits = (2 * torch.randn(2 * batch, prompt_length + width, vocab, generator=g, dtype=torch.float64)).to(dtype)
        if prompt_length == 0:
            # TRL rolls the per-token log-probs by one, which brings the last position's log-prob of the first
            # token into position 0 of its ld_alpha sum. The stand-in puts all of that position's probability on
            # the first token, so that term is exactly 0 and the rest is TRL's own counting.
            logits[:, -1, :] = 0
            logits[torch.arange(2 * batch), -1, input_ids[:, 0]] = 1e4
        models.append(FixedLogits(logits))
    return batch_dict, input_ids, models


def prefopt_token_logps(model, input_ids, batch_dict, prompt_length):
    """(token log-probs, mask) of the scored completion tokens, chosen and rejected, with prefopt's scoring."""
    completion_mask = torch.cat([batch_dict["chosen_attention_mask"], batch_dict["rejected_attention_mask"]]).bool()
    mask = torch.cat([torch.zeros(input_ids.shape[0], prompt_length, dtype=torch.bool), completion_mask], dim=1)
    labels = input_ids[:, 1:].masked_fill(~mask[:, 1:], -100)  # logits at t predict the token at t + 1
    _, token_logps = prefopt.sequence_logps(model.logits[:, :-1], labels)
    scored = labels != -100
    b = input_ids.shape[0] // 2
    return (token_logps[:b], scored[:b]), (token_logps[b:], scored[b:])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("ld_alpha", [0.0, 0.3, 1.0])
def test_ld_alpha_with_completions_at_position_zero(ld_alpha, dtype):
    batch_dict, input_ids, (policy, reference) = ld_batch(dtype, prompt_length=0)
    trainer = trl_trainer("sigmoid", ld_alpha=ld_alpha, rpo_alpha=1.0)
    trl_policy = DPOTrainer.concatenated_forward(trainer, policy, batch_dict)
    trl_reference = DPOTrainer.concatenated_forward(trainer, reference, batch_dict, is_ref_model=True)
    (c_tok, c_mask), (r_tok, r_mask) = prefopt_token_logps(policy, input_ids, batch_dict, 0)
    (rc_tok, rc_mask), (rr_tok, rr_mask) = prefopt_token_logps(reference, input_ids, batch_dict, 0)
    pc, pr = prefopt.ld_dpo_logps(c_tok, c_mask, r_tok, r_mask, alpha=ld_alpha)
    tol = TOL[dtype]
    check("ld_alpha", "logps", dtype, pc, trl_policy["chosen_logps"], **tol)
    check("ld_alpha", "logps", dtype, pr, trl_policy["rejected_logps"], **tol)
    # TRL applies ld_alpha to the policy only: its reference log-probs are the plain sums.
    rc, rr = (rc_tok * rc_mask).sum(1), (rr_tok * rr_mask).sum(1)
    check("ld_alpha", "logps", dtype, rc, trl_reference["chosen_logps"], **tol)
    check("ld_alpha", "logps", dtype, rr, trl_reference["rejected_logps"], **tol)
    # RPO's nll_loss from the same forward: prefopt.mean_token_nll over the chosen tokens.
    check("ld_alpha", "nll", dtype, prefopt.mean_token_nll(c_tok, c_mask), trl_policy["nll_loss"], **tol)
    # The loss TRL trains with is prefopt's on (LD policy, plain reference).
    want = trl_dpo_loss(trainer, trl_policy["chosen_logps"], trl_policy["rejected_logps"],
                        trl_reference["chosen_logps"], trl_reference["rejected_logps"], "sigmoid")
    got = prefopt.dpo_loss(pc, pr, rc, rr)
    for quantity, g_, w in zip(("losses", "rewards", "rewards"), got, want):
        check("ld_alpha", quantity, dtype, g_, w, **tol)
    # prefopt's recommended use applies LD-DPO to the reference too: a documented difference unless alpha = 1.
    ref_c, ref_r = prefopt.ld_dpo_logps(rc_tok, rc_mask, rr_tok, rr_mask, alpha=ld_alpha)
    both = prefopt.dpo_loss(pc, pr, ref_c, ref_r)[0]
    differs = (both.double() - want[0].double()).abs().max().item() > 1e-6
    assert differs == (ld_alpha != 1.0)


def test_ld_alpha_after_a_prompt_counts_from_the_sequence_start_in_trl():
    """With a prompt, TRL 0.28's front/rear split counts prompt positions, so even ld_alpha = 1 is not the plain
    sum of the completion (it drops the last prompt-length completion tokens); prefopt's alpha = 1 is the sum."""
    dtype = torch.float64
    batch_dict, input_ids, (policy, _) = ld_batch(dtype, prompt_length=2)
    plain = DPOTrainer.concatenated_forward(trl_trainer("sigmoid"), policy, batch_dict)
    ld_one = DPOTrainer.concatenated_forward(trl_trainer("sigmoid", ld_alpha=1.0), policy, batch_dict)
    assert (ld_one["chosen_logps"] - plain["chosen_logps"]).abs().max() > 1e-3
    (c_tok, c_mask), (r_tok, r_mask) = prefopt_token_logps(policy, input_ids, batch_dict, 2)
    pc, pr = prefopt.ld_dpo_logps(c_tok, c_mask, r_tok, r_mask, alpha=1.0)
    check("ld_alpha", "logps", dtype, pc, plain["chosen_logps"], **TOL[dtype])
    check("ld_alpha", "logps", dtype, pr, plain["rejected_logps"], **TOL[dtype])


# ---------------------------------------------------------------------------------------------------------
# (j) sigmoid_norm: not in TRL 0.28; a float64 reference from LOSSES.md
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("f_divergence", ["reverse_kl", "js_divergence"])
@pytest.mark.parametrize("beta", [0.1, 2.0])
def test_sigmoid_norm_against_float64_reference(beta, f_divergence, dtype):
    (pc, pr, rc, rr), (lc, lr), _ = make_scores(dtype)
    got = prefopt.dpo_loss(
        pc, pr, rc, rr, loss_type="sigmoid_norm", beta=beta, f_divergence=f_divergence,
        chosen_lengths=lc, rejected_lengths=lr,
    )
    h_c, h_r = pc.double() - rc.double(), pr.double() - rr.double()
    s_c, s_r = phi(h_c, f_divergence, 0.5), phi(h_r, f_divergence, 0.5)
    want = -F.logsigmoid(beta * (s_c / lc.double() - s_r / lr.double()))
    tol = TOL[dtype]
    check("sigmoid_norm", "losses", dtype, got[0], want, **tol)
    check("sigmoid_norm", "rewards", dtype, got[1], beta * h_c, **tol)
    check("sigmoid_norm", "rewards", dtype, got[2], beta * h_r, **tol)
