"""Keyword-argument wrappers of the scoring operators (torch.ops.prefopt.token_logps, .sequence_logps).

Each function forwards to one operator implemented in C++ (the same kernels the C++ API calls). None of
them computes log-probs in Python, materialises a log-softmax, or upcasts the logits.
"""

from __future__ import annotations

from typing import Tuple

import torch

from ._library import load_library

load_library()

__all__ = ["token_logps", "sequence_logps"]


def token_logps(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = -100,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Log-probability of each row's label under ``softmax(logits / temperature)``.

    Args:
        logits: ``[N, V]``, float32, bfloat16, float16 or float64, on CPU or CUDA. Any strides; a vocabulary
            dimension that is not contiguous is copied once. Read in its own dtype, never upcast as a whole.
        labels: ``[N]``, int64, on the device of ``logits``; each in ``[0, V)`` or equal to ``ignore_index``.
        ignore_index: label value whose row is not scored: its log-prob is 0 and it gets no gradient.
        temperature: the logits are divided by it before the softmax; finite and > 0.

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
    logps, _lse = torch.ops.prefopt.token_logps(logits, labels, int(ignore_index), float(temperature))
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
