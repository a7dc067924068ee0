"""Every prefopt loss compiles whole under ``torch.compile(fullgraph=True)`` with its default options, the
finiteness and range checks included, gives the eager result, and still rejects bad values when compiled.

In eager mode the checks read values on the host to name the first bad index; while traced they become in-graph
asserts (src/common/score_checks.h, ``any_set``), so a compiled call raises with the argument's name but without
the index. Most cases use the ``aot_eager`` backend (tracing and functionalization, what fullgraph needs, without
the C++ compile of inductor); a few run under inductor too.
"""

from __future__ import annotations

import pytest
import torch

import prefopt

torch.manual_seed(0)
B, K, S = 4, 3, 2


def _pairs():
    pc, pr, rc, rr = (torch.randn(B, dtype=torch.float64) - 5 for _ in range(4))
    return pc, pr, rc, rr


def _lengths():
    return torch.tensor([3.0, 5.0, 2.0, 4.0], dtype=torch.float64)


def _list():
    policy, ref = torch.randn(B, K, dtype=torch.float64) - 5, torch.randn(B, K, dtype=torch.float64) - 5
    labels = torch.tensor([[0, 2, 1], [1, 0, 2], [2, 1, 0], [0, 1, 2]])
    mask = torch.tensor([[True, True, True], [True, True, False], [True, True, True], [True, True, True]])
    return policy, ref, labels, mask


def _first(out):
    """The first tensor of a loss's result (a tuple or a LossResult)."""
    if isinstance(out, torch.Tensor):
        return out
    return out[0] if isinstance(out, tuple) else out.losses


def case_dpo_sigmoid():
    pc, pr, rc, rr = _pairs()
    return (lambda *a: prefopt.dpo_loss(*a)), (pc, pr, rc, rr), 0


def case_dpo_ipo_lengths():
    pc, pr, rc, rr = _pairs()
    lc, lr = _lengths(), _lengths().flip(0)
    f = lambda a, b, c, d, e, g: prefopt.dpo_loss(a, b, c, d, loss_type="ipo", chosen_lengths=e, rejected_lengths=g)
    return f, (pc, pr, rc, rr, lc, lr), 0


def case_dpo_module_bco():
    pc, pr, rc, rr = _pairs()
    module = prefopt.DPOLoss(loss_type=["sigmoid", "bco_pair"])
    return (lambda *a: module(*a).loss.reshape(1)), (pc, pr, rc, rr), 0


def case_simpo():
    pc, pr, _, _ = _pairs()
    return (lambda a, b, c, d: prefopt.simpo_loss(a, b, c, d)), (pc, pr, _lengths(), _lengths()), 0


def case_cpo():
    pc, pr, _, _ = _pairs()
    nll = torch.tensor(1.5, dtype=torch.float64)
    return (lambda a, b, c: prefopt.cpo_loss(a, b, chosen_nll=c)), (pc, pr, nll), 0


def case_orpo():
    pc, pr, _, _ = _pairs()
    nll = torch.tensor(1.5, dtype=torch.float64)
    return (lambda a, b, c, d, e: prefopt.orpo_loss(a, b, c, d, e)), (pc, pr, _lengths(), _lengths(), nll), 0


def case_reward():
    pc, pr, _, _ = _pairs()
    return (lambda a, b: prefopt.reward_loss(a, b)), (pc, pr), 0


def case_kto():
    pc, _, rc, _ = _pairs()
    labels = torch.tensor([True, False, True, False])
    kl_p, kl_r = torch.randn(B, dtype=torch.float64) - 5, torch.randn(B, dtype=torch.float64) - 5
    return (lambda a, b, c, d, e: prefopt.kto_loss(a, b, c, d, e)), (pc, rc, labels, kl_p, kl_r), 0


def _listwise(name):
    def case():
        policy, ref, labels, mask = _list()
        fn = getattr(prefopt, name)
        return (lambda a, b, c, d: fn(a, b, c, d)), (policy, ref, labels, mask), 0
    return case


def case_irpo():
    policy, ref, labels, mask = _list()
    lengths = torch.full((B, K), 4.0, dtype=torch.float64)
    return (lambda a, b, c, d, e: prefopt.irpo_loss(a, b, c, d, e)), (policy, ref, labels, mask, lengths), 0


def case_pro():
    policy, _, labels, mask = _list()
    lengths = torch.full((B, K), 4.0, dtype=torch.float64)
    return (lambda a, b, c, d: prefopt.pro_loss(a, b, c, d)), (policy, lengths, labels, mask), 0


def case_tpo():
    steps, ref = torch.randn(B, K, S, dtype=torch.float64) - 1, torch.randn(B, K, S, dtype=torch.float64) - 1
    labels = _list()[2]
    emb = torch.randn(B, K, S, 8, dtype=torch.float64)
    return (lambda a, b, c, e: prefopt.tpo_loss(a, b, c, step_embeddings=e)), (steps, ref, labels, emb), 0


def case_tdpo():
    pc, pr, rc, rr = _pairs()
    kc, kr = torch.rand(B, dtype=torch.float64), torch.rand(B, dtype=torch.float64)
    return (lambda *a: prefopt.tdpo_loss(*a)), (pc, pr, rc, rr, kc, kr), 0


def case_joint_dpo():
    pc, pr, rc, rr = _pairs()
    return (lambda *a: prefopt.joint_dpo_loss(*a)), (pc, pr, rc, rr), 0


def case_degree():
    logits = torch.randn(B, 3, dtype=torch.float64)
    degrees = torch.tensor([0, 2, 1, 1])
    return (lambda a, b: prefopt.degree_loss(a, b)), (logits, degrees), None  # checks degrees only (below)


def case_spo():
    align = torch.rand((), dtype=torch.float64)
    logits = torch.randn(B, 3, dtype=torch.float64)
    degrees = torch.tensor([0, 2, 1, 1])
    return (lambda a, b, c: prefopt.spo_loss(a, b, c)), (align, logits, degrees), None  # checks degrees only


CASES = {
    "dpo_sigmoid": case_dpo_sigmoid,
    "dpo_ipo_lengths": case_dpo_ipo_lengths,
    "DPOLoss_bco_pair": case_dpo_module_bco,
    "simpo": case_simpo,
    "cpo": case_cpo,
    "orpo": case_orpo,
    "reward": case_reward,
    "kto": case_kto,
    "plackett_luce": _listwise("plackett_luce_loss"),
    "all_pairs": _listwise("all_pairs_loss"),
    "lipo_lambda": _listwise("lipo_lambda_loss"),
    "ranklist": _listwise("ranklist_loss"),
    "irpo": case_irpo,
    "pro": case_pro,
    "tpo": case_tpo,
    "tdpo": case_tdpo,
    "joint_dpo": case_joint_dpo,
    "degree": case_degree,
    "spo": case_spo,
}


def _poison(args, index):
    """The arguments with a NaN in the first element of argument `index`."""
    out = list(args)
    bad = out[index].clone()
    bad.view(-1)[0] = float("nan")
    out[index] = bad
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_fullgraph_compiles_and_matches_eager(name):
    fn, args, _ = CASES[name]()
    fresh, _, _ = CASES[name]()  # the same function with its own state (DPOLoss's bco_pair running mean)
    torch._dynamo.reset()
    compiled_fn = torch.compile(fresh, fullgraph=True, backend="aot_eager")
    for _ in range(2):  # twice: stateful losses must carry their state through the compiled graph
        eager = _first(fn(*args))
        compiled = _first(compiled_fn(*args))
        torch.testing.assert_close(compiled, eager, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c()[2] is not None))
def test_compiled_check_still_raises_on_nan(name):
    fn, args, index = CASES[name]()
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    compiled(*args)
    with pytest.raises(RuntimeError, match="must be finite"):
        compiled(*_poison(args, index))


def test_compiled_range_check_names_the_argument():
    fn, args, _ = CASES["degree"]()
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    compiled(*args)
    with pytest.raises(RuntimeError, match=r"degrees must be in \[0, 3\)"):
        compiled(args[0], torch.tensor([0, 3, 1, 1]))


@pytest.mark.parametrize("name", ["dpo_sigmoid", "plackett_luce"])
def test_inductor_compiles_gradients_and_checks(name):
    fn, args, index = CASES[name]()
    args = [a.detach().requires_grad_(True) if a.is_floating_point() and i == 0 else a for i, a in enumerate(args)]
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, backend="inductor")
    eager_loss = _first(fn(*args)).sum()
    (eager_grad,) = torch.autograd.grad(eager_loss, args[0])
    compiled_loss = _first(compiled(*args)).sum()
    (compiled_grad,) = torch.autograd.grad(compiled_loss, args[0])
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError, match="must be finite"):
        compiled(*_poison([a.detach() for a in args], index))


def test_eager_error_keeps_the_index():
    pc, pr, rc, rr = _pairs()
    pc[2] = float("inf")
    with pytest.raises(RuntimeError, match="policy_chosen_logps must be finite, got inf at index 2"):
        prefopt.dpo_loss(pc, pr, rc, rr)
