"""A language model bound to a caption vocabulary: what late fusion asks of an LM.

The caption decoder speaks the caption vocabulary; a language model has its own (an LSTM LM's
word list, a Hugging Face model's subwords). :class:`BoundLM` is the small interface the
beam-search scorer :class:`fusion.decoding.lm_scorer.LMScorer` steps: consume one caption word
per row, return the next caption word's log-probabilities, reorder rows with the beam.
:class:`BoundLSTM` binds a :class:`~fusion.models.lm.WordLM`; the Hugging Face adapter binds in
:mod:`fusion.models.hf_lm`. :func:`bind_lm` picks the binding for any LM.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import torch
from torch import Tensor

from fusion.models.lm import LSTMState, WordLM, vocab_map
from fusion.text import Vocabulary

logger = logging.getLogger(__name__)

# Log score of a token the LM can never produce (<pad>, <bos>). Finite so that weighted
# sums and differences never make NaN; exp(-1e4) is 0 in float32 anyway.
LOG_ZERO = -1.0e4


class BoundLM(Protocol):
    """A language model bound to a caption vocabulary (V caption words)."""

    def init_state(self, num_rows: int, device: torch.device | str) -> Any:
        """State of ``num_rows`` empty prefixes (before ``<bos>``)."""
        ...

    def step(self, prev: Tensor, state: Any) -> tuple[Tensor, Any]:
        """Consume caption ids ``prev`` (N,) long; return (N, V) float32 log-probs of the next caption word."""
        ...

    def select_state(self, state: Any, idx: Tensor) -> Any:
        """Reorder rows: new row i is old row ``idx[i]`` (idx (N,) long)."""
        ...


class BoundLSTM:
    """A :class:`~fusion.models.lm.WordLM` scoring a caption vocabulary.

    Args:
        lm: the trained LSTM LM (its own vocabulary).
        vocab: the caption model's vocabulary.
    """

    def __init__(self, lm: WordLM, vocab: Vocabulary) -> None:
        self.lm = lm
        self.vocab = vocab
        self.device = next(lm.model.parameters()).device
        self.to_lm = vocab_map(vocab, lm.vocab).to(self.device)  # (V,)
        self.impossible = torch.tensor([vocab.pad_id, vocab.bos_id], device=self.device)

    def init_state(self, num_rows: int, device: torch.device | str = "cpu") -> LSTMState:
        """Zero LSTM state, (h, c) each (layers, N, H)."""
        return self.lm.model.init_state(num_rows, self.device)

    @torch.no_grad()
    def step(self, prev: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        """See :class:`BoundLM`. Returns log-probs (N, V) on ``prev``'s device."""
        lm_log_probs, _, state = self.lm.model.step(self.to_lm[prev.to(self.device)], state)  # (N, V_lm)
        scores = lm_log_probs[:, self.to_lm].clamp_min(LOG_ZERO)  # (N, V)
        scores[:, self.impossible] = LOG_ZERO
        return scores.to(prev.device), state

    def select_state(self, state: LSTMState, idx: Tensor) -> LSTMState:
        """Reorder the rows of (h, c)."""
        idx = idx.to(self.device)
        return state[0][:, idx], state[1][:, idx]


def bind_lm(lm: Any, vocab: Vocabulary) -> BoundLM:
    """``lm`` bound to ``vocab``: a :class:`WordLM` as :class:`BoundLSTM`, anything else by its ``bind(vocab)``."""
    return BoundLSTM(lm, vocab) if isinstance(lm, WordLM) else lm.bind(vocab)
