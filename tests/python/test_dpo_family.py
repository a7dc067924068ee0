"""Tests of the whole DPO family from Python: prefopt.dpo_loss with every loss type and option, the DPOLoss module
(options, reduction, TRL's metrics, the bco_pair running-mean buffers) and torch.ops.prefopt.dpo_loss.

Values against a float64 reference written here from LOSSES.md section 1 (never from prefopt's code), gradcheck
in float64 for each loss type, bf16/fp16 inputs against the float64 reference (the low-precision rule of
DESIGN.md), opcheck (check_finite=False: the finiteness check is a data-dependent .item()), and bad input with
its message. Parity with TRL itself is in test_dpo_trl_parity.py.
"""

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch.library import opcheck

import prefopt

OP = torch.ops.prefopt.dpo_loss.default

LOSS_TYPES = [
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
    "apo_zero",
    "apo_down",
    "discopop",
    "sigmoid_norm",
    "sft",
]
# label_smoothing each loss type accepts (exo_pair needs one in (0, 1)); 0 for the others.
SMOOTHING = {"sigmoid": 0.1, "robust": 0.2, "exo_pair": 0.1, "aot": 0.1, "aot_unpaired": 0.1}
NEEDS_LENGTHS = {"ipo", "sigmoid_norm"}


# ---------------------------------------------------------------------------------------------------------
# A float64 reference, written from LOSSES.md section 1
# ---------------------------------------------------------------------------------------------------------


def logsig(z):
    return F.logsigmoid(z)


def phi(h, f_divergence, a):
    if f_divergence == "reverse_kl" or (f_divergence == "alpha_divergence" and abs(a - 1.0) < 1e-6):
        return h
    if f_divergence == "forward_kl":
        return -torch.exp(-h)
    if f_divergence == "js_divergence":
        return logsig(h)
    return torch.exp((a - 1.0) * h) / (a - 1.0)


def reference_one(loss_type, pc, pr, rc, rr, *, beta, eps, f_divergence, a, tau, lc, lr, nll):
    """One loss type's per-pair losses, in the dtype of the inputs (float64 for the reference)."""
    h_c, h_r = pc - rc, pr - rr
    s_c, s_r = phi(h_c, f_divergence, a), phi(h_r, f_divergence, a)
    D = s_c - s_r
    if loss_type == "sigmoid":
        return -(1 - eps) * logsig(beta * D) - eps * logsig(-beta * D)
    if loss_type == "hinge":
        return torch.relu(1 - beta * D)
    if loss_type == "ipo":
        return (s_c / lc - s_r / lr - 1 / (2 * beta)) ** 2
    if loss_type == "exo_pair":
        q = torch.sigmoid(beta * D)
        return q * (logsig(beta * D) - math.log(1 - eps)) + (1 - q) * (logsig(-beta * D) - math.log(eps))
    if loss_type == "nca_pair":
        return -logsig(beta * s_c) - 0.5 * logsig(-beta * s_c) - 0.5 * logsig(-beta * s_r)
    if loss_type == "robust":
        return (-(1 - eps) * logsig(beta * D) + eps * logsig(-beta * D)) / (1 - 2 * eps)
    if loss_type == "bco_pair":
        return -logsig(beta * s_c) - logsig(-beta * s_r)
    if loss_type == "sppo_hard":
        return (s_c - 1 / (2 * beta)) ** 2 + (s_r + 1 / (2 * beta)) ** 2
    if loss_type in ("aot", "aot_unpaired"):
        if loss_type == "aot":
            d = torch.sort(pc - pr).values - torch.sort(rc - rr).values
        else:
            d = torch.sort(h_c).values - torch.sort(h_r).values
        return -(1 - eps) * logsig(beta * d) - eps * logsig(-beta * d)
    if loss_type == "apo_zero":
        return 1 - torch.sigmoid(beta * h_c) + torch.sigmoid(beta * h_r)
    if loss_type == "apo_down":
        # LOSSES.md: the anchor term on the raw h_c, the margin term on D (after phi).
        return torch.sigmoid(beta * h_c) + 1 - torch.sigmoid(beta * D)
    if loss_type == "discopop":
        z = beta * D
        m = torch.sigmoid(z / tau)
        return (1 - m) * (-logsig(z)) + m * torch.exp(-z)
    if loss_type == "sigmoid_norm":
        return -logsig(beta * (s_c / lc - s_r / lr))
    if loss_type == "sft":
        return nll.expand(pc.shape)
    raise AssertionError(loss_type)


def reference(pc, pr, rc, rr, *, loss_type="sigmoid", loss_weights=None, beta=0.1, label_smoothing=0.0,
              f_divergence="reverse_kl", alpha_divergence_coef=0.5, discopop_tau=0.05, rpo_alpha=0.0,
              reference_free=False, chosen_lengths=None, rejected_lengths=None, chosen_nll=None, weights=None,
              dtype=torch.float64):
    """(losses, chosen_rewards, rejected_rewards) computed in ``dtype`` from LOSSES.md."""
    cast = lambda t: None if t is None else t.detach().to(dtype)  # noqa: E731
    pc, pr = cast(pc), cast(pr)
    rc = torch.zeros_like(pc) if reference_free else cast(rc)
    rr = torch.zeros_like(pr) if reference_free else cast(rr)
    lc = None if chosen_lengths is None else chosen_lengths.to(dtype).clamp_min(1)
    lr = None if rejected_lengths is None else rejected_lengths.to(dtype).clamp_min(1)
    nll = cast(chosen_nll)
    types = [loss_type] if isinstance(loss_type, str) else list(loss_type)
    ws = loss_weights or [1.0] * len(types)
    losses = 0
    for t, w in zip(types, ws):
        losses = losses + w * reference_one(
            t, pc, pr, rc, rr, beta=beta, eps=label_smoothing, f_divergence=f_divergence, a=alpha_divergence_coef,
            tau=discopop_tau, lc=lc, lr=lr, nll=nll,
        )
    if rpo_alpha > 0:
        losses = losses + rpo_alpha * nll
    if weights is not None:
        losses = losses * cast(weights)
    return losses, beta * (pc - rc), beta * (pr - rr)


def make_inputs(batch=8, dtype=torch.float32, seed=0):
    """Scores (summed log-probs), lengths and a chosen NLL, drawn in float64 then cast."""
    g = torch.Generator().manual_seed(seed)
    rc = -20 - 30 * torch.rand(batch, generator=g, dtype=torch.float64)
    rr = -20 - 30 * torch.rand(batch, generator=g, dtype=torch.float64)
    pc = rc + 2 * torch.randn(batch, generator=g, dtype=torch.float64)
    pr = rr + 2 * torch.randn(batch, generator=g, dtype=torch.float64)
    lc = torch.randint(3, 30, (batch,), generator=g)
    lr = torch.randint(3, 30, (batch,), generator=g)
    nll = 1.5 + torch.rand((), generator=g, dtype=torch.float64)
    return [t.to(dtype) for t in (pc, pr, rc, rr)], lc, lr, nll.to(dtype)


def options_for(loss_type, **extra):
    """dpo_loss keyword arguments a loss type needs, plus extra (lengths, nll and eps get filled in by caller)."""
    first = loss_type if isinstance(loss_type, str) else loss_type[0]
    options = dict(loss_type=loss_type, label_smoothing=SMOOTHING.get(first, 0.0))
    options.update(extra)
    return options


def inputs_for(loss_type, lc, lr, nll):
    types = [loss_type] if isinstance(loss_type, str) else loss_type
    extra = {}
    if NEEDS_LENGTHS & set(types):
        extra.update(chosen_lengths=lc, rejected_lengths=lr)
    if "sft" in types:
        extra["chosen_nll"] = nll
    return extra


TOL = {
    torch.float64: dict(atol=1e-12, rtol=1e-12),
    torch.float32: dict(atol=1e-5, rtol=1e-5),
    torch.bfloat16: dict(atol=1e-5, rtol=2.0**-8),
    torch.float16: dict(atol=1e-5, rtol=2.0**-10),
}


# ---------------------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_loss_type_against_reference(loss_type, dtype):
    scores, lc, lr, nll = make_inputs(dtype=dtype)
    options = options_for(loss_type, beta=0.3, **inputs_for(loss_type, lc, lr, nll))
    out = prefopt.dpo_loss(*scores, **options)
    want = reference(*scores, **options)
    for got, ref, name in zip(out, want, ("losses", "chosen_rewards", "rejected_rewards")):
        assert got.dtype == dtype and got.shape == (8,), name
        torch.testing.assert_close(got.double(), ref, **TOL[dtype], msg=lambda m: f"{loss_type} {name}: {m}")


@pytest.mark.parametrize(
    "f_divergence,coef", [("forward_kl", 0.5), ("js_divergence", 0.5), ("alpha_divergence", 0.3),
                          ("alpha_divergence", 1.7), ("alpha_divergence", 1.0)]
)
@pytest.mark.parametrize(
    "loss_type", ["sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "discopop",
                  "sigmoid_norm", "aot", "aot_unpaired", "apo_zero", "apo_down"]
)
def test_f_divergences_against_reference(loss_type, f_divergence, coef):
    scores, lc, lr, nll = make_inputs(dtype=torch.float64)
    extra = inputs_for(loss_type, lc, lr, nll)
    options = options_for(loss_type, f_divergence=f_divergence, alpha_divergence_coef=coef, **extra)
    out = prefopt.dpo_loss(*scores, **options)
    torch.testing.assert_close(out[0], reference(*scores, **options)[0], **TOL[torch.float64])


def test_alpha_divergence_exponent_is_clamped():
    # (a - 1) h = 200 overflows exp in float32; LOSSES.md clamps the exponent to 80 (11 for float16).
    zero = torch.zeros(2)
    for dtype, cap in ((torch.float32, 80.0), (torch.bfloat16, 80.0), (torch.float16, 11.0)):
        pc = torch.tensor([-100.0, 1.0]).to(dtype)
        z = zero.to(dtype)
        out = prefopt.dpo_loss(pc, z, z, z, f_divergence="alpha_divergence", alpha_divergence_coef=-1.0, beta=1.0)[0]
        assert torch.isfinite(out).all(), dtype
        # phi(h) = exp(-2 h) / -2: s_c = -exp(cap) / 2 at the clamp, s_r = phi(0) = -1/2; loss = -logsig(s_c - s_r).
        want = -F.logsigmoid(torch.tensor(-math.exp(cap) / 2 + 0.5, dtype=torch.float64))
        torch.testing.assert_close(out[0].double(), want, rtol=2**-7, atol=0, msg=str(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_several_loss_types_rpo_and_weights_against_reference(dtype):
    scores, lc, lr, nll = make_inputs(dtype=dtype)
    weights = prefopt.wpo_pair_weights(-torch.rand(8, dtype=dtype), -torch.rand(8, dtype=dtype))
    options = dict(
        loss_type=["sigmoid", "ipo", "sft", "nca_pair"], loss_weights=[0.8, 0.1, 1.0, -0.2], beta=0.2,
        label_smoothing=0.1, rpo_alpha=0.5, chosen_lengths=lc, rejected_lengths=lr, chosen_nll=nll, weights=weights,
        f_divergence="js_divergence",
    )
    out = prefopt.dpo_loss(*scores, **options)
    want = reference(*scores, **options)
    for got, ref in zip(out, want):
        torch.testing.assert_close(got.double(), ref, **TOL[dtype])


def test_single_loss_type_with_a_weight():
    scores, *_ = make_inputs()
    plain = prefopt.dpo_loss(*scores, loss_type="hinge")[0]
    weighted = prefopt.dpo_loss(*scores, loss_type="hinge", loss_weights=[0.25])[0]
    as_list = prefopt.dpo_loss(*scores, loss_type=["hinge"], loss_weights=[0.25])[0]
    torch.testing.assert_close(weighted, 0.25 * plain)
    torch.testing.assert_close(as_list, weighted, atol=0, rtol=0)


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "aot", "bco_pair", "apo_down"])
def test_reference_free_is_zero_reference(loss_type):
    scores, lc, lr, nll = make_inputs(dtype=torch.float64)
    pc, pr, rc, rr = scores
    extra = inputs_for(loss_type, lc, lr, nll)
    free = prefopt.dpo_loss(pc, pr, loss_type=loss_type, reference_free=True, **extra)
    zeros = torch.zeros_like(pc)
    explicit = prefopt.dpo_loss(pc, pr, zeros, zeros, loss_type=loss_type, **extra)
    ignored = prefopt.dpo_loss(pc, pr, rc, rr, loss_type=loss_type, reference_free=True, **extra)
    for a, b, c in zip(free, explicit, ignored):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
        torch.testing.assert_close(a, c, atol=0, rtol=0)


def test_lengths_are_clamped_to_one_and_may_be_float():
    scores, lc, lr, _ = make_inputs(dtype=torch.float64)
    lc = lc.clone()
    lc[0] = 0
    out = prefopt.dpo_loss(*scores, loss_type="ipo", chosen_lengths=lc, rejected_lengths=lr.double())[0]
    want = reference(*scores, loss_type="ipo", chosen_lengths=lc.clamp_min(1), rejected_lengths=lr)[0]
    torch.testing.assert_close(out, want)


# ---------------------------------------------------------------------------------------------------------
# bf16 / fp16 inputs against the float64 reference (DESIGN.md's low-precision rule)
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("loss_type", LOSS_TYPES + [("sigmoid", "bco_pair", "sft")], ids=str)
def test_low_precision_against_float64_reference(loss_type, dtype):
    scores, lc, lr, nll = make_inputs(dtype=dtype)
    options = options_for(loss_type if isinstance(loss_type, str) else list(loss_type), beta=0.3)
    if isinstance(loss_type, tuple):
        options.update(loss_weights=[0.8, 0.2, 1.0])
    options.update(inputs_for(options["loss_type"], lc, lr, nll))
    losses, chosen, rejected = prefopt.dpo_loss(*scores, **options)
    assert losses.dtype == chosen.dtype == rejected.dtype == dtype
    # The reference sees the same (rounded) inputs, in float64; the composite runs the same formulas in `dtype`.
    want = reference(*scores, **options)
    composite = reference(*scores, **options, dtype=dtype)
    for got, ref, comp, name in zip((losses, chosen, rejected), want, composite, ("losses", "chosen", "rejected")):
        err = (got.double() - ref).abs().max().item()
        composite_err = (comp.double() - ref).abs().max().item()
        rounding = ref.abs().max().item() * torch.finfo(dtype).eps / 2  # one final rounding to `dtype`
        assert err <= max(2 * composite_err, rounding), f"{name}: {err} vs composite {composite_err}"
        torch.testing.assert_close(got.double(), ref, **TOL[dtype], msg=lambda m: f"{loss_type} {name}: {m}")


# ---------------------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_gradcheck(loss_type):
    scores, lc, lr, nll = make_inputs(batch=4, dtype=torch.float64, seed=1)
    scores = [s.requires_grad_() for s in scores]
    nll = nll.requires_grad_()
    options = options_for(loss_type, beta=0.4)
    lengths = dict(chosen_lengths=lc, rejected_lengths=lr) if loss_type in NEEDS_LENGTHS else {}

    def fn(pc, pr, rc, rr, nll):
        extra = dict(chosen_nll=nll) if loss_type == "sft" else {}
        return prefopt.dpo_loss(pc, pr, rc, rr, check_finite=False, **options, **lengths, **extra)[0]

    assert torch.autograd.gradcheck(fn, (*scores, nll), fast_mode=True)


@pytest.mark.parametrize(
    "options",
    [
        dict(loss_type="sigmoid", f_divergence="js_divergence", label_smoothing=0.2),
        dict(loss_type="nca_pair", f_divergence="alpha_divergence", alpha_divergence_coef=0.3),
        dict(loss_type="hinge", f_divergence="forward_kl", beta=0.05),
        dict(loss_type=["sigmoid", "sft", "ipo"], loss_weights=[0.5, 1.0, 0.2], rpo_alpha=0.7),
        dict(loss_type="discopop", discopop_tau=0.3, reference_free=True),
    ],
    ids=["js", "alpha", "forward_kl", "several+rpo", "discopop-reference_free"],
)
def test_gradcheck_options(options):
    scores, lc, lr, nll = make_inputs(batch=4, dtype=torch.float64, seed=2)
    scores = [s.requires_grad_() for s in scores]
    nll = nll.requires_grad_()
    weights = torch.rand(4, dtype=torch.float64)

    def fn(pc, pr, rc, rr, nll):
        return prefopt.dpo_loss(pc, pr, rc, rr, chosen_lengths=lc, rejected_lengths=lr, chosen_nll=nll,
                                weights=weights, check_finite=False, **options)[0]

    assert torch.autograd.gradcheck(fn, (*scores, nll), fast_mode=True)


def test_rewards_and_weights_are_detached():
    scores, lc, lr, nll = make_inputs(dtype=torch.float64)
    scores = [s.requires_grad_() for s in scores]
    weights = torch.rand(8, dtype=torch.float64, requires_grad=True)
    nll = nll.requires_grad_()
    losses, chosen, rejected = prefopt.dpo_loss(*scores, loss_type=["sigmoid", "sft"], chosen_nll=nll, weights=weights)
    assert not chosen.requires_grad and not rejected.requires_grad
    losses.sum().backward()
    assert weights.grad is None
    torch.testing.assert_close(nll.grad, weights.detach().sum())  # d/d nll of sum_i W_i (l_i + nll)
    assert all(s.grad is not None for s in scores)


def test_wpo_pair_weights_has_no_gradient():
    c = torch.tensor([-0.3, 0.2], requires_grad=True)
    w = prefopt.wpo_pair_weights(c, torch.tensor([-0.1, 0.5]))
    assert not w.requires_grad
    torch.testing.assert_close(w, torch.tensor([math.exp(-0.4), 1.0]))


# ---------------------------------------------------------------------------------------------------------
# The DPOLoss module
# ---------------------------------------------------------------------------------------------------------


def test_module_result_reduction_and_metrics():
    scores, lc, lr, nll = make_inputs(dtype=torch.float64)
    module = prefopt.DPOLoss(loss_type="ipo", beta=0.2)
    out = module(*scores, chosen_lengths=lc, rejected_lengths=lr, chosen_nll=nll)
    assert isinstance(out, prefopt.DPOLossResult)
    losses, chosen, rejected = prefopt.dpo_loss(*scores, loss_type="ipo", beta=0.2, chosen_lengths=lc,
                                                rejected_lengths=lr)
    torch.testing.assert_close(out.losses, losses, atol=0, rtol=0)
    torch.testing.assert_close(out.loss, losses.mean(), atol=0, rtol=0)
    pc, pr = scores[:2]
    expected = {
        "rewards/chosen": chosen.mean(),
        "rewards/rejected": rejected.mean(),
        "rewards/accuracies": (chosen > rejected).double().mean(),
        "rewards/margins": (chosen - rejected).mean(),
        "logps/chosen": pc.mean(),
        "logps/rejected": pr.mean(),
        "nll_loss": nll,
    }
    assert set(out.metrics) == set(expected)
    for name, value in expected.items():
        got = out.metrics[name]
        assert got.dtype == torch.float32 and got.dim() == 0 and not got.requires_grad, name
        torch.testing.assert_close(got, value.float(), msg=name)
    assert prefopt.DPOLoss(reduction="sum")(*scores).loss.item() == pytest.approx(
        prefopt.dpo_loss(*scores)[0].sum().item()
    )
    none = prefopt.DPOLoss(reduction="none")(*scores)
    assert none.loss.shape == (8,)


def test_module_accuracy_is_strict():
    zero = torch.zeros(4)
    out = prefopt.DPOLoss()(torch.tensor([1.0, 0.0, -1.0, 2.0]), torch.tensor([0.0, 0.0, 0.0, 0.0]), zero, zero)
    assert out.metrics["rewards/accuracies"].item() == 0.5  # the tie counts as wrong


def test_module_bco_buffers_are_state():
    module = prefopt.DPOLoss(loss_type=["sigmoid", "bco_pair"], bco_running_mean=True, beta=0.5)
    state = module.state_dict()
    assert set(state) == {"bco_running_mean", "bco_running_count"}
    for t in state.values():
        assert t.dtype == torch.float64 and t.dim() == 0
    assert module.bco_running_count.item() == 1e-24 and module.bco_running_mean.item() == 0.0
    batches = [make_inputs(dtype=torch.float64, seed=s)[0] for s in range(3)]
    means = []
    for scores in batches:
        module(*scores)
        pc, pr, rc, rr = scores
        means.append(torch.cat([0.5 * (pc - rc), 0.5 * (pr - rr)]).mean())
    # The running mean of the batch means (the first batch's mean replaces the initial 0).
    assert module.bco_running_count.item() == pytest.approx(3.0)
    torch.testing.assert_close(module.bco_running_mean, torch.stack(means).mean())
    # A fresh module loaded from the checkpoint gives the same next batch as the original.
    restored = prefopt.DPOLoss(loss_type=["sigmoid", "bco_pair"], bco_running_mean=True, beta=0.5)
    restored.load_state_dict(module.state_dict())
    nxt = make_inputs(dtype=torch.float64, seed=9)[0]
    torch.testing.assert_close(restored(*nxt).losses, module(*nxt).losses, atol=0, rtol=0)
    module.reset_bco_state()
    assert module.bco_running_count.item() == 1e-24 and module.bco_running_mean.item() == 0.0


def test_module_bco_with_running_mean_matches_the_formula():
    scores = make_inputs(dtype=torch.float64)[0]
    pc, pr, rc, rr = scores
    out = prefopt.DPOLoss(loss_type="bco_pair", bco_running_mean=True, beta=0.5)(*scores)
    delta = torch.cat([0.5 * (pc - rc), 0.5 * (pr - rr)]).mean()
    want = -F.logsigmoid(0.5 * (pc - rc) - delta) - F.logsigmoid(-(0.5 * (pr - rr) - delta))
    torch.testing.assert_close(out.losses, want)


def test_module_without_running_mean_leaves_buffers_alone():
    module = prefopt.DPOLoss(loss_type="bco_pair")
    scores = make_inputs(dtype=torch.float64)[0]
    out = module(*scores)
    assert module.bco_running_count.item() == 1e-24
    torch.testing.assert_close(out.losses, reference(*scores, loss_type="bco_pair")[0])


def test_functional_bco_state_is_updated_in_place():
    mean, count = torch.zeros((), dtype=torch.float64), torch.full((), 1e-24, dtype=torch.float64)
    scores = make_inputs(dtype=torch.float32)[0]
    prefopt.dpo_loss(*scores, loss_type="bco_pair", bco_running_mean=mean, bco_running_count=count)
    assert count.item() == 1.0 and mean.item() != 0.0


def test_module_keeps_float64_state_under_dtype_casts():
    module = prefopt.DPOLoss(loss_type="bco_pair", bco_running_mean=True).to(torch.bfloat16)
    assert module.bco_running_mean.dtype == torch.float64 and module.bco_running_count.item() == 1e-24
    module.half()
    scores = [s.bfloat16() for s in make_inputs()[0]]
    module(*scores)
    assert module.bco_running_count.dtype == torch.float64 and module.bco_running_count.item() == 1.0


def test_module_repr_and_options():
    module = prefopt.DPOLoss(loss_type=["sigmoid", "bco_pair"], loss_weights=[0.8, 0.2], bco_running_mean=True,
                             f_divergence="alpha_divergence", alpha_divergence_coef=0.3)
    text = repr(module)
    for part in ("loss_type=sigmoid+bco_pair", "loss_weights=[0.8, 0.2]", "f_divergence=alpha_divergence",
                 "alpha_divergence_coef=0.3", "bco_running_mean=True"):
        assert part in text, text


@pytest.mark.parametrize("loss_type", ["sigmoid", "bco_pair"])
def test_module_gradients(loss_type):
    scores = [s.requires_grad_() for s in make_inputs(dtype=torch.float64)[0]]
    out = prefopt.DPOLoss(loss_type=loss_type, bco_running_mean=True)(*scores)
    out.loss.backward()
    assert all(s.grad is not None and torch.isfinite(s.grad).all() for s in scores)


# ---------------------------------------------------------------------------------------------------------
# opcheck
# ---------------------------------------------------------------------------------------------------------


def opcheck_inputs(options):
    options = dict(options)
    scores, lc, lr, nll = make_inputs(batch=4, dtype=torch.float32)
    scores[0].requires_grad_()
    scores[1].requires_grad_()
    if options.pop("bco", False):
        options.update(bco_running_mean=torch.zeros((), dtype=torch.float64),
                       bco_running_count=torch.full((), 1e-24, dtype=torch.float64))
    if options.pop("wpo", False):
        options["weights"] = torch.rand(4)
    kwargs = dict(options, chosen_lengths=lc, rejected_lengths=lr, chosen_nll=nll.requires_grad_(), check_finite=False)
    return tuple(scores), kwargs


@pytest.mark.parametrize(
    "options",
    [
        dict(loss_type="sft", rpo_alpha=0.5, wpo=True),
        dict(loss_types=["sigmoid", "hinge", "exo_pair", "discopop", "aot"], loss_weights=[1.0, 0.5, 0.25, 0.1, 0.1],
             label_smoothing=0.2, f_divergence="alpha_divergence", alpha_divergence_coef=0.3),
        dict(loss_types=["nca_pair", "apo_zero"], f_divergence="js_divergence", reference_free=True, wpo=True),
        dict(loss_type="bco_pair", bco=True),
    ],
    ids=["sft+rpo+wpo", "several", "reference_free", "bco_pair-state"],
)
def test_opcheck(options):
    opcheck(OP, *opcheck_inputs(options))


# The loss types that read lengths (ipo, sigmoid_norm) validate them on the host only with check_finite=True,
# so with check_finite=False the operator traces under AOT autograd / torch.compile like the others.
@pytest.mark.parametrize("loss_type", ["ipo", "sigmoid_norm"])
def test_opcheck_with_lengths(loss_type):
    opcheck(OP, *opcheck_inputs(dict(loss_type=loss_type)))


# ---------------------------------------------------------------------------------------------------------
# Bad input: the error names the argument
# ---------------------------------------------------------------------------------------------------------


def scores4():
    return make_inputs(batch=4)[0]


@pytest.mark.parametrize("loss_type", ["ipo", "sigmoid_norm", ["sigmoid", "ipo"]])
@pytest.mark.parametrize("missing", ["chosen_lengths", "rejected_lengths"])
def test_missing_lengths(loss_type, missing):
    lengths = dict(chosen_lengths=torch.full((4,), 5), rejected_lengths=torch.full((4,), 5))
    lengths[missing] = None
    msg = f"{missing} is required by loss_type ipo and sigmoid_norm (completion token counts, [B])"
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        prefopt.dpo_loss(*scores4(), loss_type=loss_type, **lengths)


def test_bad_lengths():
    lengths = torch.tensor([5, -1, 3, 2])
    with pytest.raises(RuntimeError, match="chosen_lengths must hold finite token counts >= 0"):
        prefopt.dpo_loss(*scores4(), loss_type="ipo", chosen_lengths=lengths, rejected_lengths=lengths.abs())
    msg = "rejected_lengths must have shape [B] matching policy_chosen_logps [4], got [3]"
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        prefopt.dpo_loss(*scores4(), loss_type="ipo", chosen_lengths=lengths.abs(), rejected_lengths=lengths[:3])


@pytest.mark.parametrize(
    "options", [dict(loss_type="sft"), dict(loss_type="sigmoid", rpo_alpha=1.0)], ids=["sft", "rpo"]
)
def test_missing_chosen_nll(options):
    with pytest.raises(RuntimeError, match=re.escape("chosen_nll is required by loss_type sft and by rpo_alpha > 0")):
        prefopt.dpo_loss(*scores4(), **options)
    with pytest.raises(RuntimeError, match=re.escape("chosen_nll must be a 0-dim floating tensor, got shape [4]")):
        prefopt.dpo_loss(*scores4(), chosen_nll=torch.ones(4), **options)


@pytest.mark.parametrize("loss_type", ["sigmoidd", ["sigmoid", "kto_pair"]])
def test_unknown_loss_type(loss_type):
    bad = loss_type if isinstance(loss_type, str) else loss_type[1]
    pattern = r"loss_type must be one of: sigmoid, hinge, ipo, exo_pair, nca_pair, robust, bco_pair, sppo_hard, " \
              r"aot, aot_unpaired, apo_zero, apo_down, discopop, sigmoid_norm, sft; got '" + bad + "'"
    with pytest.raises(RuntimeError, match=pattern):
        prefopt.dpo_loss(*scores4(), loss_type=loss_type)
    with pytest.raises(RuntimeError, match=pattern):
        prefopt.DPOLoss(loss_type=loss_type)(*scores4())


def test_unknown_f_divergence():
    msg = "f_divergence must be one of: reverse_kl, forward_kl, js_divergence, alpha_divergence; got 'kl'"
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        prefopt.dpo_loss(*scores4(), f_divergence="kl")


@pytest.mark.parametrize(
    "loss_type,eps,expected",
    [
        ("sigmoid", 0.6, "[0, 0.5]"),
        ("robust", 0.5, "[0, 0.5)"),
        ("robust", -0.1, "[0, 0.5)"),
        ("exo_pair", 0.0, "(0, 1)"),
        ("exo_pair", 1.0, "(0, 1)"),
        ("aot", 0.7, "[0, 0.5]"),
        ("aot_unpaired", float("nan"), "[0, 0.5]"),
    ],
)
def test_label_smoothing_out_of_range(loss_type, eps, expected):
    msg = f"label_smoothing (for loss_type {loss_type}) must be in {expected}, got {eps:g}"
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        prefopt.dpo_loss(*scores4(), loss_type=loss_type, label_smoothing=eps)


@pytest.mark.parametrize("loss_type", ["hinge", "ipo", "bco_pair", "apo_zero", "discopop"])
def test_label_smoothing_where_unused_is_an_error(loss_type):
    msg = (f"label_smoothing must be 0 for loss_type {loss_type} (only sigmoid, robust, exo_pair, aot and "
           "aot_unpaired use it), got 0.1")
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        prefopt.dpo_loss(*scores4(), loss_type=loss_type, label_smoothing=0.1)


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan")])
@pytest.mark.parametrize("loss_type", ["ipo", "discopop", "sppo_hard"])
def test_bad_beta(beta, loss_type):
    lengths = torch.full((4,), 5)
    with pytest.raises(RuntimeError, match=re.escape("beta must be in (0, inf), got")):
        prefopt.dpo_loss(*scores4(), loss_type=loss_type, beta=beta, chosen_lengths=lengths, rejected_lengths=lengths)
    with pytest.raises(RuntimeError, match=re.escape("beta must be in (0, inf), got")):
        prefopt.DPOLoss(loss_type=loss_type, beta=beta)(*scores4(), chosen_lengths=lengths, rejected_lengths=lengths)


def test_other_bad_options():
    s = scores4()
    with pytest.raises(RuntimeError, match=re.escape("discopop_tau must be in (0, inf), got 0")):
        prefopt.dpo_loss(*s, loss_type="discopop", discopop_tau=0.0)
    with pytest.raises(RuntimeError, match=re.escape("rpo_alpha must be finite and >= 0, got -1")):
        prefopt.dpo_loss(*s, rpo_alpha=-1.0, chosen_nll=torch.tensor(1.0))
    with pytest.raises(RuntimeError, match=re.escape("alpha_divergence_coef must be finite, got inf")):
        prefopt.dpo_loss(*s, f_divergence="alpha_divergence", alpha_divergence_coef=float("inf"))
    with pytest.raises(RuntimeError, match=re.escape("loss_weights[1] must be finite, got nan")):
        prefopt.dpo_loss(*s, loss_type=["sigmoid", "hinge"], loss_weights=[1.0, float("nan")])
    with pytest.raises(RuntimeError, match="weights \\(WPO\\) cannot be combined with loss_type aot or aot_unpaired"):
        prefopt.dpo_loss(*s, loss_type="aot_unpaired", weights=torch.ones(4))
    msg = "weights must have shape [B] matching policy_chosen_logps [4], got [2]"
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        prefopt.dpo_loss(*s, weights=torch.ones(2))


@pytest.mark.parametrize(
    "name,index,value,shown",
    [("policy_chosen_logps", 1, float("nan"), "nan"), ("ref_rejected_logps", 3, float("-inf"), "-inf")],
)
@pytest.mark.parametrize("loss_type", ["sigmoid", "bco_pair", "aot", "apo_zero"])
def test_non_finite_scores(loss_type, name, index, value, shown):
    names = ["policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps", "ref_rejected_logps"]
    scores = dict(zip(names, scores4()))
    scores[name][index] = value
    with pytest.raises(RuntimeError, match=re.escape(f"{name} must be finite, got {shown} at index {index}")):
        prefopt.dpo_loss(*scores.values(), loss_type=loss_type)


def test_non_finite_nll_and_weights():
    with pytest.raises(RuntimeError, match=re.escape("chosen_nll must be finite, got nan at index 0")):
        prefopt.dpo_loss(*scores4(), loss_type="sft", chosen_nll=torch.tensor(float("nan")))
    weights = torch.ones(4)
    weights[2] = float("inf")
    with pytest.raises(RuntimeError, match=re.escape("weights must be finite, got inf at index 2")):
        prefopt.dpo_loss(*scores4(), weights=weights)


def test_nan_propagates_to_its_pair_when_not_checked():
    pc, pr, rc, rr = scores4()
    pc[1] = float("nan")
    losses = prefopt.dpo_loss(pc, pr, rc, rr, loss_type="hinge", check_finite=False)[0]
    assert torch.isnan(losses[1]) and torch.isfinite(losses[[0, 2, 3]]).all()


def test_python_only_errors():
    s = scores4()
    with pytest.raises(ValueError, match="loss_type must name at least one loss type, got an empty list"):
        prefopt.dpo_loss(*s, loss_type=[])
    with pytest.raises(TypeError, match="loss_type must be a str or a list of str"):
        prefopt.dpo_loss(*s, loss_type=3)
    with pytest.raises(TypeError, match=re.escape("loss_type[1] must be a str, got int")):
        prefopt.dpo_loss(*s, loss_type=["sigmoid", 1])
    with pytest.raises(ValueError, match=re.escape("loss_weights must have one weight per loss type (2), got 3")):
        prefopt.dpo_loss(*s, loss_type=["sigmoid", "hinge"], loss_weights=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=re.escape("loss_weights must have one weight per loss type (1), got 2")):
        prefopt.dpo_loss(*s, loss_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="bco_running_count is None: the bco_pair running-mean state is a pair"):
        prefopt.dpo_loss(*s, loss_type="bco_pair", bco_running_mean=torch.zeros((), dtype=torch.float64))
    with pytest.raises(TypeError, match="chosen_lengths must be a torch.Tensor or None, got list"):
        prefopt.dpo_loss(*s, loss_type="ipo", chosen_lengths=[1, 2, 3, 4], rejected_lengths=torch.ones(4))
    with pytest.raises(ValueError, match="ref_rejected_logps is None"):
        prefopt.dpo_loss(*s[:3], loss_type="apo_zero")
    with pytest.raises(ValueError, match=re.escape("reduction must be one of mean, sum, none; got 'avg'")):
        prefopt.DPOLoss(reduction="avg")
    with pytest.raises(TypeError, match="bco_running_mean must be a bool"):
        prefopt.DPOLoss(loss_type="bco_pair", bco_running_mean=torch.zeros(()))


def test_bco_state_of_the_wrong_dtype():
    msg = "bco_running_mean must be a 0-dim float64 tensor, got shape [] and dtype Float"
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        prefopt.dpo_loss(*scores4(), loss_type="bco_pair", bco_running_mean=torch.zeros(()),
                         bco_running_count=torch.ones((), dtype=torch.float64))


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        prefopt.dpo_loss(*scores4(), "ipo")
    with pytest.raises(TypeError):
        prefopt.DPOLoss("sigmoid")


# ---------------------------------------------------------------------------------------------------------
# CUDA against CPU
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_cuda_matches_cpu(cuda, loss_type, dtype):
    scores, lc, lr, nll = make_inputs(dtype=dtype)
    options = options_for(loss_type, beta=0.3, f_divergence="js_divergence")
    extra = inputs_for(loss_type, lc, lr, nll)
    cpu = [s.clone().requires_grad_() for s in scores]
    gpu = [s.to(cuda).requires_grad_() for s in scores]
    out_cpu = prefopt.dpo_loss(*cpu, **options, **extra)
    out_gpu = prefopt.dpo_loss(*gpu, **options, **{k: v.to(cuda) for k, v in extra.items()})
    # Both compute in float32; one bfloat16 rounding of slightly different float32 values may differ by an ulp.
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-5, rtol=2.0**-7)
    for a, b in zip(out_gpu, out_cpu):
        assert a.device.type == "cuda"
        torch.testing.assert_close(a.cpu(), b, **tol)
    out_cpu[0].sum().backward()
    out_gpu[0].sum().backward()
    for a, b in zip(gpu, cpu):
        if b.grad is not None:
            torch.testing.assert_close(a.grad.cpu(), b.grad, **tol)


@pytest.mark.cuda
def test_cuda_module_bco_state_follows_the_device(cuda):
    module = prefopt.DPOLoss(loss_type="bco_pair", bco_running_mean=True).to(cuda)
    assert module.bco_running_mean.device.type == "cuda" and module.bco_running_mean.dtype == torch.float64
    reference_module = prefopt.DPOLoss(loss_type="bco_pair", bco_running_mean=True)
    for seed in range(2):
        scores = make_inputs(dtype=torch.float32, seed=seed)[0]
        got = module(*[s.to(cuda) for s in scores]).losses
        want = reference_module(*scores).losses
        torch.testing.assert_close(got.cpu(), want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(module.bco_running_mean.cpu(), reference_module.bco_running_mean)
