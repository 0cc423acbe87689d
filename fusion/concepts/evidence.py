"""What a clip's posteriors say about linked caption words: log-odds evidence per word.

For a word linked to the classes ``L`` of a label space, a clip's posterior mass on them,
``m = sum_{c in L} p_c``, is compared with the mass a uniform head would give, ``|L| / C``:
``evidence = log-odds(m) - log-odds(|L| / C)`` (0 = the posteriors say nothing; > 0 supports the
word; < 0 contradicts it), averaged over the sources that link the word and clipped to
``[-clip, clip]``. It is the audio-noun verifier's zero-shot rule (:mod:`fusion.verifier.core`),
over any (modality, label space) source the record carries.

:func:`clip_posteriors` is the one place that reads a record's posteriors; a source the record
lacks (no audio stream, no AudioSet head) is ``None`` and gives no evidence, so a clip without an
audio stream gets ``None`` from the audio sources: no sound is ever claimed for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fusion.concepts.links import ConceptLinks

Source = tuple[str, str]  # (modality, label space)
VISUAL_SOURCES: tuple[Source, ...] = (("frames", "imagenet"),)
AUDIO_SOURCES: tuple[Source, ...] = (("audio", "imagenet"), ("audio", "places2"), ("audio", "audioset"))
DEFAULT_CLIP = 3.0  # |evidence| cap, as the audio-noun verifier's: one word never outweighs a caption
_EPS = 1e-6


def clip_posteriors(record: Any) -> dict[Source, np.ndarray]:
    """A feature record's time-pooled class posteriors per (modality, label space).

    Reads ``record.posteriors`` (``"frames/imagenet"``: the frame CNN; ``"audio/imagenet"``,
    ``"audio/places2"``: SoundNet; ``"audio/audioset"``: YAMNet, where extraction ran it). A
    record without audio has no audio posteriors, whatever it carries.
    """
    out: dict[Source, np.ndarray] = {}
    for key, value in (getattr(record, "posteriors", None) or {}).items():
        modality, _, space = key.partition("/")
        if value is not None and not (modality == "audio" and getattr(record, "audio", None) is None):
            out[(modality, space)] = value
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


class ConceptEvidence:
    """Evidence for linked words from some (modality, label space) sources.

    Args:
        links: the concept-link table.
        sources: which posteriors count (:data:`VISUAL_SOURCES`, :data:`AUDIO_SOURCES`).
        clip: evidence is clipped to ``[-clip, clip]``.
    """

    def __init__(self, links: ConceptLinks, sources: Sequence[Source], clip: float = DEFAULT_CLIP) -> None:
        self.links = links
        self.sources = tuple(s for s in sources if s[1] in links.spaces)
        self.clip = float(clip)
        self.keys = [k for k, e in links.entries.items() if any(s[1] in e.links for s in self.sources)]
        self.matrices = {s: links.link_matrix(self.keys, s[1]) for s in self.sources}  # (K, C) each

    def evidence(self, record: Any) -> dict[str, float] | None:
        """Word key -> evidence in ``[-clip, clip]`` for the words some present source links;
        None when none of the sources is present (e.g. the audio sources of a clip without audio)."""
        posteriors = clip_posteriors(record) if record is not None else {}
        total = np.zeros(len(self.keys), dtype=np.float64)  # (K,)
        count = np.zeros(len(self.keys), dtype=np.float64)  # (K,) sources linking each key
        present = False
        for source, matrix in self.matrices.items():
            probs = posteriors.get(source)
            if probs is None or matrix.shape[1] != len(probs):
                continue
            present = True
            linked = matrix.sum(1)  # (K,) classes linked per key
            mass = matrix @ np.asarray(probs, dtype=np.float32)  # (K,)
            has = linked > 0
            prior = np.where(has, linked / matrix.shape[1], 0.5)
            total += np.where(has, _logit(mass) - _logit(prior), 0.0)
            count += has
        if not present:
            return None
        values = np.clip(total / np.maximum(count, 1), -self.clip, self.clip)
        return {k: float(v) for k, v, c in zip(self.keys, values, count) if c > 0}

    def top_classes(self, record: Any, key: str, k: int = 2) -> list[tuple[str, str, float]]:
        """The ``k`` most probable linked classes behind a word: ``[(source "modality/space", class, prob)]``."""
        entry = self.links.entries.get(key)
        posteriors = clip_posteriors(record)
        found = []
        for source in self.sources:
            probs = posteriors.get(source)
            ids = entry.links.get(source[1], ()) if entry is not None else ()
            if probs is None or not ids:
                continue
            for i in ids:
                found.append((f"{source[0]}/{source[1]}", self.links.class_names(source[1], [i])[0], float(probs[i])))
        return sorted(found, key=lambda x: -x[2])[:k]
