"""SPO's preference-degree pieces (torch.ops.prefopt.degree_loss, .spo_loss, .pool_hidden_states,
.extract_keyphrases, .graded_removal).

prefopt's reading of SPO (Li et al. 2024), whose equations and code were not public: responses are augmented into
K degree variants by removing graded amounts of RAKE key phrases (degree 0 untouched), a degree head (linear over
pooled last hidden states; ``torch.nn.Linear`` over :func:`pool_hidden_states` in Python) classifies the degree,
and ``L = L_align + lambda * L_degree``. Every function forwards to one C++ operator.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch

from ._library import load_library

load_library()

__all__ = ["degree_loss", "spo_loss", "pool_hidden_states", "extract_keyphrases", "graded_removal"]


def degree_loss(
    logits: torch.Tensor, degrees: torch.Tensor, *, label_smoothing: float = 0.0, check_inputs: bool = True
) -> torch.Tensor:
    """Per-example cross-entropy ``[N]`` of degree logits ``[N, K]`` against integer degrees ``[N]`` in ``[0, K)``.

    ``check_inputs`` raises on a degree outside ``[0, K)`` naming it (one host sync).

    Example::

        >>> import torch
        >>> from prefopt.degree import degree_loss
        >>> degree_loss(torch.zeros(2, 4), torch.tensor([0, 3]))    # uniform logits: log 4 each
        tensor([1.3863, 1.3863])
    """
    return torch.ops.prefopt.degree_loss(
        logits, degrees, label_smoothing=float(label_smoothing), check_inputs=bool(check_inputs)
    )


def spo_loss(
    align_loss: torch.Tensor,
    degree_logits: torch.Tensor,
    degrees: torch.Tensor,
    *,
    degree_weight: float = 0.1,
    label_smoothing: float = 0.0,
    check_inputs: bool = True,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """SPO: ``loss = align_loss + degree_weight * mean(degree cross-entropy)``.

    Args:
        align_loss: 0-dim reduced alignment loss of any pairwise loss (e.g. ``prefopt.dpo_loss(...)[0].mean()``).
        degree_logits: ``[N, K]``.  degrees: ``[N]``.

    Returns:
        ``(loss, degree_losses [N])``.

    Example::

        >>> import torch
        >>> from prefopt.degree import pool_hidden_states, spo_loss
        >>> head = torch.nn.Linear(8, 4)                              # the degree head, K = 4
        >>> hidden, mask = torch.randn(6, 5, 8), torch.ones(6, 5)      # last hidden states of 6 variants
        >>> logits = head(pool_hidden_states(hidden, mask))
        >>> align = torch.tensor(0.69, requires_grad=True)            # e.g. prefopt.dpo_loss(...)[0].mean()
        >>> loss, degree_losses = spo_loss(align, logits, torch.tensor([0, 1, 2, 3, 0, 1]), degree_weight=0.1)
        >>> loss.backward()                                            # reaches align and the head
    """
    return torch.ops.prefopt.spo_loss(
        align_loss, degree_logits, degrees, degree_weight=float(degree_weight),
        label_smoothing=float(label_smoothing), check_inputs=bool(check_inputs),
    )


def pool_hidden_states(
    hidden_states: torch.Tensor, attention_mask: Optional[torch.Tensor] = None, *, pooling: str = "mean"
) -> torch.Tensor:
    """Pools ``[N, T, E]`` hidden states over attended positions into ``[N, E]``: ``"mean"`` or ``"last"``.

    Example::

        >>> import torch
        >>> from prefopt.degree import pool_hidden_states
        >>> hidden = torch.arange(6.0).view(1, 3, 2)
        >>> pool_hidden_states(hidden, torch.tensor([[1, 1, 0]]), pooling="last")
        tensor([[2., 3.]])
    """
    return torch.ops.prefopt.pool_hidden_states(hidden_states, attention_mask, pooling=str(pooling))


def extract_keyphrases(
    text: str,
    *,
    max_words: int = 4,
    max_phrases: int = 0,
    min_word_chars: int = 1,
    stop_words: Optional[Sequence[str]] = None,
) -> List[Tuple[str, float]]:
    """RAKE-style key phrases of ``text`` with their scores, best first (deterministic).

    Candidate phrases are runs of words between stop-words and punctuation (at most ``max_words`` words); a
    word scores degree/frequency over the candidates, a phrase the sum of its words. ``stop_words`` replaces the
    built-in English list.

    Example::

        >>> from prefopt.degree import extract_keyphrases
        >>> extract_keyphrases("Compatibility of systems of linear constraints.")
        [('linear constraints', 4.0), ('compatibility', 1.0), ('systems', 1.0)]
    """
    phrases, scores = torch.ops.prefopt.extract_keyphrases(
        str(text), max_words=int(max_words), max_phrases=int(max_phrases), min_word_chars=int(min_word_chars),
        stop_words=None if stop_words is None else [str(w) for w in stop_words],
    )
    return list(zip(phrases, scores))


def graded_removal(
    text: str,
    *,
    num_degrees: int = 4,
    max_words: int = 4,
    min_word_chars: int = 1,
    stop_words: Optional[Sequence[str]] = None,
) -> List[Tuple[str, int]]:
    """K degree variants of ``text``: degree d removes every occurrence of the top ``round(n d / (K - 1))`` of its
    n key phrases (degree 0 unchanged, K - 1 all removed). Returns ``[(text, phrases_removed)]`` by degree.

    Example::

        >>> from prefopt.degree import graded_removal
        >>> graded_removal("The quick brown fox jumps over the lazy dog.", num_degrees=3)
        [('The quick brown fox jumps over the lazy dog.', 0), ('The over the lazy dog.', 1), ('The over the.', 2)]
    """
    texts, removed = torch.ops.prefopt.graded_removal(
        str(text), num_degrees=int(num_degrees), max_words=int(max_words), min_word_chars=int(min_word_chars),
        stop_words=None if stop_words is None else [str(w) for w in stop_words],
    )
    return list(zip(texts, removed))
