"""Scorers of linked concepts: ``"visual"`` (the visual-noun verifier) and the zero-shot ``"audio"``.

At every step a vocabulary word linked in the concept table (:mod:`fusion.concepts`) scores its
concept's evidence for the video (a clipped log-odds ratio of the clip's posteriors on the
word's linked classes); every other word scores 0. Positive evidence counts at a concept's
first mention only (``a dog ... the dogs`` earns it once); negative evidence, multiplied by
``negative_scale``, at every mention. A video without the scorer's sources (no frames; no audio
stream for the audio scorer) has no evidence: its rows are all 0, exactly as if the scorer were off.

The ``"visual"`` scorer (frame CNN ImageNet posteriors) works with any run, a trained S2VT
included: ``decode.visual_weight`` (:data:`VISUAL_SPEC`, registered in :mod:`fusion.decoding.registry`).
Inputs: the batch's feature records (``with_inputs``), per video ``FeatureRecord | None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import copy

import torch
from torch import Tensor

from fusion.concepts import VISUAL_SOURCES, ConceptEvidence, default_links
from fusion.decoding.scorer import DecodeContext
from fusion.decoding.spec import BatchInputs, ScorerParts, ScorerSpec, Setting
from fusion.errors import ConfigError


def first_mention_scores(tokens: Tensor, bonus: Tensor, used: Tensor, groups: Tensor) -> tuple[Tensor, Tensor]:
    """Next-word scores where positive evidence counts once per group and caption.

    Args:
        tokens: (N, t) long prefixes.
        bonus: (N, V) float evidence per word.
        used: (N, G) bool, the groups the prefix before its last token named.
        groups: (V,) long group of each word, -1 for words without one.

    Returns:
        scores (N, V) float and the updated ``used`` (N, G) bool.
    """
    groups = groups.to(tokens.device)
    last = groups[tokens[:, -1]]  # (N,) group of the word just emitted, -1 if none
    used = used.clone()
    rows = (last >= 0).nonzero(as_tuple=True)[0]
    used[rows, last[rows]] = True  # (N, G)
    named = used[:, groups.clamp(min=0)] & (groups >= 0)  # (N, V) word's group already named
    return torch.where(named & (bonus > 0), torch.zeros_like(bonus), bonus), used


@dataclass
class ConceptState:
    """``bonus`` (N, V) float32 evidence per word; ``used`` (N, G) bool concepts already named."""

    bonus: Tensor
    used: Tensor


class ConceptScorer:
    """Concept evidence as a beam-search scorer.

    Args:
        words: the vocabulary's words in id order (or a ``Vocabulary``).
        evidence: computes per-concept evidence from a feature record.
        negative_scale: multiplies negative evidence (0 = support only, 1 = as measured).
    """

    def __init__(self, words: Sequence[str] | Any, evidence: ConceptEvidence, negative_scale: float = 1.0) -> None:
        if negative_scale < 0:
            raise ConfigError(f"concept scorer: negative_scale={negative_scale} is invalid: give 0 or more")
        self.words = list(words.words if hasattr(words, "words") else words)
        self.evidence = evidence
        self.negative_scale = float(negative_scale)
        keys = set(evidence.keys)
        self.vocab_keys = {i: k for i, k in evidence.links.vocab_keys(self.words).items() if k in keys}
        names = sorted(set(self.vocab_keys.values()))
        index = {k: g for g, k in enumerate(names)}
        self.groups = torch.full((len(self.words),), -1, dtype=torch.long)  # (V,)
        for i, key in self.vocab_keys.items():
            self.groups[i] = index[key]
        self.num_groups = len(names)

    def video_scores(self, records: Sequence[Any]) -> Tensor:
        """(B, V) float32: each video's evidence at its linked words' ids, 0 elsewhere / without the sources."""
        out = torch.zeros(len(records), len(self.words), dtype=torch.float32)  # (B, V)
        ids = torch.tensor(list(self.vocab_keys), dtype=torch.long)  # (K',) linked vocabulary ids
        for b, record in enumerate(records):
            ev = self.evidence.evidence(record) if record is not None else None
            if ev:
                out[b, ids] = torch.tensor([ev.get(k, 0.0) for k in self.vocab_keys.values()], dtype=torch.float32)
        return torch.where(out < 0, out * self.negative_scale, out)

    per_video: Tensor | None = None  # (B, V) of the search's videos, held by with_inputs

    def with_inputs(self, inputs: BatchInputs) -> ConceptScorer:
        """This scorer holding the evidence of ``inputs.records`` (the videos of one search)."""
        bound = copy.copy(self)  # shares the evidence matrices and the vocabulary's groups
        bound.per_video = self.video_scores(list(inputs.records))
        return bound

    def init_state(self, ctx: DecodeContext) -> ConceptState:
        """Per-row evidence (N, V) and no concept named yet (all 0 without inputs)."""
        per_video = self.per_video if self.per_video is not None else torch.zeros(ctx.batch_size, len(self.words))
        if per_video.shape != (ctx.batch_size, len(self.words)):
            raise ConfigError(f"concept scorer: evidence for {tuple(per_video.shape)} (videos, vocabulary) but the "
                              f"search has {ctx.batch_size} videos and {len(self.words)} words; bind its inputs")
        bonus = per_video.to(ctx.device)[ctx.video_index()]  # (N, V)
        return ConceptState(bonus, torch.zeros(ctx.num_rows, self.num_groups, dtype=torch.bool, device=ctx.device))

    def score(self, tokens: Tensor, state: ConceptState) -> tuple[Tensor, ConceptState]:
        """Scores (N, V) of the next word after prefixes ``tokens`` (N, t) long."""
        scores, used = first_mention_scores(tokens, state.bonus, state.used, self.groups)
        return scores, ConceptState(state.bonus, used)

    def select_state(self, state: ConceptState, idx: Tensor) -> ConceptState:
        """Rows ``idx`` (N,) long of the state."""
        return ConceptState(state.bonus[idx], state.used[idx])


def visual_scorer(words: Sequence[str] | Any, negative_scale: float = 1.0) -> ConceptScorer:
    """The visual-noun verifier over the committed concept links (the frame CNN's ImageNet posteriors)."""
    return ConceptScorer(words, ConceptEvidence(default_links(), VISUAL_SOURCES), negative_scale=negative_scale)


def _build_visual(parts: ScorerParts) -> ConceptScorer:
    return visual_scorer(parts.vocab, parts.config.visual_negative_scale)


VISUAL_SPEC = ScorerSpec(
    name="visual", label="seen", build=_build_visual, weight="visual_weight", inputs=("records",),
    ablation="visual_off", slider=True,
    settings=(
        Setting("visual_weight", float, 0.0, "weight of the visual-noun verifier: the frame CNN's ImageNet "
                "posteriors for the caption's linked words (0 = off)", metavar="GAMMA", minimum=0.0, scale=5.0,
                step=0.1),
        Setting("visual_negative_scale", float, 1.0, "share of the visual verifier's evidence against a word that "
                "is kept (0: support only)", metavar="S", minimum=0.0, maximum=1.0),
    ),
)
