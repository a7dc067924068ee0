"""Keyword-argument wrappers for packed sequences (torch.ops.prefopt.segment_sum over the per-token operators).

A packed batch lays N sequences end to end in one row of S tokens, ``cu_seqlens`` (``[N + 1]``, 0, L_0, L_0 + L_1,
..., S) saying where each starts: the layout of flash attention's variable-length kernels and of TRL's
``padding_free`` collators. These functions give the per-sequence scores of such a row, equal to the padded
batch's, with no padding computed. They never compute log-probs in Python and never form a padded tensor.
"""

from __future__ import annotations

from typing import Tuple

import torch

from ._library import load_library

load_library()

__all__ = ["segment_sum", "packed_sequence_logps", "packed_fused_linear_logps"]


def segment_sum(values: torch.Tensor, cu_seqlens: torch.Tensor) -> torch.Tensor:
    """Per-sequence sums of per-token values: ``out[i] = values[cu_seqlens[i]:cu_seqlens[i + 1]].sum()``.

    Args:
        values: ``[S]`` float32, bfloat16, float16 or float64.
        cu_seqlens: ``[N + 1]`` int64 or int32 on the device of ``values``, ``0 = cu_seqlens[0] <= ... <=
            cu_seqlens[N] = S``; a repeated offset is an empty sequence (sum 0).

    Returns:
        ``[N]`` float32 (float64 for float64 values), differentiable with respect to ``values``.

    Example::

        >>> import torch, prefopt
        >>> prefopt.segment_sum(torch.ones(5), torch.tensor([0, 3, 3, 5])).tolist()
        [3.0, 0.0, 2.0]
    """
    return torch.ops.prefopt.segment_sum(values, cu_seqlens)


def packed_sequence_logps(
    logits: torch.Tensor,
    labels: torch.Tensor,
    cu_seqlens: torch.Tensor,
    *,
    ignore_index: int = -100,
    average: bool = False,
    temperature: float = 1.0,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`prefopt.sequence_logps` of packed sequences.

    Args:
        logits: ``[S, V]`` (or ``[1, S, V]``), the packed row's logits, any dtype ``token_logps`` takes.
        labels: ``[S]`` (or ``[1, S]``) int64, shifted within each sequence (``labels[t]`` is the token after ``t``
            in the same sequence; each sequence's last position and its prompt are ``ignore_index``).
        cu_seqlens: ``[N + 1]`` sequence offsets (see :func:`segment_sum`).
        average: the mean of each sequence's scored tokens instead of their sum (0 for a sequence with none).

    Returns:
        ``(logps, token_logps)``: ``[N]`` and ``[S]``, float32 (float64 for float64 logits), differentiable.

    Example::

        >>> import torch, prefopt
        >>> logits, labels = torch.randn(7, 32), torch.randint(32, (7,))
        >>> cu = torch.tensor([0, 4, 7]); labels[3] = labels[6] = -100   # each sequence's last token
        >>> logps, per_token = prefopt.packed_sequence_logps(logits, labels, cu)
        >>> logps.shape, per_token.shape
        (torch.Size([2]), torch.Size([7]))
    """
    logits = logits.reshape(-1, logits.shape[-1])
    labels = labels.reshape(-1)
    per_token, _lse = torch.ops.prefopt.token_logps(logits, labels, int(ignore_index), float(temperature), False)
    cu = cu_seqlens.to(logits.device)
    logps = torch.ops.prefopt.segment_sum(per_token, cu)
    if average:
        counts = torch.ops.prefopt.segment_sum(labels.ne(ignore_index).to(logps.dtype), cu).clamp_min(1)
        logps = logps / counts
    return logps, per_token


def packed_fused_linear_logps(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    cu_seqlens: torch.Tensor,
    *,
    ignore_index: int = -100,
    temperature: float = 1.0,
    chunk_bytes: int = 128 << 20,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`prefopt.fused_linear_logps` of packed sequences, summed per sequence: no ``[S, V]`` logits exist.

    Args:
        hidden: ``[S, H]`` (or ``[1, S, H]``) final hidden states of the packed row; weight: ``[V, H]``.
        labels: ``[S]`` (or ``[1, S]``) int64, shifted within each sequence; cu_seqlens: ``[N + 1]``.

    Returns:
        ``(logps, token_logps)``: ``[N]`` sums and ``[S]``, differentiable with respect to ``hidden`` and ``weight``.

    Example::

        >>> import torch, prefopt
        >>> h, w = torch.randn(7, 8, requires_grad=True), torch.randn(32, 8, requires_grad=True)
        >>> logps, _ = prefopt.packed_fused_linear_logps(h, w, torch.randint(32, (7,)), torch.tensor([0, 4, 7]))
        >>> logps.sum().backward()
    """
    hidden = hidden.reshape(-1, hidden.shape[-1])
    labels = labels.reshape(-1)
    per_token, _lse = torch.ops.prefopt.fused_linear_logps(
        hidden, weight, labels, int(ignore_index), float(temperature), int(chunk_bytes)
    )
    return torch.ops.prefopt.segment_sum(per_token, cu_seqlens.to(hidden.device)), per_token
