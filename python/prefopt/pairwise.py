"""Keyword-argument wrappers of the DPO-family loss operator (torch.ops.prefopt.dpo_loss) and its module form.

:func:`dpo_loss` checks what only Python can name clearly (a reference tensor given as None, a loss type that is
neither a string nor a list of strings, half of the bco_pair state), then forwards to one operator implemented in
C++. :class:`DPOLoss` holds the options and the bco_pair running-mean state as buffers and adds the batch reduction
and TRL's metrics, computed from the operator's outputs. Neither re-implements a loss formula in Python: every
per-pair number comes from the C++ code that the C++ API runs. docs/losses.md gives each formula and its source.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch

from ._library import load_library
from .results import LossResult

load_library()

__all__ = ["dpo_loss", "DPOLoss", "DPOLossResult"]

LossType = Union[str, Sequence[str]]

_REDUCTIONS = ("mean", "sum", "none")


def _loss_types(loss_type: LossType, loss_weights: Optional[Sequence[float]]) -> Tuple[str, Optional[List[str]]]:
    """Maps ``loss_type`` (a name or a list of names) to the operator's ``loss_type`` and ``loss_types``."""
    if isinstance(loss_type, str):
        # A single name with weights goes through the list form, so that the weight applies.
        return loss_type, ([loss_type] if loss_weights is not None else None)
    if isinstance(loss_type, (bytes, bytearray)) or not isinstance(loss_type, Sequence):
        raise TypeError(
            "loss_type must be a str or a list of str (TRL's names, e.g. 'sigmoid' or "
            "['sigmoid', 'bco_pair', 'sft']), "
            f"got {type(loss_type).__name__}"
        )
    names = list(loss_type)
    if not names:
        raise ValueError("loss_type must name at least one loss type, got an empty list")
    for k, name in enumerate(names):
        if not isinstance(name, str):
            raise TypeError(f"loss_type[{k}] must be a str, got {type(name).__name__}")
    return names[0], names


def _weights_list(loss_weights: Optional[Sequence[float]], n_types: int) -> Optional[List[float]]:
    if loss_weights is None:
        return None
    if isinstance(loss_weights, torch.Tensor):
        loss_weights = loss_weights.tolist()
    if isinstance(loss_weights, (str, bytes)) or not isinstance(loss_weights, Sequence):
        raise TypeError(f"loss_weights must be a list of floats, one per loss type, got {type(loss_weights).__name__}")
    weights = [float(w) for w in loss_weights]
    if len(weights) != n_types:
        raise ValueError(f"loss_weights must have one weight per loss type ({n_types}), got {len(weights)}")
    return weights


def _optional_tensor(name: str, value) -> Optional[torch.Tensor]:
    if value is not None and not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None, got {type(value).__name__}")
    return value


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: Optional[torch.Tensor] = None,
    ref_rejected_logps: Optional[torch.Tensor] = None,
    *,
    loss_type: LossType = "sigmoid",
    loss_weights: Optional[Sequence[float]] = None,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    f_divergence: str = "reverse_kl",
    alpha_divergence_coef: float = 0.5,
    discopop_tau: float = 0.05,
    rpo_alpha: float = 0.0,
    reference_free: bool = False,
    chosen_lengths: Optional[torch.Tensor] = None,
    rejected_lengths: Optional[torch.Tensor] = None,
    chosen_nll: Optional[torch.Tensor] = None,
    weights: Optional[torch.Tensor] = None,
    bco_running_mean: Optional[torch.Tensor] = None,
    bco_running_count: Optional[torch.Tensor] = None,
    check_finite: bool = True,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO-family per-pair losses and implicit rewards, unreduced, as TRL's ``DPOTrainer.dpo_loss`` returns them.

    With ``h_c = policy_chosen_logps - ref_chosen_logps`` and ``h_r = policy_rejected_logps - ref_rejected_logps``
    (reference terms taken as 0 when ``reference_free``), the f-divergence transform ``s = phi(h)`` and
    ``D = s_c - s_r``, the per-pair loss of each ``loss_type`` is (``eps = label_smoothing``):

    ================  ==================================================================================
    ``sigmoid``       ``-(1-eps) logsig(beta D) - eps logsig(-beta D)`` (DPO; eps > 0: conservative DPO)
    ``hinge``         ``relu(1 - beta D)`` (SLiC)
    ``ipo``           ``(s_c/L_c - s_r/L_r - 1/(2 beta))^2`` (needs ``chosen_lengths``, ``rejected_lengths``)
    ``exo_pair``      ``q (logsig(beta D) - log(1-eps)) + (1-q)(logsig(-beta D) - log eps)``, ``q = sigmoid(beta D)``
    ``nca_pair``      ``-logsig(beta s_c) - 0.5 logsig(-beta s_c) - 0.5 logsig(-beta s_r)``
    ``robust``        ``(-(1-eps) logsig(beta D) + eps logsig(-beta D)) / (1 - 2 eps)``
    ``bco_pair``      ``-logsig(beta s_c) - logsig(-beta s_r)``; with the running-mean state:
                      ``-logsig(beta h_c - delta) - logsig(-(beta h_r - delta))``
    ``sppo_hard``     ``(s_c - 1/(2 beta))^2 + (s_r + 1/(2 beta))^2``
    ``aot``           ``-(1-eps) logsig(beta d) - eps logsig(-beta d)``, ``d = sort(p_c - p_r) - sort(q_c - q_r)``
    ``aot_unpaired``  as ``aot`` with ``d = sort(h_c) - sort(h_r)``
    ``apo_zero``      ``1 - sigmoid(beta h_c) + sigmoid(beta h_r)``
    ``apo_down``      ``sigmoid(beta h_c) + 1 - sigmoid(beta (h_c - h_r))``
    ``discopop``      ``z = beta D``, ``m = sigmoid(z / discopop_tau)``: ``(1-m)(-logsig z) + m exp(-z)``
    ``sigmoid_norm``  ``-logsig(beta (s_c/L_c - s_r/L_r))`` (needs the lengths)
    ``sft``           ``chosen_nll`` broadcast to every pair
    ================  ==================================================================================

    ``aot``, ``aot_unpaired``, ``apo_zero`` and ``apo_down`` ignore ``f_divergence``; so does ``bco_pair`` with
    the running mean. Then, in this order: ``losses = sum_k loss_weights[k] * loss_k``, plus ``rpo_alpha *
    chosen_nll`` when ``rpo_alpha > 0`` (RPO), times ``weights`` when given (WPO). Rewards do not depend on the loss
    type, the weights or ``f_divergence``: ``chosen_rewards = beta * h_c``, ``rejected_rewards = beta * h_r``.

    Args:
        policy_chosen_logps, policy_rejected_logps: ``[B]`` summed completion log-probs of the policy, e.g. from
            :func:`prefopt.sequence_logps` (for LD-DPO, from :func:`prefopt.ld_dpo_logps`); B >= 1. One floating
            dtype (float32, bfloat16, float16 or float64) and one device for every score.
        ref_chosen_logps, ref_rejected_logps: ``[B]`` the same under the reference model. Required unless
            ``reference_free``; ignored (and may be None) when it is set.
        loss_type: one of TRL's names above, or a list of them (several losses at once, as TRL's list-valued
            ``loss_type``, e.g. MPO's ``["sigmoid", "bco_pair", "sft"]``).
        loss_weights: one finite weight per entry of ``loss_type`` (all 1 when None).
        beta: temperature of the implicit reward, finite and > 0.
        label_smoothing: ``eps`` of sigmoid (in ``[0, 0.5]``), robust (``[0, 0.5)``), exo_pair (``(0, 1)``:
            required, TRL's silent ``1e-3`` for 0 is an error here), aot and aot_unpaired (``[0, 0.5]``); must be
            0 when no selected loss type uses it.
        f_divergence: ``"reverse_kl"`` (``phi(h) = h``, default), ``"forward_kl"`` (``-exp(-h)``),
            ``"js_divergence"`` (``logsig(h)``) or ``"alpha_divergence"`` (``exp((a-1) h) / (a-1)``, exponent
            clamped to 80, or 11 for float16; ``|a - 1| < 1e-6`` is reverse_kl).
        alpha_divergence_coef: ``a`` of the alpha divergence, finite. TRL's ``f_alpha_divergence_coef`` ``c`` is
            ``a = 1 - c`` (TRL's default ``c = 1`` is ``a = 0``).
        discopop_tau: temperature of discopop's modulation, > 0.
        rpo_alpha: RPO's weight of ``chosen_nll`` added to every pair's loss, finite and >= 0 (0: off).
        reference_free: take the reference log-probs as 0, in the losses and in the rewards.
        chosen_lengths, rejected_lengths: ``[B]`` completion token counts (clamped to >= 1), any real or integer
            dtype, on the scores' device; required by ``ipo`` and ``sigmoid_norm``.
        chosen_nll: 0-dim mean token NLL of the chosen completions over the batch (see
            :func:`prefopt.mean_token_nll`); required by ``sft`` and by ``rpo_alpha > 0``. Differentiable.
        weights: ``[B]`` per-pair weights multiplying the losses (WPO's ``W``, see :func:`prefopt.wpo_pair_weights`);
            detached. Not allowed with aot and aot_unpaired.
        bco_running_mean, bco_running_count: for ``bco_pair``, the running-mean state (0-dim float64 tensors,
            start them at 0 and 1e-24): passing them turns the running mean on (TRL <= 0.28's ``bco_pair``). They
            are updated in place, with this batch's mean of ``[beta h_c; beta h_r]`` folded in before use.
            :class:`DPOLoss` keeps them as buffers.
        check_finite: raise when a score, ``chosen_nll`` or ``weights`` holds NaN or Inf (one host sync per
            tensor). With False, NaN/Inf propagate into the affected pairs' losses.

    Returns:
        ``(losses, chosen_rewards, rejected_rewards)``, each ``[B]`` in the input dtype (computed in float32, or
        float64 for float64 input). ``losses`` is differentiable with respect to the four scores and
        ``chosen_nll``; both rewards are detached.

    Raises:
        ValueError: a reference tensor is None while ``reference_free`` is False; an empty ``loss_type`` list;
            ``loss_weights`` of the wrong length; only one of ``bco_running_mean`` / ``bco_running_count``.
        TypeError: ``loss_type`` is neither a str nor a list of str; an optional tensor argument is not a tensor.
        RuntimeError (from the operator): an unknown ``loss_type`` or ``f_divergence`` name (the message lists the
            known ones); shape, dtype or device mismatch; an empty batch; ``beta <= 0``; ``label_smoothing``
            outside the range of a selected loss type; a missing input a loss type needs (lengths for ipo and
            sigmoid_norm, ``chosen_nll`` for sft and rpo); a NaN/Inf input when ``check_finite``.

    Example::

        >>> import torch, prefopt
        >>> pc = torch.tensor([-10.0, -12.0], requires_grad=True)
        >>> pr = torch.tensor([-11.0, -11.5], requires_grad=True)
        >>> rc, rr = torch.tensor([-10.5, -12.0]), torch.tensor([-10.5, -12.0])
        >>> losses, chosen_rewards, rejected_rewards = prefopt.dpo_loss(pc, pr, rc, rr, beta=0.1)
        >>> losses.mean().backward()                    # gradients reach pc and pr
        >>> lengths = torch.tensor([7, 9])
        >>> ipo, _, _ = prefopt.dpo_loss(pc, pr, rc, rr, loss_type="ipo", chosen_lengths=lengths,
        ...                              rejected_lengths=lengths)
        >>> mixed, _, _ = prefopt.dpo_loss(pc, pr, rc, rr, loss_type=["sigmoid", "hinge"], loss_weights=[0.8, 0.2])
    """
    if not reference_free:
        if ref_chosen_logps is None:
            raise ValueError("ref_chosen_logps is None: pass the reference model's log-probs, or reference_free=True")
        if ref_rejected_logps is None:
            raise ValueError(
                "ref_rejected_logps is None: pass the reference model's log-probs, or reference_free=True"
            )
    first, types = _loss_types(loss_type, loss_weights)
    weights_list = _weights_list(loss_weights, 1 if types is None else len(types))
    if (bco_running_mean is None) != (bco_running_count is None):
        missing = "bco_running_count" if bco_running_count is None else "bco_running_mean"
        raise ValueError(
            f"{missing} is None: the bco_pair running-mean state is a pair, pass bco_running_mean and "
            f"bco_running_count together (0-dim float64 tensors), or neither"
        )
    tensors = dict(
        chosen_lengths=chosen_lengths,
        rejected_lengths=rejected_lengths,
        chosen_nll=chosen_nll,
        weights=weights,
        bco_running_mean=bco_running_mean,
        bco_running_count=bco_running_count,
    )
    for name, value in tensors.items():
        _optional_tensor(name, value)
    return torch.ops.prefopt.dpo_loss(
        policy_chosen_logps,
        policy_rejected_logps,
        ref_chosen_logps,
        ref_rejected_logps,
        loss_type=str(first),
        loss_types=types,
        loss_weights=weights_list,
        beta=float(beta),
        label_smoothing=float(label_smoothing),
        f_divergence=str(f_divergence),
        alpha_divergence_coef=float(alpha_divergence_coef),
        discopop_tau=float(discopop_tau),
        rpo_alpha=float(rpo_alpha),
        reference_free=bool(reference_free),
        check_finite=bool(check_finite),
        **tensors,
    )


# The module's result is the package's one LossResult; the name is kept for code written against it.
DPOLossResult = LossResult


def _batch_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean accumulated in float32 (float64 for float64), returned as a 0-dim float32 tensor."""
    acc = torch.float64 if values.dtype == torch.float64 else torch.float32
    return values.detach().to(acc).mean().to(torch.float32)


class DPOLoss(torch.nn.Module):
    """Module form of :func:`dpo_loss`: holds the options, reduces the batch and computes TRL's metrics.

    For ``bco_pair`` with ``bco_running_mean=True`` it keeps the running mean of the batch reward means (TRL <=
    0.28's ``RunningMoments``) in two 0-dim float64 buffers, ``bco_running_mean`` (starts at 0) and
    ``bco_running_count`` (starts at 1e-24, so the first batch's mean becomes the mean). They are in
    ``state_dict()``, so a checkpoint of the module resumes the running mean; each forward call updates them in
    place, in training and in evaluation alike (as TRL does). They stay float64 when the module is cast to another
    dtype (``.to(torch.bfloat16)``, ``.half()``); they follow it across devices.

    Args:
        loss_type, loss_weights, beta, label_smoothing, f_divergence, alpha_divergence_coef, discopop_tau,
        rpo_alpha, reference_free, check_finite: as in :func:`dpo_loss`.
        bco_running_mean: give ``bco_pair`` the running-mean reward shift (module state). Ignored when no
            selected loss type is ``bco_pair``.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``: how ``losses`` becomes ``loss``.

    Forward:
        ``forward(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps=None, ref_rejected_logps=None, *,
        chosen_lengths=None, rejected_lengths=None, chosen_nll=None, weights=None)`` with the inputs of
        :func:`dpo_loss`; returns :class:`DPOLossResult`.

    Example::

        >>> import torch, prefopt
        >>> loss_fn = prefopt.DPOLoss(loss_type=["sigmoid", "bco_pair"], loss_weights=[0.8, 0.2],
        ...                           bco_running_mean=True, beta=0.1)
        >>> pc, pr = torch.randn(4, requires_grad=True), torch.randn(4, requires_grad=True)
        >>> rc, rr = torch.randn(4), torch.randn(4)
        >>> out = loss_fn(pc, pr, rc, rr)
        >>> out.loss.backward()
        >>> sorted(out.metrics)[:2], float(loss_fn.bco_running_count)
        (['logps/chosen', 'logps/rejected'], 1.0)
    """

    bco_running_mean: torch.Tensor
    bco_running_count: torch.Tensor

    def __init__(
        self,
        *,
        loss_type: LossType = "sigmoid",
        loss_weights: Optional[Sequence[float]] = None,
        beta: float = 0.1,
        label_smoothing: float = 0.0,
        f_divergence: str = "reverse_kl",
        alpha_divergence_coef: float = 0.5,
        discopop_tau: float = 0.05,
        bco_running_mean: bool = False,
        rpo_alpha: float = 0.0,
        reference_free: bool = False,
        reduction: str = "mean",
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        _, types = _loss_types(loss_type, loss_weights)
        self.loss_type: Union[str, List[str]] = loss_type if isinstance(loss_type, str) else list(types)
        self.loss_weights = _weights_list(loss_weights, 1 if types is None else len(types))
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(_REDUCTIONS)}; got {reduction!r}")
        if not isinstance(bco_running_mean, bool):
            raise TypeError(
                f"bco_running_mean must be a bool (the state lives in the module's buffers), got "
                f"{type(bco_running_mean).__name__}"
            )
        self.beta = float(beta)
        self.label_smoothing = float(label_smoothing)
        self.f_divergence = str(f_divergence)
        self.alpha_divergence_coef = float(alpha_divergence_coef)
        self.discopop_tau = float(discopop_tau)
        self.use_bco_running_mean = bco_running_mean
        self.rpo_alpha = float(rpo_alpha)
        self.reference_free = bool(reference_free)
        self.reduction = reduction
        self.check_finite = bool(check_finite)
        self.register_buffer("bco_running_mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("bco_running_count", torch.full((), 1e-24, dtype=torch.float64))

    def _apply(self, fn, recurse=True):
        # .to(dtype) / .half() / .bfloat16() cast floating buffers; the running-mean state stays float64 (a count of
        # 1e-24 or a long-run mean does not survive float16), only its device follows the module.
        saved = {name: self._buffers[name] for name in ("bco_running_mean", "bco_running_count")}
        super()._apply(fn, recurse)
        for name, old in saved.items():
            new = self._buffers[name]
            if new is not None and new.dtype != torch.float64:
                self._buffers[name] = old.to(device=new.device)
        return self

    def reset_bco_state(self) -> None:
        """Restarts the bco_pair running mean (mean 0, count 1e-24), in place."""
        with torch.no_grad():
            self.bco_running_mean.zero_()
            self.bco_running_count.fill_(1e-24)

    def _types(self) -> List[str]:
        return [self.loss_type] if isinstance(self.loss_type, str) else list(self.loss_type)

    def forward(
        self,
        policy_chosen_logps: torch.Tensor,
        policy_rejected_logps: torch.Tensor,
        ref_chosen_logps: Optional[torch.Tensor] = None,
        ref_rejected_logps: Optional[torch.Tensor] = None,
        *,
        chosen_lengths: Optional[torch.Tensor] = None,
        rejected_lengths: Optional[torch.Tensor] = None,
        chosen_nll: Optional[torch.Tensor] = None,
        weights: Optional[torch.Tensor] = None,
    ) -> DPOLossResult:
        """The :func:`dpo_loss` of a batch under the module's options, reduced by ``reduction``, with TRL's metrics.

        Args:
            policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps: ``[B]`` summed
                completion log-probs, as in :func:`dpo_loss` (the reference ones may be None only with
                ``reference_free``).
            chosen_lengths, rejected_lengths, chosen_nll, weights: as in :func:`dpo_loss`.

        With ``bco_running_mean=True`` and ``bco_pair`` among the loss types, the call updates the
        ``bco_running_mean`` / ``bco_running_count`` buffers in place (in training and in evaluation).

        Returns:
            :class:`DPOLossResult` with ``losses`` ``[B]`` in the input dtype and ``loss`` (their mean, their sum,
            or ``losses`` itself for ``reduction="none"``), both differentiable; ``chosen_rewards`` and
            ``rejected_rewards`` ``[B]``, detached; ``metrics``, 0-dim float32 detached batch means under TRL's
            names: ``rewards/chosen``, ``rewards/rejected``, ``rewards/accuracies`` (the fraction of pairs with
            chosen reward > rejected reward), ``rewards/margins``, ``logps/chosen``, ``logps/rejected``, and
            ``nll_loss`` (``chosen_nll``) when ``chosen_nll`` is given.
        """
        state = {}
        if self.use_bco_running_mean and "bco_pair" in self._types():
            state = dict(bco_running_mean=self.bco_running_mean, bco_running_count=self.bco_running_count)
        losses, chosen_rewards, rejected_rewards = dpo_loss(
            policy_chosen_logps,
            policy_rejected_logps,
            ref_chosen_logps,
            ref_rejected_logps,
            loss_type=self.loss_type,
            loss_weights=self.loss_weights,
            beta=self.beta,
            label_smoothing=self.label_smoothing,
            f_divergence=self.f_divergence,
            alpha_divergence_coef=self.alpha_divergence_coef,
            discopop_tau=self.discopop_tau,
            rpo_alpha=self.rpo_alpha,
            reference_free=self.reference_free,
            chosen_lengths=chosen_lengths,
            rejected_lengths=rejected_lengths,
            chosen_nll=chosen_nll,
            weights=weights,
            check_finite=self.check_finite,
            **state,
        )
        if self.reduction == "mean":
            loss = losses.mean()
        elif self.reduction == "sum":
            loss = losses.sum()
        else:
            loss = losses
        metrics = {
            "rewards/chosen": _batch_mean(chosen_rewards),
            "rewards/rejected": _batch_mean(rejected_rewards),
            "rewards/accuracies": _batch_mean(chosen_rewards > rejected_rewards),
            "rewards/margins": _batch_mean(chosen_rewards.to(torch.float64) - rejected_rewards.to(torch.float64)),
            "logps/chosen": _batch_mean(policy_chosen_logps),
            "logps/rejected": _batch_mean(policy_rejected_logps),
        }
        if chosen_nll is not None:
            metrics["nll_loss"] = chosen_nll.detach().to(torch.float32)
        return LossResult(losses=losses, metrics=metrics, loss=loss, chosen_rewards=chosen_rewards,
                          rejected_rewards=rejected_rewards)

    def extra_repr(self) -> str:
        """The options shown in ``repr(module)``, e.g. ``"loss_type=sigmoid+hinge, beta=0.1, loss_weights=[0.8, 0.2]"``.

        ``loss_type`` (several joined by ``+``) and ``beta`` always; ``loss_weights``, ``label_smoothing``,
        ``f_divergence``, ``bco_running_mean``, ``rpo_alpha``, ``reference_free`` and ``reduction`` only where they
        are not their defaults; ``alpha_divergence_coef`` with the alpha divergence, ``discopop_tau`` with
        ``discopop``.
        """
        loss_type = self.loss_type if isinstance(self.loss_type, str) else "+".join(self.loss_type)
        parts = [f"loss_type={loss_type}", f"beta={self.beta:g}"]
        if self.loss_weights is not None:
            parts.append(f"loss_weights={self.loss_weights}")
        if self.label_smoothing:
            parts.append(f"label_smoothing={self.label_smoothing:g}")
        if self.f_divergence != "reverse_kl":
            parts.append(f"f_divergence={self.f_divergence}")
            if self.f_divergence == "alpha_divergence":
                parts.append(f"alpha_divergence_coef={self.alpha_divergence_coef:g}")
        if "discopop" in self._types():
            parts.append(f"discopop_tau={self.discopop_tau:g}")
        if self.use_bco_running_mean:
            parts.append("bco_running_mean=True")
        if self.rpo_alpha:
            parts.append(f"rpo_alpha={self.rpo_alpha:g}")
        if self.reference_free:
            parts.append("reference_free=True")
        if self.reduction != "mean":
            parts.append(f"reduction={self.reduction}")
        return ", ".join(parts)
