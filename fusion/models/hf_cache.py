"""The Hugging Face LM scorer's key/value cache: per-row state, padding and compaction.

:class:`~fusion.models.hf_lm.BoundHF` keeps, for every beam row, the model's key/value cache
of the row's subword prefix (:class:`HFState`). The model's cache object changes between
``transformers`` versions, so the state holds plain per-layer (key, value) tensors and
:func:`to_model_cache` / :func:`from_model_cache` convert at each call.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from fusion.errors import WeightsError

logger = logging.getLogger(__name__)

KVCache = list[tuple[Tensor, Tensor]]  # one (key, value) per layer, each (N, heads, S, head_dim)


def cache_argument_name(model: Any) -> str:
    """The name of the forward argument and of the output field that carry the cache
    (``past_key_values`` before transformers 5)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def to_model_cache(past: KVCache) -> Any:
    """Our per-layer (key, value) tensors as the model's cache object."""
    from transformers import DynamicCache

    if hasattr(DynamicCache, "from_legacy_cache"):
        return DynamicCache.from_legacy_cache(tuple(past))
    return DynamicCache(ddp_cache_data=past)


def from_model_cache(cache: Any) -> KVCache:
    """The model's cache object as per-layer (key, value) tensors."""
    if cache is None:
        raise WeightsError("the Hugging Face model returned no key/value cache; use HFWordLM(use_cache=False)")
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    if hasattr(cache, "key_cache"):
        return list(zip(cache.key_cache, cache.value_cache))
    return [(k, v) for k, v, *_ in cache]


@dataclass
class HFState:
    """What :class:`~fusion.models.hf_lm.BoundHF` remembers of N rows.

    Attributes:
        prefixes: the subword ids each row has consumed (BOS first).
        past: the key/value cache of those subwords over S slots (None before the first
            step and without the cache); a row's padding slots are masked out.
        mask: long (N, S) on the CPU, 1 where a cache slot holds one of the row's subwords, or None.
        scores: float32 (N, V) the last step's caption-word log-probs (what a row that
            consumes no subword, an ``<unk>``, scores again), or None.
    """

    prefixes: list[list[int]]
    past: KVCache | None = None
    mask: Tensor | None = None
    scores: Tensor | None = None

    def select(self, idx: Tensor) -> HFState:
        """Rows ``idx`` (long (N',)) in that order."""
        rows = idx.tolist()
        prefixes = [list(self.prefixes[i]) for i in rows]
        if self.past is None or self.mask is None:
            return HFState(prefixes)
        past = [(k.index_select(0, idx.to(k.device)), v.index_select(0, idx.to(v.device))) for k, v in self.past]
        scores = None if self.scores is None else self.scores.index_select(0, idx.to(self.scores.device))
        return HFState(prefixes, past, self.mask.index_select(0, idx.cpu()), scores)


def pad(seqs: list[list[int]]) -> tuple[Tensor, Tensor]:
    """Right-padded ids and mask, long (B, W) each."""
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def compact(past: KVCache, mask: Tensor) -> tuple[KVCache, Tensor]:
    """The cache with each row's real slots moved to the front, in order, and the padding
    slots no row needs dropped: (past, mask) over max(real slots per row) slots.

    Attention ignores masked slots and each key carries its own position, so this changes no
    score; it keeps the cache as short as the longest prefix instead of growing by the
    widest row at every step.
    """
    counts = mask.sum(1)  # (N,)
    width = int(counts.max())
    if width == mask.shape[1]:
        return past, mask
    order = torch.sort((mask == 0).to(torch.int8), dim=1, stable=True).indices[:, :width]  # (N, width) real first
    compact = []
    for key, value in past:
        idx = order.to(key.device)[:, None, :, None].expand(-1, key.shape[1], -1, key.shape[3])
        compact.append((key.gather(2, idx), value.gather(2, idx)))
    return compact, (torch.arange(width)[None] < counts[:, None]).long()


def positions(mask: Tensor, width: int) -> Tensor:
    """Position ids (N, width) of the last ``width`` slots: real subwords before each slot."""
    return (mask.cumsum(1) - 1).clamp(min=0)[:, -width:]
