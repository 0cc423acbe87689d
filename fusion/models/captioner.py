"""What training, validation and the beam search use of a captioner, written once.

A captioner (:class:`~fusion.models.s2vt.S2VT`, :class:`~fusion.models.deep_fusion.DeepFusionS2VT`)
defines two things: ``encode(batch)``, the state the decoding phase starts from, and
``_decode(words, state)``, the logits over given previous words. :class:`CaptionDecoder` builds
on them the teacher-forced ``forward``, the one-word ``step`` the beam search calls, greedy
decoding and the row bookkeeping of a beam (``select_state``, ``expand_state``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from fusion.data import Batch

logger = logging.getLogger(__name__)


class RowState(Protocol):
    """A decoding state of N rows."""

    @property
    def num_rows(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    def index_select(self, idx: Tensor) -> Any:
        """Rows ``idx`` (long (N',)) in that order."""
        ...


class CaptionDecoder(nn.Module):
    """Base of the captioners: ``forward``, ``step``, ``greedy`` and beam bookkeeping from
    the subclass's ``encode`` and ``_decode``."""

    def encode(self, batch: Batch) -> Any:
        """The state (N = B rows) after the encoding phase."""
        raise NotImplementedError

    def _decode(self, words: Tensor, state: Any) -> tuple[Tensor, Any]:
        """Logits float32 (N, L, V) over previous words ``words`` long (N, L) (BOS first), and the state after them."""
        raise NotImplementedError

    def forward(self, batch: Batch) -> Tensor:
        """Teacher-forced logits.

        Args:
            batch: ``batch.tokens`` long (B, L) = BOS w1 ... EOS PAD...

        Returns:
            float32 (B, L-1, V) logits; position t predicts ``batch.tokens[:, t + 1]``.
        """
        logits, _ = self._decode(batch.tokens[:, :-1], self.encode(batch))
        return logits

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        """One decoding step.

        Args:
            tokens: long (N,) the previous word of each row (BOS at the start).
            state: the rows' state.

        Returns:
            log_probs float32 (N, V) over the next word, and the new state.
        """
        logits, state = self._decode(tokens[:, None], state)  # (N, 1, V)
        return F.log_softmax(logits[:, 0], -1), state

    @staticmethod
    def select_state(state: RowState, idx: Tensor) -> Any:
        """Reorder / select rows after beam pruning (``idx`` long (N',) into the N rows)."""
        return state.index_select(idx)

    @staticmethod
    def expand_state(state: RowState, beam_size: int) -> Any:
        """Repeat each row ``beam_size`` times: row ``b * beam_size + k`` is video b's beam k."""
        idx = torch.arange(state.num_rows, device=state.device).repeat_interleave(beam_size)
        return state.index_select(idx)

    @torch.no_grad()
    def greedy(self, batch: Batch, bos_id: int, eos_id: int, max_len: int = 20) -> list[list[int]]:
        """Greedy decoding (argmax each step); returns the word ids per video, EOS excluded."""
        state = self.encode(batch)
        n = state.num_rows
        tokens = torch.full((n,), bos_id, dtype=torch.long, device=state.device)
        out: list[list[int]] = [[] for _ in range(n)]
        done = torch.zeros(n, dtype=torch.bool, device=tokens.device)
        for _ in range(max_len):
            log_probs, state = self.step(tokens, state)
            tokens = log_probs.argmax(-1)  # (N,)
            for i in (~done).nonzero()[:, 0].tolist():
                if tokens[i].item() != eos_id:
                    out[i].append(int(tokens[i]))
            done |= tokens == eos_id
            if bool(done.all()):
                break
        return out
