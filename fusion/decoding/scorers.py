"""The scorers ``"caption"`` (the S2VT model's next-word log-probabilities) and ``"length"``
(a constant bonus per emitted token), with their declarations (:data:`CAPTION_SPEC`, :data:`LENGTH_SPEC`).

The ``"lm"`` scorer lives in ``fusion/decoding/lm_scorer.py`` and the ``"audio"`` scorer in
``fusion/decoding/audio_scorer.py``; all follow :class:`fusion.decoding.scorer.Scorer` and
are listed in :mod:`fusion.decoding.registry`.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

from fusion.decoding.scorer import DecodeContext
from fusion.decoding.spec import BatchInputs, ScorerParts, ScorerSpec, Setting
from fusion.errors import ConfigError


class StepModel(Protocol):
    """What the caption scorer needs from a captioner (``fusion.models.s2vt.S2VT``)."""

    vocab_size: int

    def encode(self, batch: Any) -> Any:
        """Encoding phase over a batch of B videos; returns the decoder state for B rows."""
        ...

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        """tokens long (N,) -> (log_probs float (N, V), new state)."""
        ...

    def select_state(self, state: Any, idx: Tensor) -> Any:
        """Rows ``idx`` long (N',) of the state."""
        ...


class CaptionScorer:
    """The captioner as scorer ``"caption"``: ``log p(w_t | video, w_<t)``.

    Holds the model batch of the ``batch_size`` videos (``batch``, or per search through
    :meth:`with_inputs`), runs the encoding phase once and repeats each video's state over its beams.

    Args:
        model: a step-wise captioner (``S2VT``), used in eval mode under ``no_grad``.
        batch: the model batch of the videos to decode (``fusion.data.Batch``).
    """

    def __init__(self, model: StepModel, batch: Any | None = None) -> None:
        self.model = model
        self.batch = batch

    def with_inputs(self, inputs: BatchInputs) -> CaptionScorer:
        """This captioner holding ``inputs.batch``."""
        return CaptionScorer(self.model, inputs.batch)

    @property
    def vocab_size(self) -> int:
        """V, the width of the scores."""
        return int(self.model.vocab_size)

    @torch.no_grad()
    def init_state(self, ctx: DecodeContext) -> Any:
        """Encode the batch (B rows) and expand to N = B * K rows."""
        if self.batch is None:
            raise ConfigError("the caption scorer holds no batch: build it as CaptionScorer(model, batch)")
        state = self.model.encode(self.batch)
        return self.model.select_state(state, ctx.video_index())

    @torch.no_grad()
    def score(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        """Next-word log-probs (N, V) given the prefixes ``tokens`` (N, t) long."""
        return self.model.step(tokens[:, -1], state)

    def select_state(self, state: Any, idx: Tensor) -> Any:
        """Rows ``idx`` (N,) long of the decoder state."""
        return self.model.select_state(state, idx)


class LengthScorer:
    """Scorer ``"length"``: +1 for every emitted token, EOS included.

    With weight ``w`` a caption of ``L`` words gains ``w * (L + 1)``: a positive weight
    counters the beam search's preference for short captions (ESPnet ``LengthBonus``).

    Args:
        vocab_size: V, the width of the scores.
    """

    def __init__(self, vocab_size: int) -> None:
        if vocab_size < 1:
            raise ConfigError(f"vocab_size={vocab_size} is invalid for the length scorer: give V >= 1")
        self.vocab_size = vocab_size

    def init_state(self, ctx: DecodeContext) -> None:
        """Stateless."""
        return None

    def score(self, tokens: Tensor, state: None) -> tuple[Tensor, None]:
        """Ones (N, V) float32 on ``tokens``' device."""
        return torch.ones(tokens.shape[0], self.vocab_size, device=tokens.device), None

    def select_state(self, state: None, idx: Tensor) -> None:
        """Stateless."""
        return None


def _caption(parts: ScorerParts) -> CaptionScorer:
    return CaptionScorer(parts.model)


def _length(parts: ScorerParts) -> LengthScorer:
    return LengthScorer(len(parts.vocab))


CAPTION_SPEC = ScorerSpec(name="caption", label="S2VT (caption)", build=_caption, inputs=("batch",))
LENGTH_SPEC = ScorerSpec(
    name="length", label="length", build=_length, weight="length_weight",
    settings=(Setting("length_weight", float, 0.0, "weight of the per-token length bonus (0 = off)", metavar="W"),),
)
