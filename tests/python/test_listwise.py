"""Tests of prefopt.listwise (Plackett-Luce, all pairs, LiPO-lambda, IRPO, PRO, TPO, RankList) and their
torch.ops.prefopt operators: values against float64 references written here from LOSSES.md section 5 (plain
loops, never prefopt), torch.autograd.gradcheck, bf16 inputs, the edge cases (K = 1, all-tied labels, padded lists
of mixed length, a fully masked list, +-1e4 scores), the properties that pin the math, the documented deviations
from the research code, opcheck on every operator, and bad input. Loads PREFOPT_LIBRARY or
<repo>/build-losses/libprefopt.so.
"""

import math
import os
import re
import sys
from pathlib import Path

import pytest
import torch
from torch.library import opcheck

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))
LIBRARY = os.environ.get("PREFOPT_LIBRARY") or str(REPO / "build-losses" / "libprefopt.so")
os.environ["PREFOPT_LIBRARY"] = LIBRARY
torch.ops.load_library(LIBRARY)

import prefopt  # noqa: E402
from prefopt import listwise  # noqa: E402


def logsig(x):
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def lse(values):
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def make_lists(B=8, K=5, levels=4, seed=0, distinct=False, min_len=1):
    g = torch.Generator().manual_seed(seed)
    q = -40 + 5 * torch.randn(B, K, generator=g, dtype=torch.float64)
    p = q + 3 * torch.randn(B, K, generator=g, dtype=torch.float64)
    if distinct:
        y = torch.stack([torch.randperm(K, generator=g) for _ in range(B)]).double()
    else:
        y = torch.randint(0, levels, (B, K), generator=g).double()
    lengths = torch.randint(min_len, K + 1, (B,), generator=g)
    m = torch.arange(K).unsqueeze(0) < lengths.unsqueeze(1)
    return p, q, y, m


def rows(p, q, y, m, beta=1.0):
    """Per list: (s, y, valid indices) as Python floats."""
    for b in range(p.shape[0]):
        s = [beta * float(p[b, k] - (0 if q is None else q[b, k])) for k in range(p.shape[1])]
        yield s, [float(v) for v in y[b]], [k for k in range(p.shape[1]) if m[b, k]]


# ---------------------------------------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------------------------------------


def pl_ref(s, y, v, top_m=0):
    # Sorted form for strict labels: -sum_k (s_tau(k) - LSE_{j >= k} s_tau(j)).
    order = sorted(v, key=lambda i: -y[i])
    total = 0.0
    for k in range(len(order) - 1):
        if top_m and k >= top_m:
            break
        total -= s[order[k]] - lse([s[j] for j in order[k:]])
    return total


def all_pairs_ref(s, y, v):
    terms = [-logsig(s[i] - s[j]) for i in v for j in v if y[i] > y[j]]
    return sum(terms) / len(terms) if terms else 0.0


def lipo_ref(s, y, v, lam=True):
    by_score = sorted(v, key=lambda i: -s[i])
    tau = {i: r + 1 for r, i in enumerate(by_score)}
    total = 0.0
    for i in v:
        for j in v:
            if y[i] > y[j]:
                w = abs((2 ** y[i] - 1) - (2 ** y[j] - 1)) * abs(1 / math.log(1 + tau[i]) - 1 / math.log(1 + tau[j])) if lam else 1.0
                total += w * math.log1p(math.exp(-(s[i] - s[j])))
    return total


def irpo_ref(s, y, v, weighting="dcg"):
    n = len(v)
    if n < 2:
        return 0.0
    pos = {i: 1 + sum(y[j] > y[i] for j in v) for i in v}  # ties share the best position
    total = 0.0
    for k in v:
        a = math.log(sum(math.exp(s[j] - s[k]) for j in v if j != k) / (n - 1))
        gain = 2 ** y[k] - 1
        w = {"dcg": gain / math.log2(1 + pos[k]), "discount": 1 / math.log2(1 + pos[k]),
             "linear_discount": gain / pos[k], "uniform": 1.0}[weighting]
        total += w * logsig(-a)
    return -total / n


def pro_ref(p, lengths, y, v, w):
    s = [p[k] / max(1.0, lengths[k]) for k in range(len(p))]
    order = sorted(v, key=lambda i: -y[i])
    total = 0.0
    for k in range(len(order) - 1):
        d = [y[order[k]] - y[order[i]] for i in range(k + 1, len(order))]
        d_star = max(d)
        terms = [s[order[k]] * d_star] + [s[order[i]] * di for i, di in zip(range(k + 1, len(order)), d)]
        total += lse(terms) - s[order[k]] * d_star
    n = len(order)
    return total + (w * (n - 1) ** 2 * -p[order[0]] if n > 1 else 0.0)


def ranklist_ref(s, y, v, form="exact", margin=0.0, window=0):
    levels = sorted({y[i] for i in v}, reverse=True)
    total = 0.0
    for i in v:
        terms = [0.0]
        for j in v:
            if y[i] > y[j] + margin and (window == 0 or levels.index(y[j]) - levels.index(y[i]) <= window):
                if form == "exact":
                    total -= logsig(s[i] - s[j])
                else:
                    terms.append(s[j] - s[i])
        if form == "logsumexp":
            total += lse(terms)
    return total


def close(got, want, tol=1e-10):
    want = torch.tensor(want, dtype=torch.float64)
    torch.testing.assert_close(got.double(), want, atol=tol, rtol=tol)


# ---------------------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("top_m", [0, 1, 3])
def test_plackett_luce(top_m):
    p, q, y, m = make_lists(distinct=True)
    out = listwise.plackett_luce_loss(p, q, y, m, beta=0.5, top_m=top_m)
    losses, rewards = out.losses, out.rewards
    close(losses, [pl_ref(s, yy, v, top_m) for s, yy, v in rows(p, q, y, m, 0.5)])
    torch.testing.assert_close(rewards, torch.where(m, 0.5 * (p - q), torch.zeros(())))


def test_all_pairs_and_lipo():
    p, q, y, m = make_lists(seed=1)
    close(listwise.all_pairs_loss(p, q, y, m, beta=0.3).losses, [all_pairs_ref(*r) for r in rows(p, q, y, m, 0.3)])
    for lam in (True, False):
        got = listwise.lipo_lambda_loss(p, q, y, m, beta=0.5, lambda_weighting=lam).losses
        close(got, [lipo_ref(s, yy, v, lam) for s, yy, v in rows(p, q, y, m, 0.5)])


@pytest.mark.parametrize("weighting", ["dcg", "discount", "linear_discount", "uniform"])
def test_irpo(weighting):
    p, q, y, m = make_lists(seed=2)
    got = listwise.irpo_loss(p, q, y, m, beta=0.2, weighting=weighting).losses
    close(got, [irpo_ref(s, yy, v, weighting) for s, yy, v in rows(p, q, y, m, 0.2)])


def test_pro():
    p, q, y, m = make_lists(seed=3, distinct=True)
    lengths = torch.randint(1, 30, p.shape).double()
    got = listwise.pro_loss(p, lengths, y, m, sft_weight=0.05).losses
    want = [pro_ref(p[b].tolist(), lengths[b].tolist(), y[b].tolist(), [k for k in range(5) if m[b, k]], 0.05) for b in range(8)]
    close(got, want)


@pytest.mark.parametrize("form", ["exact", "logsumexp"])
@pytest.mark.parametrize("margin,window", [(0.0, 0), (1.0, 0), (0.0, 1), (0.5, 2)])
def test_ranklist(form, margin, window):
    p, q, y, m = make_lists(seed=4, levels=5, K=6)
    got = listwise.ranklist_loss(p, q, y, m, beta=0.4, form=form, min_margin=margin, window=window).losses
    close(got, [ranklist_ref(s, yy, v, form, margin, window) for s, yy, v in rows(p, q, y, m, 0.4)])


def test_tpo_with_embeddings_and_weights():
    g = torch.Generator().manual_seed(5)
    B, K, S, E = 3, 4, 3, 6
    pol = torch.randn(B, K, S, generator=g, dtype=torch.float64) - 2
    ref = torch.randn(B, K, S, generator=g, dtype=torch.float64) - 2
    emb = torch.randn(B, K, S, E, generator=g, dtype=torch.float64)
    y = torch.tensor([[0.0, 3.0, 1.0, 2.0], [2.0, 2.0, 1.0, 0.0], [1.0, 0.0, 2.0, 3.0]], dtype=torch.float64)
    smask = torch.rand(B, K, S, generator=g) > 0.2
    weights = listwise.tpo_step_weights(emb, y, smask)
    out = listwise.tpo_loss(pol, ref, y, smask, step_embeddings=emb, beta=0.7)
    losses, rewards = out.losses, out.rewards
    for b in range(B):
        best = max(range(K), key=lambda k: (y[b, k].item(), -k))
        s = []
        for k in range(K):
            num = den = 0.0
            for st in range(S):
                if not smask[b, k, st]:
                    continue
                if smask[b, best, st]:
                    e1, e0 = emb[b, k, st], emb[b, best, st]
                    w = 1 + float(e1 @ e0) / math.sqrt(float(e1 @ e1) * float(e0 @ e0))
                else:
                    w = 1.0
                assert weights[b, k, st].item() == pytest.approx(w, abs=1e-12)
                num += w * float(pol[b, k, st] - ref[b, k, st])
                den += w
            s.append(0.7 * num / den if den > 0 else 0.0)
        assert losses[b].item() == pytest.approx(lipo_ref(s, y[b].tolist(), list(range(K))), abs=1e-10)
        assert rewards[b].tolist() == pytest.approx(s, abs=1e-12)
    same = listwise.tpo_loss(pol, ref, y, smask, step_weights=weights, beta=0.7).losses
    torch.testing.assert_close(same, losses)


# ---------------------------------------------------------------------------------------------------------
# Properties and deviations
# ---------------------------------------------------------------------------------------------------------


def test_plackett_luce_with_two_responses_is_dpo():
    pc, pr, rc, rr = (torch.randn(6, dtype=torch.float64) * 4 - 30 for _ in range(4))
    dpo = prefopt.dpo_loss(pc, pr, rc, rr, beta=0.3)[0]
    pl = listwise.plackett_luce_loss(torch.stack([pr, pc], 1), torch.stack([rr, rc], 1), torch.tensor([[0, 1]] * 6), beta=0.3).losses
    torch.testing.assert_close(pl, dpo)


def test_lipo_with_constant_weights_is_the_all_pairs_sum():
    p, q, y, m = make_lists(seed=6)
    lipo = listwise.lipo_lambda_loss(p, q, y, m, beta=0.2, lambda_weighting=False).losses
    mean = listwise.all_pairs_loss(p, q, y, m, beta=0.2).losses
    counts = torch.tensor([sum(yy[i] > yy[j] for i in v for j in v) for _, yy, v in rows(p, q, y, m)], dtype=torch.float64)
    torch.testing.assert_close(lipo, mean * counts)


def test_irpo_two_responses_equal_weights_closed_form():
    p, q = torch.randn(7, 2, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64)
    d = 0.8 * ((p[:, 0] - q[:, 0]) - (p[:, 1] - q[:, 1]))
    got = listwise.irpo_loss(p, q, torch.tensor([[1.0, 0.0]] * 7), beta=0.8, weighting="uniform").losses
    torch.testing.assert_close(got, -(torch.nn.functional.logsigmoid(d) + torch.nn.functional.logsigmoid(-d)) / 2)


def test_ranklist_logsumexp_never_exceeds_exact():
    for seed in range(5):
        p, q, y, m = make_lists(B=32, K=7, seed=10 + seed)
        for window in (0, 1, 2):
            exact = listwise.ranklist_loss(p, q, y, m, beta=1.0, window=window).losses
            lse_form = listwise.ranklist_loss(p, q, y, m, beta=1.0, window=window, form="logsumexp").losses
            assert (lse_form <= exact + 1e-12).all()
    p, q, y, m = make_lists(seed=20, distinct=True, min_len=5)
    a = listwise.ranklist_loss(p, q, y, m, window=1).losses
    b = listwise.ranklist_loss(p, q, y, m, window=1, form="logsumexp").losses
    torch.testing.assert_close(a, b)  # one valid pair per anchor


def test_tpo_minimises_the_ranking_loss():
    # The released code returns -logsigmoid(beta * L_rank) and so pushes L_rank up; prefopt descends L_rank.
    pol = torch.full((1, 3, 2), -1.0, dtype=torch.float64, requires_grad=True)
    ref = torch.full((1, 3, 2), -1.2, dtype=torch.float64)
    y = torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64)
    losses = listwise.tpo_loss(pol, ref, y, beta=1.0).losses
    assert losses.item() == pytest.approx(lipo_ref([0.2] * 3, [2.0, 1.0, 0.0], [0, 1, 2]), abs=1e-12)
    losses.sum().backward()
    g = pol.grad.sum(-1)[0]
    assert g[0] < 0 < g[2]


def test_pro_uses_logsumexp_not_raw_exponentials():
    p = torch.tensor([[-400.0, -401.0]], dtype=torch.float64)
    raw = math.exp(-800.0) / (math.exp(-800.0) + math.exp(-802.0)) if math.exp(-800.0) else float("nan")
    assert math.isnan(raw)
    got = listwise.pro_loss(p, None, torch.tensor([[3.0, 1.0]]), length_normalize=False, sft_weight=0.0).losses
    assert got.item() == pytest.approx(math.log1p(math.exp(-2.0)), abs=1e-12)


def test_irpo_reduction_mean_versus_the_codes_sum():
    p, q, y, m = make_lists(seed=7)
    losses = listwise.irpo_loss(p, q, y, m).losses
    official = sum(irpo_ref(*r) for r in rows(p, q, y, m, 1.0))  # the code adds the lists' losses
    assert losses.sum().item() == pytest.approx(official, abs=1e-10)
    assert losses.mean().item() == pytest.approx(official / 8, abs=1e-10)


# ---------------------------------------------------------------------------------------------------------
# Gradients, low precision, edge cases
# ---------------------------------------------------------------------------------------------------------


def all_losses(p, q, y, m=None):
    lengths = torch.full(p.shape, 4.0, dtype=p.dtype)
    steps = lambda t: t.unsqueeze(-1).expand(*t.shape, 2).contiguous()  # noqa: E731
    return {
        "plackett_luce": listwise.plackett_luce_loss(p, q, y, m).losses,
        "all_pairs": listwise.all_pairs_loss(p, q, y, m).losses,
        "lipo": listwise.lipo_lambda_loss(p, q, y, m).losses,
        "irpo": listwise.irpo_loss(p, q, y, m).losses,
        "pro": listwise.pro_loss(p, lengths, y, m).losses,
        "tpo": listwise.tpo_loss(steps(p), steps(q), y, mask=m).losses,
        "ranklist": listwise.ranklist_loss(p, q, y, m).losses,
        "ranklist_lse": listwise.ranklist_loss(p, q, y, m, form="logsumexp", window=1).losses,
    }


def test_gradcheck_every_loss():
    p, q, y, m = make_lists(B=3, K=4, levels=3, seed=8, min_len=2)
    p = (p / 10).requires_grad_()
    q = (q / 10).requires_grad_()
    for name in all_losses(p.detach(), q.detach(), y, m):
        def fn(p, q, name=name):
            return all_losses(p, q, y, m)[name]

        assert torch.autograd.gradcheck(fn, (p, q)), name


def test_bfloat16_inputs():
    p, q, y, m = make_lists(seed=9)
    low = all_losses(p.bfloat16(), q.bfloat16(), y, m)
    high = all_losses(p.bfloat16().double(), q.bfloat16().double(), y, m)
    for name in low:
        assert low[name].dtype == torch.bfloat16, name
        torch.testing.assert_close(low[name].double(), high[name], atol=1e-2, rtol=1e-2, msg=name)


def test_k1_tied_and_fully_masked_lists_give_zero():
    one = all_losses(torch.randn(3, 1), torch.randn(3, 1), torch.zeros(3, 1))
    tied_p = torch.randn(3, 4)
    tied = all_losses(tied_p, torch.randn(3, 4), torch.full((3, 4), 2.0))
    for name in one:
        assert (one[name] == 0).all(), name
        # IRPO compares each response with the mean of all others (no label pairs): all-tied lists keep their
        # formula value, with every response at ideal position 1 (checked below). PRO has no ranking term but
        # keeps its SFT term on the first tied response. All other losses have no pair and give 0.
        if name == "pro":
            torch.testing.assert_close(tied[name], 0.05 * 9 * -tied_p[:, 0])
        elif name != "irpo":
            assert (tied[name] == 0).all(), name
    p, q = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    y = torch.full((3, 4), 2.0, dtype=torch.float64)
    close(listwise.irpo_loss(p, q, y).losses, [irpo_ref(*r) for r in rows(p, q, y, torch.ones(3, 4, dtype=torch.bool))])
    assert (listwise.irpo_loss(p, q, torch.zeros(3, 4)).losses == 0).all()  # zero gains
    m = torch.ones(3, 4, dtype=torch.bool)
    m[1] = False
    masked = all_losses(torch.randn(3, 4), torch.randn(3, 4), torch.tensor([[3, 2, 1, 0]] * 3), m)
    for name, losses in masked.items():
        assert losses[1] == 0 and losses[0] > 0, name


def test_padded_lists_equal_unpadded_ones_whatever_the_padding_holds():
    p, q, y, m = make_lists(B=5, seed=10, distinct=True)
    p_bad, q_bad, y_bad = p.clone(), q.clone(), y.clone()
    p_bad[~m], q_bad[~m], y_bad[~m] = float("nan"), float("-inf"), 99.0
    padded = all_losses(p_bad, q_bad, y_bad, m)
    for b in range(5):
        n = int(m[b].sum())
        alone = all_losses(p[b : b + 1, :n], q[b : b + 1, :n], y[b : b + 1, :n])
        for name in padded:
            assert padded[name][b].item() == pytest.approx(alone[name][0].item(), abs=1e-12), (name, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_extreme_scores_stay_finite(dtype):
    p = torch.tensor([[1e4, -1e4, 0.0, 5e3], [-1e4, 1e4, -5e3, 0.0]], dtype=dtype, requires_grad=True)
    q = torch.zeros(2, 4, dtype=dtype)
    for name, losses in all_losses(p, q, torch.tensor([[3, 2, 1, 0]] * 2)).items():
        assert torch.isfinite(losses).all(), name
        (grad,) = torch.autograd.grad(losses.sum(), p)
        assert torch.isfinite(grad).all(), name


# ---------------------------------------------------------------------------------------------------------
# opcheck and bad input
# ---------------------------------------------------------------------------------------------------------


def test_opcheck_every_operator():
    p, q, y, m = make_lists(B=3, K=4, seed=11)
    p = p.float().requires_grad_()
    q = q.float()
    ops = torch.ops.prefopt
    no_check = {"check_finite": False}
    opcheck(ops.plackett_luce_loss.default, (p, q, y, m), {"top_m": 2, **no_check})
    opcheck(ops.all_pairs_loss.default, (p, q, y, m), no_check)
    opcheck(ops.lipo_lambda_loss.default, (p, q, y, m), no_check)
    opcheck(ops.irpo_loss.default, (p, q, y, m, torch.full((3, 4), 3.0)), {"length_normalize": True, **no_check})
    opcheck(ops.pro_loss.default, (p, torch.full((3, 4), 3.0), y, m), no_check)
    opcheck(ops.ranklist_loss.default, (p, q, y, m), {"form": "logsumexp", "window": 1, **no_check})
    steps = torch.randn(3, 4, 2, requires_grad=True)
    emb = torch.randn(3, 4, 2, 5)
    opcheck(ops.tpo_step_weights.default, (emb, y, None, m))
    opcheck(ops.tpo_loss.default, (steps, torch.randn(3, 4, 2), y, None, None, emb, m), no_check)


def test_bad_input_messages():
    x, y = torch.randn(2, 3), torch.tensor([[2, 1, 0], [0, 1, 2]])
    with pytest.raises(RuntimeError, match=re.escape("ref_logps must have shape [2, 3] matching policy_logps, got [2, 4]")):
        listwise.plackett_luce_loss(x, torch.randn(2, 4), y)
    with pytest.raises(RuntimeError, match=re.escape("labels must have shape [2, 3] matching policy_logps, got [2, 2]")):
        listwise.lipo_lambda_loss(x, x, torch.ones(2, 2))
    with pytest.raises(RuntimeError, match=re.escape("policy_logps must be finite where the mask is set, got nan at [1, 2]")):
        bad = x.clone()
        bad[1, 2] = float("nan")
        listwise.all_pairs_loss(bad, x, y)
    with pytest.raises(RuntimeError, match="labels must be one of: grades, ranks; got 'rank'"):
        listwise.all_pairs_loss(x, x, y, label_type="rank")
    with pytest.raises(RuntimeError, match="weighting must be one of: dcg, discount, linear_discount, uniform; got 'ndcg'"):
        listwise.irpo_loss(x, x, y, weighting="ndcg")
    with pytest.raises(RuntimeError, match=re.escape("window must be >= 0 (0 = every pair), got -1")):
        listwise.ranklist_loss(x, x, y, window=-1)
    with pytest.raises(RuntimeError, match="pass step_weights or step_embeddings, not both"):
        listwise.tpo_loss(torch.randn(2, 3, 2), torch.randn(2, 3, 2), y, step_weights=torch.ones(2, 3, 2),
                          step_embeddings=torch.randn(2, 3, 2, 4))
    with pytest.raises(ValueError, match="ref_logps is None"):
        listwise.ranklist_loss(x, None, y)
    with pytest.raises(ValueError, match="lengths is None"):
        listwise.pro_loss(x, None, y)
    with pytest.raises(TypeError):
        listwise.plackett_luce_loss(x, x, y, None, 0.1)  # options are keyword-only
    losses = listwise.ranklist_loss(x, None, y, reference_free=True).losses
    assert losses.shape == (2,)
