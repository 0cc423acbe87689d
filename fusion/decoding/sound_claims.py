"""Scorer ``"no_sound_claim"``: a clip without an audio stream is never said to sound like anything.

A hard constraint per video (the stateless processors of :mod:`fusion.decoding.processors` see
no video), scored 0 for every word except, in rows of a clip whose record has no audio, the
words that claim a sound (``heard``, ``sound``, ``music``, ...: :data:`SOUND_CLAIM_WORDS`),
which score ``-inf`` so the search never emits them. :class:`fusion.decoding.decoder.CaptionDecoder`
adds it (weight 1) to every batch holding such a clip, for every model: MSVD has no audio at
all, and a caption model trained on video with sound otherwise "hears" a baby in a silent clip.
Its entry (always 0 on a caption) is dropped from the hypotheses' breakdowns afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from fusion.decoding.scorer import DecodeContext

NAME = "no_sound_claim"
# Words that say what a clip sounds like; their claim needs an audio stream.
SOUND_CLAIM_WORDS = frozenset(
    "hear heard hears hearing listen listens listening listened sound sounds sounding noise noises noisy loud "
    "loudly audio audible music musical song songs melody soundtrack tune tunes".split())


class SoundClaimScorer:
    """Bans sound-claiming words in the rows of clips without audio.

    Args:
        words: the vocabulary's words in id order (or a ``Vocabulary``).
    """

    def __init__(self, words: Sequence[str] | Any) -> None:
        words = list(words.words if hasattr(words, "words") else words)
        self.banned = torch.tensor([w in SOUND_CLAIM_WORDS for w in words], dtype=torch.bool)  # (V,)

    def init_state(self, ctx: DecodeContext) -> Tensor:
        """(N, V) float32: ``-inf`` at sound-claim words in rows of clips without audio, else 0."""
        records = list(ctx.records) if ctx.records is not None else [None] * ctx.batch_size
        silent = torch.tensor([r is not None and getattr(r, "audio", None) is None for r in records])  # (B,)
        mask = silent[:, None] & self.banned[None, :]  # (B, V)
        per_video = torch.zeros(mask.shape, dtype=torch.float32).masked_fill(mask, float("-inf"))
        return per_video.to(ctx.device)[ctx.video_index()]  # (N, V)

    def score(self, tokens: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:  # noqa: ARG002
        """The same (N, V) scores at every step."""
        return state, state

    def select_state(self, state: Tensor, idx: Tensor) -> Tensor:
        """Rows ``idx`` (N,) long."""
        return state[idx]


def without_constraint(nbest: list[list[Any]]) -> list[list[Any]]:
    """The hypotheses without the constraint's entry: it scores 0 on every word a caption can hold,
    so a caption's per-scorer breakdown reads the same as a search without it."""
    import dataclasses

    return [[dataclasses.replace(h, scores={k: v for k, v in h.scores.items() if k != NAME},
                                 weights={k: v for k, v in h.weights.items() if k != NAME}) for h in hyps]
            for hyps in nbest]


def needs_sound_claim_scorer(records: Sequence[Any]) -> bool:
    """True when some record is a clip without audio."""
    return any(r is not None and getattr(r, "audio", None) is None for r in records)
