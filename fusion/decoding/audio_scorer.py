"""Scorer ``"audio"``: the audio-noun verifier inside the beam search, and as n-best re-ranker.

At every step, the score of a vocabulary word that names an audible noun (``dog``,
``dogs``, a synonym's forms) is that noun's audio evidence for the video (a clipped log
likelihood ratio from :class:`fusion.verifier.AudioNounVerifier`); every other word scores 0.
The beam search multiplies it by the weight beta (``weights["audio"]``): nouns the sound
confirms gain (once per sound source and caption), nouns it contradicts lose (at every
mention), other words are untouched. A video without audio has no evidence, so its rows
are all 0 - exactly as if the scorer were off.

With ``penalty`` P > 0 (``decode.audio_penalty``) a noun the sound *contradicts* (evidence at
most ``-SUPPORT``, the verifier's line for a claim; an abstaining noun never reaches it)
costs P more at every mention: evidence alone is a soft log-likelihood ratio that a language
model's pull towards naming a sound can outweigh, the penalty makes "the sound says no" firm.
With ``absent_penalty`` Q > 0 (``decode.audio_absent_penalty``) a clip *without an audio
stream* contradicts every audible noun: each mention costs Q. That suits data whose audible
nouns name what is heard (the audio-visual benchmark: a language model otherwise makes the
captioner "hear" a rooster in a silent film); leave it 0 on video-only data such as MSVD,
where a dog on screen is still a dog.

The scorer holds its evidence (:data:`AUDIO_SPEC` declares it reading the feature records):

* :meth:`AudioScorer.with_inputs` computes it from a batch's ``FeatureRecord | None`` per
  video with the verifier (what the decoder does);
* :meth:`AudioScorer.with_evidence` takes it ready: per video ``Evidence | None`` (noun ->
  float), or a (B, V) float tensor;
* neither: no evidence (all zeros).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from fusion.decoding.concept_scorer import first_mention_scores
from fusion.decoding.scorer import DecodeContext
from fusion.decoding.spec import BatchInputs, ScorerParts, ScorerSpec, Setting
from fusion.errors import ConfigError
from fusion.verifier.core import SUPPORT, AudioNounVerifier, Evidence
from fusion.verifier.table import NounTable, default_table

logger = logging.getLogger(__name__)

RERANK_KEY = "audio_rerank"  # the re-ranker's entry in Hypothesis.scores / .weights


@dataclass
class AudioState:
    """The ``"audio"`` scorer's state for N rows.

    Attributes:
        bonus: (N, V) float32, the row's video evidence at its nouns' ids, 0 elsewhere.
        used: (N, G) bool, which sound sources (noun groups) the row's prefix already named.
    """

    bonus: Tensor
    used: Tensor


class AudioScorer:
    """The verifier as beam-search scorer ``"audio"`` (weight beta).

    A word's score is its noun's evidence, except that a *supported* source (evidence > 0)
    is rewarded only at its first mention in a caption (``ocean waves ... the sea`` earns it
    once), so positive evidence never pays for repeating a noun; contradicted nouns are
    penalised at every mention. :func:`caption_audio_score` is the same sum for a caption.

    Args:
        words: the caption vocabulary's words in id order (``Vocabulary.words``) or a
            ``Vocabulary``.
        verifier: computes evidence from feature records (default: zero-shot only, on the
            committed table). Not needed for evidence given ready (:meth:`with_evidence`).
        penalty: extra cost of a contradicted noun (evidence <= ``-SUPPORT``) at every mention.
        absent_penalty: cost of every audible noun's mention in a clip without audio.
    """

    evidence: Sequence[Evidence | None] | Tensor | None = None  # per video of the search, held by with_*

    def __init__(self, words: Sequence[str] | Any, verifier: AudioNounVerifier | None = None,
                 penalty: float = 0.0, absent_penalty: float = 0.0) -> None:
        if penalty < 0 or absent_penalty < 0:
            raise ConfigError(f"audio scorer: penalty={penalty}, absent_penalty={absent_penalty} are invalid: "
                              "give 0 (off) or more")
        self.absent_penalty = float(absent_penalty)
        self.words = list(words.words if hasattr(words, "words") else words)
        self._verifier = verifier
        self.penalty = float(penalty)
        self._noun_ids: dict[int, str] | None = None
        self._groups: Tensor | None = None

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

    @property
    def groups(self) -> Tensor:
        """(V,) long: each vocabulary id's sound-source group, -1 for words that are no audible noun."""
        if self._groups is None:
            table = self.verifier.table
            names = sorted({table.source_group(n) for n in self.noun_ids.values()})
            self._groups = torch.full((len(self.words),), -1, dtype=torch.long)
            for i, noun in self.noun_ids.items():
                self._groups[i] = names.index(table.source_group(noun))
        return self._groups

    def evidence_matrix(self, evidence: Sequence[Evidence | None]) -> Tensor:
        """(B, V) float32: each video's evidence at its nouns' ids, 0 elsewhere / without audio."""
        out = torch.zeros(len(evidence), len(self.words), dtype=torch.float32)  # (B, V)
        for b, ev in enumerate(evidence):
            if ev:
                for i, noun in self.noun_ids.items():
                    out[b, i] = ev.get(noun, 0.0)
        return out

    def with_evidence(self, evidence: Sequence[Evidence | None] | Tensor | None) -> AudioScorer:
        """This scorer holding ready evidence: per video ``Evidence | None``, or a (B, V) float tensor."""
        bound = copy.copy(self)  # shares the verifier and the vocabulary's noun ids
        bound.evidence = evidence
        return bound

    def with_inputs(self, inputs: BatchInputs) -> AudioScorer:
        """This scorer holding the verifier's evidence for ``inputs.records`` (None for a video without audio)."""
        return self.with_evidence(self.verifier.evidence_batch(list(inputs.records)))

    def init_state(self, ctx: DecodeContext) -> AudioState:
        """Per-row bonus (N, V) and no source named yet."""
        given = self.evidence
        absent = torch.zeros(ctx.batch_size, dtype=torch.bool)  # (B,) clips without audio (no evidence)
        if isinstance(given, Tensor):
            per_video = given.float()
        elif given is None:
            per_video = torch.zeros(ctx.batch_size, len(self.words))
        else:
            listed = list(given)
            per_video = self.evidence_matrix(listed)
            absent = torch.tensor([ev is None for ev in listed], dtype=torch.bool)
        if per_video.shape != (ctx.batch_size, len(self.words)):
            raise ConfigError(f"audio scorer: evidence for {tuple(per_video.shape)} (videos, vocabulary) but the "
                              f"search has {ctx.batch_size} videos and {len(self.words)} words; pass one per video")
        if self.penalty:
            per_video = per_video - self.penalty * (per_video <= -SUPPORT).float()  # contradicted nouns
        if self.absent_penalty and bool(absent.any()):
            nouns = (self.groups >= 0).float()  # (V,)
            per_video = per_video - self.absent_penalty * absent.float()[:, None] * nouns[None, :]
        bonus = per_video.to(ctx.device)[ctx.video_index()]  # (B, V) -> (N, V)
        n_groups = int(self.groups.max()) + 1 if len(self.groups) else 0
        return AudioState(bonus, torch.zeros(ctx.num_rows, n_groups, dtype=torch.bool, device=ctx.device))

    def score(self, tokens: Tensor, state: AudioState) -> tuple[Tensor, AudioState]:
        """Scores (N, V) of the next word after prefixes ``tokens`` (N, t) long."""
        scores, used = first_mention_scores(tokens, state.bonus, state.used, self.groups)
        return scores, AudioState(state.bonus, used)

    def select_state(self, state: AudioState, idx: Tensor) -> AudioState:
        """Rows ``idx`` (N,) long of the state."""
        return AudioState(state.bonus[idx], state.used[idx])


def caption_audio_score(words: str, evidence: Mapping[str, float] | None, table: NounTable | None = None,
                        penalty: float = 0.0, absent_penalty: float = 0.0) -> float:
    """What the ``"audio"`` scorer adds to a caption, unweighted: each supported source's evidence
    at its first mention, each contradicting noun's evidence (less ``penalty`` where it is at most
    ``-SUPPORT``) at every mention; without audio (``evidence`` None), ``-absent_penalty`` per
    audible noun mentioned."""
    table = table if table is not None else default_table()
    if evidence is None:
        return -absent_penalty * sum(table.audible_noun(w) is not None for w in words.split())
    if not evidence:
        return 0.0
    total, named = 0.0, set()
    for word in words.split():
        noun = table.audible_noun(word)
        if noun is None:
            continue
        value = evidence.get(noun, 0.0)
        if value <= -SUPPORT:
            value -= penalty
        if value <= 0 or table.source_group(noun) not in named:
            total += value
        named.add(table.source_group(noun))
    return float(total)


def rerank(hypotheses: Sequence[Any], evidence: Mapping[str, float] | None, beta: float,
           table: NounTable | None = None, penalty: float = 0.0) -> list[Any]:
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
        penalty: the scorer's extra cost of a contradicted noun (see :class:`AudioScorer`).

    Returns:
        New hypotheses (the inputs are not modified), best first.
    """
    if evidence is None or beta == 0:
        return list(hypotheses)
    out = []
    for hyp in hypotheses:
        audio = caption_audio_score(hyp.words, evidence, table, penalty)
        total = float(getattr(hyp, "total", hyp.score))
        normalised = abs(total - hyp.score) > 1e-9 * max(1.0, abs(total))
        new_total = total + beta * audio
        length = len(hyp.tokens) + 1 if normalised else 1
        out.append(dataclasses.replace(
            hyp, total=new_total, score=new_total / length, scores={**hyp.scores, RERANK_KEY: audio},
            weights={**getattr(hyp, "weights", {}), RERANK_KEY: beta}))
    return sorted(out, key=lambda h: h.score, reverse=True)


def load_verifier(path: str | None) -> AudioNounVerifier:
    """The audio-noun verifier: a trained file (``decode.verifier``) or zero-shot on the committed table."""
    return AudioNounVerifier.load(path) if path is not None else AudioNounVerifier()


def shared_verifier(parts: ScorerParts) -> AudioNounVerifier:
    """``parts.config.verifier``, loaded once per ``parts.shared``."""
    path = parts.config.verifier
    return parts.load(("verifier", path), lambda: load_verifier(path))


def _build(parts: ScorerParts) -> AudioScorer:
    config = parts.config
    return AudioScorer(parts.vocab, shared_verifier(parts), penalty=config.audio_penalty,
                       absent_penalty=config.audio_absent_penalty)


AUDIO_SPEC = ScorerSpec(
    name="audio", label="audio", build=_build, weight="audio_weight", inputs=("records",),
    ablation="verifier_off", slider=True,
    settings=(
        Setting("audio_weight", float, 0.0, "weight beta of the audio-noun verifier (0 = off)", metavar="BETA",
                minimum=0.0, scale=5.0, step=0.1),
        Setting("audio_penalty", float, 0.0, "extra cost per mention of an audible noun the sound contradicts "
                "(default 0: evidence alone)", metavar="P", minimum=0.0),
        Setting("audio_absent_penalty", float, 0.0, "cost per mention of an audible noun in a clip without audio "
                "(default 0; keep 0 for MSVD)", metavar="Q", minimum=0.0),
        Setting("verifier", str | None, None, "trained audio-noun verifier file, or 'learned' for the run's "
                "(default: zero-shot evidence)", metavar="FILE"),
    ),
)
