"""Concept inputs synthesised from a caption, with noise shaped like real posteriors.

The S2VT from text reads, per clip, the concept evidence of the frames (one value per linked
word key, :class:`fusion.concepts.ConceptEvidence` over the frame CNN's ImageNet posteriors) and
of the sound (over SoundNet's and, where present, AudioSet's posteriors). To train it on text
alone, each corpus caption gets such an input drawn at random:

- a key the caption names (through the concept-link table) takes a value drawn from the
  evidence real clips give keys *their references name*: with real detectors that pool holds
  the hits and the misses, in their real proportion;
- every other key takes a value drawn from the evidence real clips give keys their
  references *do not* name: the spread of the background and its distractors (the strong
  values of things that are not there) in their real proportion.

Those two pools (:class:`EvidencePools`) are measured on real media with references that the
clips being scored never contribute to (:func:`measure_pools`): other development clips
(a cross-fitting fold) for the frames, labelled real recordings (ESC-10) for the sound.
A share of the captions gets no audio input at all, as a clip without an audio stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fusion.errors import DataError
from fusion.text import tokenize

logger = logging.getLogger(__name__)

MODALITIES: tuple[str, ...] = ("visual", "audio")


@dataclass
class EvidencePools:
    """Real evidence values per modality: on keys the references name, and on the other keys.

    Attributes:
        named: modality -> (n,) float32 values of keys the clip's references name.
        other: modality -> (m,) float32 values of keys they do not name.
        sources: modality -> where the values were measured (for the model card).
    """

    named: dict[str, np.ndarray]
    other: dict[str, np.ndarray]
    sources: dict[str, str]

    def describe(self) -> dict[str, Any]:
        """Counts and shape of each pool (JSON-able)."""
        out: dict[str, Any] = {}
        for m in self.named:
            named, other = self.named[m], self.other[m]
            out[m] = {"source": self.sources.get(m, ""), "named_values": len(named), "other_values": len(other),
                      "named_mean": float(named.mean()), "named_positive": float((named > 0).mean()),
                      "other_mean": float(other.mean()), "other_above_1": float((other > 1).mean())}
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (values as lists)."""
        return {"named": {m: v.tolist() for m, v in self.named.items()},
                "other": {m: v.tolist() for m, v in self.other.items()}, "sources": dict(self.sources)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvidencePools:
        """Inverse of :meth:`to_dict`."""
        return cls({m: np.asarray(v, np.float32) for m, v in data["named"].items()},
                   {m: np.asarray(v, np.float32) for m, v in data["other"].items()}, dict(data.get("sources", {})))


def named_keys(sentences: Iterable[str], key_of: Callable[[str], str | None]) -> set[str]:
    """The concept keys the sentences' words belong to."""
    return {k for s in sentences for w in tokenize(s) if (k := key_of(w)) is not None}


def measure_pools(items: Sequence[tuple[Any, Sequence[str]]], evidence: Callable[[Any], Mapping[str, float] | None],
                  key_of: Callable[[str], str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Evidence values of one modality on real clips: (on named keys, on the others).

    Args:
        items: (feature record, its reference sentences or label names) per real clip.
        evidence: record -> key -> evidence (None: the modality is absent; the clip is skipped).
        key_of: caption word -> concept key.

    Returns:
        Two float32 arrays, (n,) and (m,). DataError when no clip gives evidence.
    """
    named, other = [], []
    for record, refs in items:
        values = evidence(record)
        if not values:
            continue
        keys = named_keys(refs, key_of)
        named += [v for k, v in values.items() if k in keys]
        other += [v for k, v in values.items() if k not in keys]
    if not named or not other:
        raise DataError(f"no evidence on the {len(items)} real clips given; they need posteriors and references")
    return np.asarray(named, np.float32), np.asarray(other, np.float32)


class Synthesizer:
    """Draws concept inputs for captions from :class:`EvidencePools`.

    Args:
        pools: the measured pools (both modalities).
        keys: modality -> the input's keys, in input order.
        key_of: caption word -> concept key.
        audio_absent_rate: share of captions synthesised without audio.
    """

    def __init__(self, pools: EvidencePools, keys: Mapping[str, Sequence[str]], key_of: Callable[[str], str | None],
                 audio_absent_rate: float = 0.3) -> None:
        missing = [m for m in MODALITIES if m not in pools.named]
        if missing:
            raise DataError(f"evidence pools lack the {missing[0]} modality; measure it before training")
        self.pools, self.key_of, self.audio_absent_rate = pools, key_of, audio_absent_rate
        self.keys = {m: list(keys[m]) for m in MODALITIES}
        self.index = {m: {k: i for i, k in enumerate(self.keys[m])} for m in MODALITIES}

    def _draw(self, modality: str, caption_keys: set[str], rng: np.random.Generator) -> np.ndarray:
        """(K,) float32: background values, and named values at the caption's keys."""
        values = rng.choice(self.pools.other[modality], size=len(self.keys[modality])).astype(np.float32)  # (K,)
        idx = [i for k in caption_keys if (i := self.index[modality].get(k)) is not None]
        if idx:
            values[idx] = rng.choice(self.pools.named[modality], size=len(idx))
        return values

    def sample(self, caption: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        """One synthetic input: visual (Kv,) float32 and audio (Ka,) float32 or None (no audio stream)."""
        keys = named_keys([caption], self.key_of)
        audio = None if rng.random() < self.audio_absent_rate else self._draw("audio", keys, rng)
        return self._draw("visual", keys, rng), audio
