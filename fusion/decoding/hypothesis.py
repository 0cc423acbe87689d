"""A finished caption hypothesis with its per-scorer score breakdown."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Hypothesis:
    """One finished caption of the beam search.

    Attributes:
        tokens: the word ids, without BOS and EOS.
        words: the caption text (the vocabulary's decoding of ``tokens``; the ids joined by
            spaces when the search had no vocabulary).
        score: the ranking score: ``total / (len(tokens) + 1)`` with length normalisation
            (the ``+ 1`` counts the EOS step, which is scored too), else ``total``.
        scores: per scorer, the unweighted sum of its log-domain scores over every step
            (EOS included) plus its ``final_score``. ``sum(weights[s] * scores[s])`` is
            ``total``, which is how a user sees why a caption won.
        total: the fused, unnormalised score.
        weights: the weights of the search that produced it (scorers of weight 0 absent).
    """

    tokens: list[int]
    words: str
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    total: float = 0.0
    weights: dict[str, float] = field(default_factory=dict)

    @property
    def length(self) -> int:
        """Number of scored steps: the words plus the EOS."""
        return len(self.tokens) + 1

    def weighted_scores(self) -> dict[str, float]:
        """Per scorer, its contribution ``weights[s] * scores[s]`` to ``total``."""
        return {name: self.weights.get(name, 0.0) * value for name, value in self.scores.items()}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: caption, ranking score, total, per-scorer raw and weighted."""
        return {
            "caption": self.words,
            "score": self.score,
            "total": self.total,
            "scores": dict(self.scores),
            "weighted": self.weighted_scores(),
            "weights": dict(self.weights),
            "tokens": list(self.tokens),
        }
