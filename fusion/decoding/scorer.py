"""The scorer protocol of the beam search, and the context every scorer starts from.

A scorer contributes one log-domain score per vocabulary entry at every decoding step.
The beam search fuses scorers by a weighted sum, ``sum_s weights[s] * score_s``, so late
fusion is configuration: the caption model is the scorer ``"caption"``, a language model
is ``"lm"`` with weight alpha (shallow fusion), the audio-noun verifier is ``"audio"`` with
weight beta, and a length bonus is ``"length"``. A weight of 0 removes the scorer.

Anchor: ESPnet ``espnet/nets/scorer_interface.py`` (``init_state`` / ``score`` /
``select_state`` / ``final_score``), batched as in ``batch_beam_search.py``.

A scorer holds its own inputs: what it reads for the whole decoder (a model, a vocabulary)
it gets when it is built (:class:`fusion.decoding.spec.ScorerSpec`), what it reads per batch
of videos (the model batch, the feature records) through its optional
``with_inputs(inputs) -> Scorer`` (:func:`bind_inputs`), which returns a scorer holding
them. The search itself passes only its shape, :class:`DecodeContext`.

Row layout. The search runs ``N = batch_size * beam_size`` rows at once: row ``r`` is
beam ``r % beam_size`` of video ``r // beam_size`` (videos outer, beams inner). A scorer
that holds per-video inputs (features, audio evidence) expands them with
:meth:`DecodeContext.video_index` and reorders its rows in ``select_state``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import Tensor

if TYPE_CHECKING:
    from fusion.data import Batch
    from fusion.features import FeatureRecord


@dataclass
class DecodeContext:
    """The search's shape, what every scorer's ``init_state`` reads.

    Attributes:
        batch_size: number of videos decoded together (B).
        beam_size: beams per video (K); the search runs N = B * K rows.
        device: where scores live.
    """

    batch_size: int
    beam_size: int
    device: torch.device | str = "cpu"

    @property
    def num_rows(self) -> int:
        """N = batch_size * beam_size, the number of hypotheses scored at each step."""
        return self.batch_size * self.beam_size

    def video_index(self) -> Tensor:
        """The video of each row.

        Returns:
            Tensor (N,) long on ``device``: ``[0]*K + [1]*K + ...``; index a per-video
            tensor (B, ...) with it to get one row per hypothesis.
        """
        return torch.arange(self.batch_size, device=self.device).repeat_interleave(self.beam_size)


@dataclass(frozen=True)
class BatchInputs:
    """What the decoder holds for the B videos of one search; each spec's ``inputs`` names what it reads.

    Attributes:
        records: the B feature records (frames (T, Dv), audio (A, Da) or None, posteriors).
        batch: the padded model batch of the B videos (:class:`fusion.data.Batch`).
    """

    records: Sequence[FeatureRecord | None]
    batch: Batch | None = None


BATCH_INPUTS: tuple[str, ...] = tuple(f.name for f in fields(BatchInputs))  # what a spec's ``inputs`` may name


@runtime_checkable
class Scorer(Protocol):
    """One source of evidence for the next word. All scores are in the log domain."""

    def init_state(self, ctx: DecodeContext) -> Any:
        """State for the N = batch_size * beam_size rows before the first step."""
        ...

    def score(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        """Score every possible next token.

        Args:
            tokens: (N, t) long, each row's prefix, starting with BOS.
            state: this scorer's state for the N rows (after ``tokens[:, :-1]``).

        Returns:
            scores: (N, V) float, log-domain score of each next token.
            state: the state after consuming ``tokens[:, -1]``.
        """
        ...

    def select_state(self, state: Any, idx: Tensor) -> Any:
        """Reorder rows after pruning: new row ``i`` is old row ``idx[i]`` (idx (N,) long)."""
        ...


def bind_inputs(scorer: Scorer, inputs: BatchInputs) -> Scorer:
    """The scorer holding one batch's inputs: its ``with_inputs(inputs)``, or itself when it reads none."""
    with_inputs = getattr(scorer, "with_inputs", None)
    return with_inputs(inputs) if with_inputs is not None else scorer


def final_score_of(scorer: Scorer) -> Any:
    """The scorer's optional ``final_score(tokens, state) -> (N,)`` float, or None.

    The beam search calls it for hypotheses that end: ``tokens`` (N, t + 1) long are the
    prefixes with EOS appended, ``state`` the state after the prefix (before EOS). Its value
    is added to the scorer's sum on the hypothesis (weighted like every other score).
    """
    return getattr(scorer, "final_score", None)
