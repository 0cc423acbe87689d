"""A scorer added from outside the package, as docs/ARCHITECTURE.md says: this one file plus one ``register``.

Scorer ``"hint"``: each video's feature record may carry hint words (``record.meta["hints"]``,
e.g. a title's nouns); every hinted vocabulary word scores +1, every other word 0, so with
weight ``hint_weight`` the search leans towards naming them. It reads the feature records
per batch (``inputs=("records",)``) and holds them (``with_inputs``), as the audio scorer does.
Used by ``tests/test_scorer_registry.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor

from fusion.decoding.scorer import DecodeContext
from fusion.decoding.spec import BatchInputs, ScorerParts, ScorerSpec, Setting


class HintScorer:
    """+1 at the ids of each video's hint words (``record.meta["hints"]``).

    Args:
        words: the caption vocabulary's words in id order.
    """

    def __init__(self, words: Sequence[str]) -> None:
        self.words = list(words)
        self.hints: Tensor | None = None  # (B, V) float, held per search

    def with_inputs(self, inputs: BatchInputs) -> HintScorer:
        """This scorer holding the batch's hints (a record without hints, or no record: none)."""
        bound = copy.copy(self)
        bound.hints = torch.zeros(len(inputs.records), len(self.words))  # (B, V)
        index = {word: i for i, word in enumerate(self.words)}
        for b, record in enumerate(inputs.records):
            for word in (record.meta.get("hints", []) if record is not None else []):
                if word in index:
                    bound.hints[b, index[word]] = 1.0
        return bound

    def init_state(self, ctx: DecodeContext) -> Tensor:
        """(N, V) float: each row's video hints."""
        hints = self.hints if self.hints is not None else torch.zeros(ctx.batch_size, len(self.words))
        return hints.to(ctx.device)[ctx.video_index()]

    def score(self, tokens: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """The hints (N, V), whatever the prefix ``tokens`` (N, t)."""
        return state, state

    def select_state(self, state: Tensor, idx: Tensor) -> Tensor:
        """Rows ``idx`` (N,) long."""
        return state[idx]


def _build(parts: ScorerParts) -> HintScorer:
    return HintScorer(parts.vocab.words)


HINT_SPEC = ScorerSpec(
    name="hint", label="hint", build=_build, weight="hint_weight", inputs=("records",), ablation="hint_off",
    slider=True,
    settings=(Setting("hint_weight", float, 0.0, "weight of the per-video hint words (0 = off)", metavar="H",
                      minimum=0.0, scale=10.0),),
)
