"""Keyword-argument wrappers of the scoring operators (torch.ops.prefopt.token_logps, .sequence_logps,
.token_kl, .token_entropy, .wpo_token_stats, .fused_linear_logps).

Each function forwards to one operator implemented in C++ (the same kernels the C++ API calls); the sequence
variants only reshape and sum its per-token result. None of them computes log-probs in Python, materialises a
log-softmax, or upcasts the logits.
"""

from __future__ import annotations

from typing import Tuple

import torch

from ._library import load_library

load_library()

__all__ = [
    "token_logps",
    "sequence_logps",
    "token_kl",
    "sequence_kl",
    "token_entropy",
    "wpo_log_weights",
    "wpo_sequence_log_weights",
    "fused_linear_logps",
]


def token_logps(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = -100,
    temperature: float = 1.0,
    inplace_backward: bool = False,
) -> torch.Tensor:
    """Log-probability of each row's label under ``softmax(logits / temperature)``.

    Args:
        logits: ``[N, V]``, float32, bfloat16, float16 or float64, on CPU or CUDA. Any strides; a vocabulary
            dimension that is not contiguous is copied once. Read in its own dtype, never upcast as a whole.
        labels: ``[N]``, int64, on the device of ``logits``; each in ``[0, V)`` or equal to ``ignore_index``.
        ignore_index: label value whose row is not scored: its log-prob is 0 and it gets no gradient.
        temperature: the logits are divided by it before the softmax; finite and > 0.
        inplace_backward: the backward writes the logits' gradient into the logits' own buffer instead of a new
            ``[N, V]`` tensor. Taken only for non-leaf logits with a contiguous vocabulary dimension; the caller
            promises that nothing else needs the logits' values after this backward.

    Returns:
        ``[N]`` log-probs in float32 (float64 for float64 logits), 0 where the label is ``ignore_index``.
        Differentiable with respect to ``logits``; the gradient is recomputed from a saved per-row
        log-sum-exp (``[N]`` floats), never from a stored softmax. Double backward is not supported.

    Raises:
        RuntimeError: on a shape, dtype or device mismatch, ``temperature <= 0``, or (on CPU) a label outside
            ``[0, V)`` that is not ``ignore_index`` ("labels[i] = v is out of range ..."). On CUDA an
            out-of-range label trips a device-side assert instead.

    A row whose logits are all ``-inf`` has no defined log-prob and gives NaN.

    Example::

        >>> import torch, prefopt
        >>> logits = torch.randn(6, 32, requires_grad=True)
        >>> labels = torch.randint(32, (6,))
        >>> labels[0] = -100                      # not scored
        >>> logps = prefopt.token_logps(logits, labels)
        >>> logps.shape, logps.dtype, logps[0].item()
        (torch.Size([6]), torch.float32, 0.0)
        >>> logps.sum().backward()                # logits.grad: [6, 32], row 0 all zeros
    """
    logps, _lse = torch.ops.prefopt.token_logps(
        logits, labels, int(ignore_index), float(temperature), bool(inplace_backward)
    )
    return logps


def sequence_logps(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = -100,
    average: bool = False,
    temperature: float = 1.0,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence and per-token log-probs of labelled sequences.

    Args:
        logits: ``[B, T, V]``, float32, bfloat16, float16 or float64. ``logits[b, t]`` must predict
            ``labels[b, t]``: the labels are already shifted by the caller (for a causal LM,
            ``labels[b, t] = input_ids[b, t + 1]``, prompt and padding positions set to ``ignore_index``).
        labels: ``[B, T]``, int64, on the device of ``logits``.
        ignore_index: label value of positions that are not scored (log-prob 0, no gradient), as in HF/TRL.
        average: False: the sum of the scored tokens' log-probs (DPO's ``log p(y)``); True: their mean
            (IPO, SimPO, ORPO). With ``average`` a row with no scored token gives 0.
        temperature: the logits are divided by it before the softmax; finite and > 0.

    Returns:
        ``(logps, token_logps)``: ``logps`` ``[B]`` and ``token_logps`` ``[B, T]`` (0 where ignored), both in
        float32 (float64 for float64 logits) and both differentiable with respect to ``logits``. Nothing
        is detached.

    Example::

        >>> import torch, prefopt
        >>> logits = torch.randn(2, 5, 32)                # model output for 2 sequences of 5 positions
        >>> labels = torch.randint(32, (2, 5))
        >>> labels[:, :2] = -100                          # prompt positions are not scored
        >>> logps, per_token = prefopt.sequence_logps(logits, labels, average=True)
        >>> logps.shape, per_token.shape
        (torch.Size([2]), torch.Size([2, 5]))
    """
    return torch.ops.prefopt.sequence_logps(
        logits, labels, ignore_index=int(ignore_index), average=bool(average), temperature=float(temperature)
    )


def _check_sequence(logits: torch.Tensor, labels: torch.Tensor, name: str) -> None:
    if logits.dim() != 3:
        raise ValueError(f"{name} must have shape [B, T, V], got {tuple(logits.shape)}")
    if labels.dim() != 2 or tuple(labels.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"labels must have shape [B, T] matching {name} {tuple(logits.shape)}, got {tuple(labels.shape)}")


def token_kl(
    policy_logits: torch.Tensor,
    ref_logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    ignore_index: int = -100,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Per-row ``KL(ref || policy)`` of ``softmax(logits / temperature)`` (TDPO's per-token KL).

    Args:
        policy_logits, ref_logits: ``[N, V]``, the same floating dtype and device.
        labels: ``[N]`` int64 or ``None``; rows labelled ``ignore_index`` give 0 and are not read.

    Returns:
        ``[N]`` float32 (float64 for float64 logits), differentiable with respect to ``policy_logits`` only:
        the reference side is detached.

    Example::

        >>> import torch, prefopt
        >>> pol, ref = torch.randn(4, 16, requires_grad=True), torch.randn(4, 16)
        >>> prefopt.token_kl(pol, ref).shape
        torch.Size([4])
    """
    kl, _, _ = torch.ops.prefopt.token_kl(policy_logits, ref_logits, labels, int(ignore_index), float(temperature))
    return kl


def sequence_kl(
    policy_logits: torch.Tensor,
    ref_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = -100,
    temperature: float = 1.0,
) -> torch.Tensor:
    """TDPO's sequential KL ``K(y) = sum_t mask_t KL(ref_t || policy_t)`` of each sequence.

    Args:
        policy_logits, ref_logits: ``[B, T, V]``; labels: ``[B, T]`` int64, already shifted.

    Returns:
        ``[B]`` float32 (float64 for float64 logits), differentiable with respect to ``policy_logits`` only.

    Example::

        >>> import torch, prefopt
        >>> pol, ref = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
        >>> labels = torch.randint(16, (2, 5)); labels[:, :2] = -100
        >>> prefopt.sequence_kl(pol, ref, labels).shape
        torch.Size([2])
    """
    _check_sequence(policy_logits, labels, "policy_logits")
    if ref_logits.shape != policy_logits.shape:
        raise ValueError(
            f"ref_logits must have the shape of policy_logits {tuple(policy_logits.shape)}, got {tuple(ref_logits.shape)}"
        )
    b, t, v = policy_logits.shape
    kl = token_kl(
        policy_logits.reshape(b * t, v),
        ref_logits.reshape(b * t, v),
        labels.reshape(b * t),
        ignore_index=ignore_index,
        temperature=temperature,
    )
    return kl.view(b, t).sum(1)


def token_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    ignore_index: int = -100,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Entropy of ``softmax(logits / temperature)`` per row: a metric, never differentiable.

    Args:
        logits: ``[N, V]`` floating; labels: ``[N]`` int64 or ``None`` (rows labelled ``ignore_index`` give 0).

    Returns:
        ``[N]`` float32 (float64 for float64 logits), detached.

    Example::

        >>> import torch, prefopt
        >>> prefopt.token_entropy(torch.zeros(3, 8))  # uniform rows: log 8
        tensor([2.0794, 2.0794, 2.0794])
    """
    return torch.ops.prefopt.token_entropy(logits, labels, int(ignore_index), float(temperature))


def wpo_log_weights(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = -100,
    temperature: float = 1.0,
) -> torch.Tensor:
    """WPO's per-token log-weight ``log p(y_t) - log sum_v p(v)^2`` from one read of each row.

    Args:
        logits: ``[N, V]`` floating; labels: ``[N]`` int64 in ``[0, V)`` or ``ignore_index``.

    Returns:
        ``[N]`` float32 (float64 for float64 logits), 0 where ignored. Detached.

    Example::

        >>> import torch, prefopt
        >>> prefopt.wpo_log_weights(torch.zeros(2, 8), torch.tensor([1, 3]))  # uniform: log(1/8) - log(1/8)
        tensor([0., 0.])
    """
    log_w, _, _, _ = torch.ops.prefopt.wpo_token_stats(logits, labels, int(ignore_index), float(temperature))
    return log_w


def wpo_sequence_log_weights(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = -100,
    temperature: float = 1.0,
) -> torch.Tensor:
    """WPO's sequence log-weight ``mean_t log w_t`` over each sequence's scored tokens (0 with none), as TRL
    computes it; ``prefopt.wpo_pair_weights(chosen, rejected)`` turns two of them into DPO's pair weights.

    Args:
        logits: ``[B, T, V]``; labels: ``[B, T]`` int64, already shifted.

    Returns:
        ``[B]`` float32 (float64 for float64 logits). Detached.

    Example::

        >>> import torch, prefopt
        >>> prefopt.wpo_sequence_log_weights(torch.zeros(1, 3, 8), torch.tensor([[-100, 2, 5]]))
        tensor([0.])
    """
    _check_sequence(logits, labels, "logits")
    b, t, v = logits.shape
    log_w = wpo_log_weights(
        logits.reshape(b * t, v), labels.reshape(b * t), ignore_index=ignore_index, temperature=temperature
    ).view(b, t)
    counts = labels.ne(ignore_index).sum(1).clamp_min(1).to(log_w.dtype)
    return log_w.sum(1) / counts


def fused_linear_logps(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = -100,
    temperature: float = 1.0,
    chunk_bytes: int = 128 << 20,
) -> torch.Tensor:
    """Log-prob of each row's label under ``softmax(hidden @ weight.T / temperature)`` without forming the
    ``[N, V]`` logits: the matmul runs in chunks of at most ``chunk_bytes`` of logits, forward and backward.

    Args:
        hidden: ``[N, H]``; weight: ``[V, H]`` (an lm_head's weight); the same floating dtype and device.
        labels: ``[N]`` int64 in ``[0, V)`` or ``ignore_index``.
        chunk_bytes: memory budget of the one chunk of logits alive at a time (> 0).

    Returns:
        ``[N]`` float32 (float64 for float64 inputs), 0 where ignored; differentiable with respect to
        ``hidden`` and ``weight``.

    Example::

        >>> import torch, prefopt
        >>> h, w = torch.randn(6, 8, requires_grad=True), torch.randn(32, 8, requires_grad=True)
        >>> logps = prefopt.fused_linear_logps(h, w, torch.randint(32, (6,)), chunk_bytes=1 << 10)
        >>> logps.sum().backward()
    """
    logps, _lse = torch.ops.prefopt.fused_linear_logps(
        hidden, weight, labels, int(ignore_index), float(temperature), int(chunk_bytes)
    )
    return logps
