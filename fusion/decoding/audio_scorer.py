"""Scorer ``"audio"``: the audio-noun verifier inside the beam search, and as n-best re-ranker.

At every step, the score of a vocabulary word that names an audible noun (``dog``,
``dogs``, a synonym's forms) is that noun's audio evidence for the video (a clipped log
likelihood ratio from :class:`fusion.verifier.AudioNounVerifier`); every other word scores 0.
The beam search multiplies it by the weight beta (``weights["audio"]``): nouns the sound
confirms gain, nouns it contradicts lose, other words are untouched. A video without
audio has no evidence, so its rows are all 0 - exactly as if the scorer were off.

Inputs read from ``DecodeContext.inputs`` (first match wins):

* ``"audio_evidence"``: per video, ``Evidence | None`` (noun -> float) - or a ready
  (B, V) float tensor;
* ``"records"``: per video, ``FeatureRecord | None`` - evidence computed by the verifier;
* neither: no evidence (all zeros).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from fusion.decoding.scorer import INPUT_RECORDS, DecodeContext
from fusion.errors import ConfigError
from fusion.verifier.core import AudioNounVerifier, Evidence
from fusion.verifier.table import NounTable, default_table

log = logging.getLogger(__name__)

INPUT_AUDIO_EVIDENCE = "audio_evidence"  # per video Evidence | None, or a (B, V) tensor
RERANK_KEY = "audio_rerank"  # the re-ranker's entry in Hypothesis.scores / .weights


class AudioScorer:
    """The verifier as beam-search scorer ``"audio"`` (weight beta).

    Args:
        words: the caption vocabulary's words in id order (``Vocabulary.words``) or a
            ``Vocabulary``.
        verifier: computes evidence from ``ctx.inputs["records"]`` (default: zero-shot only,
            on the committed table). Not needed when the caller passes ``"audio_evidence"``.
    """

    def __init__(self, words: Sequence[str] | Any, verifier: AudioNounVerifier | None = None) -> None:
        self.words = list(words.words if hasattr(words, "words") else words)
        self._verifier = verifier
        self._noun_ids: dict[int, str] | None = None

    @property
    def verifier(self) -> AudioNounVerifier:
        """The verifier (built lazily: zero-shot on the committed table)."""
        if self._verifier is None:
            self._verifier = AudioNounVerifier()
        return self._verifier

    @property
    def noun_ids(self) -> dict[int, str]:
        """Vocabulary id -> audible noun, for every id that receives evidence."""
        if self._noun_ids is None:
            self._noun_ids = self.verifier.vocab_nouns(self.words)
        return self._noun_ids

    def evidence_matrix(self, evidence: Sequence[Evidence | None]) -> Tensor:
        """(B, V) float32: each video's evidence at its nouns' ids, 0 elsewhere / without audio."""
        out = torch.zeros(len(evidence), len(self.words), dtype=torch.float32)  # (B, V)
        for b, ev in enumerate(evidence):
            if ev:
                for i, noun in self.noun_ids.items():
                    out[b, i] = ev.get(noun, 0.0)
        return out

    def init_state(self, ctx: DecodeContext) -> Tensor:
        """Per-row bonus (N, V) float32: the row's video evidence spread over the vocabulary."""
        given = ctx.inputs.get(INPUT_AUDIO_EVIDENCE)
        if isinstance(given, Tensor):
            per_video = given.float()
        elif given is not None:
            per_video = self.evidence_matrix(list(given))
        elif ctx.inputs.get(INPUT_RECORDS) is not None:
            per_video = self.evidence_matrix(self.verifier.evidence_batch(ctx.inputs[INPUT_RECORDS]))
        else:
            per_video = torch.zeros(ctx.batch_size, len(self.words))
        if per_video.shape != (ctx.batch_size, len(self.words)):
            raise ConfigError(f"audio scorer: evidence for {tuple(per_video.shape)} (videos, vocabulary) but the "
                              f"search has {ctx.batch_size} videos and {len(self.words)} words; pass one per video")
        return per_video.to(ctx.device)[ctx.video_index()]  # (B, V) -> (N, V)

    def score(self, tokens: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """The same bonus (N, V) at every step; ``tokens`` (N, t) are not needed."""
        return state, state

    def select_state(self, state: Tensor, idx: Tensor) -> Tensor:
        """Rows ``idx`` (N,) long of the bonus."""
        return state[idx]


def caption_audio_score(words: str, evidence: Mapping[str, float] | None, table: NounTable | None = None) -> float:
    """Sum of the evidence of the audible-noun words of a caption (what the scorer adds, unweighted)."""
    if not evidence:
        return 0.0
    table = table if table is not None else default_table()
    return float(sum(evidence.get(noun, 0.0) for w in words.split() if (noun := table.audible_noun(w))))


def rerank(hypotheses: Sequence[Any], evidence: Mapping[str, float] | None, beta: float,
           table: NounTable | None = None) -> list[Any]:
    """Re-rank one video's n-best list with the audio evidence.

    Each hypothesis gains ``beta * caption_audio_score`` on its fused total (its ranking
    score follows: divided by its length when the search normalised by length). Its
    ``scores[RERANK_KEY]`` holds the raw evidence sum and ``weights[RERANK_KEY] = beta``.
    No audio (``evidence`` None) or ``beta == 0`` keeps the order and the scores.

    Args:
        hypotheses: ``Hypothesis`` objects (``.words``, ``.score``, ``.total``, ``.scores``).
        evidence: the video's evidence (noun -> float) or None.
        beta: the re-ranker's weight.
        table: the audible-noun table (default: the committed one).

    Returns:
        New hypotheses (the inputs are not modified), best first.
    """
    if evidence is None or beta == 0:
        return list(hypotheses)
    out = []
    for hyp in hypotheses:
        audio = caption_audio_score(hyp.words, evidence, table)
        total = float(getattr(hyp, "total", hyp.score))
        normalised = abs(total - hyp.score) > 1e-9 * max(1.0, abs(total))
        new_total = total + beta * audio
        length = len(hyp.tokens) + 1 if normalised else 1
        out.append(dataclasses.replace(
            hyp, total=new_total, score=new_total / length, scores={**hyp.scores, RERANK_KEY: audio},
            weights={**getattr(hyp, "weights", {}), RERANK_KEY: beta}))
    return sorted(out, key=lambda h: h.score, reverse=True)
