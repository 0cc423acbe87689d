"""Stateless constraints on the next token, in the style of Hugging Face ``LogitsProcessor``.

Each processor is a small validated callable ``(tokens (N, t) long, scores (N, V) float) ->
scores (N, V)`` that only *masks* tokens (sets them to ``-inf``); it never rescales, so the
per-scorer breakdown of every hypothesis still sums to its total. ``tokens`` is each row's
prefix starting with BOS, so ``tokens.shape[1] - 1`` words have been generated.

Anchor: ``transformers/generation/logits_process.py`` (MinLengthLogitsProcessor,
NoRepeatNGramLogitsProcessor, SuppressTokensLogitsProcessor).
"""

from __future__ import annotations

from typing import Iterable, Protocol, Sequence

import torch
from torch import Tensor

from fusion.errors import ConfigError

NEG_INF = float("-inf")


def ban_pairs(scores: Tensor, rows: Sequence[int], ids: Sequence[int]) -> Tensor:
    """``scores`` (N, V) with each (row, id) pair set to -inf: a copy, or ``scores`` itself when none."""
    if not rows:
        return scores
    scores = scores.clone()
    scores[list(rows), list(ids)] = NEG_INF
    return scores


class Processor(Protocol):
    """A pure next-token constraint: returns ``scores`` with banned tokens at ``-inf``."""

    def __call__(self, tokens: Tensor, scores: Tensor) -> Tensor:
        """Mask ``scores`` (N, V) float given prefixes ``tokens`` (N, t) long."""
        ...


def _check_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}={value!r} is invalid: give an integer >= {minimum}")
    return value


class MinLengthProcessor:
    """Forbid EOS until ``min_len`` words have been generated."""

    def __init__(self, min_len: int, eos_id: int) -> None:
        self.min_len = _check_int("min_len", min_len, 0)
        self.eos_id = _check_int("eos_id", eos_id, 0)

    def __call__(self, tokens: Tensor, scores: Tensor) -> Tensor:
        if tokens.shape[1] - 1 < self.min_len:
            scores = scores.clone()
            scores[:, self.eos_id] = NEG_INF
        return scores


class MaxLengthProcessor:
    """Force EOS once ``max_len`` words have been generated (every other token banned)."""

    def __init__(self, max_len: int, eos_id: int) -> None:
        self.max_len = _check_int("max_len", max_len, 1)
        self.eos_id = _check_int("eos_id", eos_id, 0)

    def __call__(self, tokens: Tensor, scores: Tensor) -> Tensor:
        if tokens.shape[1] - 1 >= self.max_len:
            eos = scores[:, self.eos_id].clone()  # (N,)
            scores = torch.full_like(scores, NEG_INF)
            scores[:, self.eos_id] = eos
        return scores


class SuppressTokensProcessor:
    """Never generate the given token ids (e.g. PAD and BOS, which are not words)."""

    def __init__(self, token_ids: Iterable[int]) -> None:
        ids = [_check_int("token id", int(i), 0) for i in token_ids]
        self.token_ids = sorted(set(ids))

    def __call__(self, tokens: Tensor, scores: Tensor) -> Tensor:
        if not self.token_ids:
            return scores
        scores = scores.clone()
        scores[:, self.token_ids] = NEG_INF
        return scores


class NoUnkProcessor(SuppressTokensProcessor):
    """Never generate the unknown-word token: a caption with ``<unk>`` says nothing."""

    def __init__(self, unk_id: int) -> None:
        super().__init__([unk_id])


class NoRepeatNGramProcessor:
    """Ban any token that would repeat an n-gram already in the prefix ("a man a man")."""

    def __init__(self, ngram_size: int) -> None:
        self.ngram_size = _check_int("no_repeat_ngram_size", ngram_size, 1)

    def __call__(self, tokens: Tensor, scores: Tensor) -> Tensor:
        size = self.ngram_size
        num_rows, length = tokens.shape
        if length + 1 < size:
            return scores
        rows = tokens.tolist()
        banned_rows: list[int] = []
        banned_ids: list[int] = []
        for r, seq in enumerate(rows):
            prefix = tuple(seq[length - size + 1 :]) if size > 1 else ()
            for i in range(length - size + 1):
                if tuple(seq[i : i + size - 1]) == prefix:
                    banned_rows.append(r)
                    banned_ids.append(seq[i + size - 1])
        return ban_pairs(scores, banned_rows, banned_ids)


class NoImmediateRepeatProcessor:
    """Ban the word just generated: no caption says a word twice in a row ("wails wails").

    Real captions practically never do (the README, "Where the defaults come from", has the
    counts), while a captioner given a clip unlike its training data otherwise loops on one
    word to the length limit.
    """

    def __call__(self, tokens: Tensor, scores: Tensor) -> Tensor:
        if tokens.shape[1] < 2:  # only BOS so far
            return scores
        scores = scores.clone()
        scores[torch.arange(tokens.shape[0], device=scores.device), tokens[:, -1]] = NEG_INF
        return scores


def apply_processors(processors: Sequence[Processor], tokens: Tensor, scores: Tensor) -> Tensor:
    """Apply ``processors`` in order to ``scores`` (N, V) given ``tokens`` (N, t)."""
    for processor in processors:
        scores = processor(tokens, scores)
    return scores


def caption_processors(
    pad_id: int,
    bos_id: int,
    unk_id: int | None = None,
    no_repeat_ngram_size: int = 0,
    no_immediate_repeat: bool = False,
) -> list[Processor]:
    """The usual constraints for captions: no PAD / BOS, optionally no UNK, no repeated n-gram
    and no word twice in a row.

    Args:
        pad_id: the padding id (never a word).
        bos_id: the begin-of-sentence id (never generated).
        unk_id: the unknown-word id to ban, or None to allow it.
        no_repeat_ngram_size: ban repeated n-grams of this size; 0 disables.
        no_immediate_repeat: ban the word just generated.
    """
    banned = [pad_id, bos_id] + ([unk_id] if unk_id is not None else [])
    processors: list[Processor] = [SuppressTokensProcessor(banned)]
    if _check_int("no_repeat_ngram_size", no_repeat_ngram_size, 0) > 0:
        processors.append(NoRepeatNGramProcessor(no_repeat_ngram_size))
    if no_immediate_repeat:
        processors.append(NoImmediateRepeatProcessor())
    return processors
