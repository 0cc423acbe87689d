"""The real-clip development harness: load the clips once, score systems side by side.

A *system* here is anything that turns the clips' feature records into one caption per clip
(``CaptionFn``); its captions are scored by :func:`fusion.realeval.metrics.score_clips` and
compared with each baseline by paired bootstrap intervals (:func:`fusion.realeval.stats.paired`).

Typical use (``scripts/zeroshot_real_clips.py`` does it for every system)::

    dev = load_devset("runs/devclips/manifest.jsonl")          # python -m data_prep.devclips
    scores = {name: score_clips(caption_all(fn, dev), dev.references, lexicon) for name, fn in systems}
    report = compare_systems(scores, dev, baselines=["blind LM", "constant"])
    on, off = audio_ablation(fn, dev)                          # audio evidence on vs off

Features are cached once per clip in a feature store beside the manifest
(``<manifest dir>/features/<encoders>-<fingerprint>/``, made by the usual extraction stage):
frame CNN ImageNet posteriors, SoundNet ImageNet and Places2 posteriors and, by default, YAMNet's
AudioSet posteriors (:func:`dev_extract_config`); a model with its own extraction settings gets
its own store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fusion.ablation import without_audio
from fusion.errors import DataError
from fusion.realeval.metrics import CLIP_METRICS, NOUN_PRECISION, ClipScores
from fusion.realeval.stats import paired

if TYPE_CHECKING:
    from fusion.features import ExtractConfig, FeatureRecord
    from fusion.manifest import ManifestEntry

logger = logging.getLogger(__name__)

CaptionFn = Callable[[Sequence["FeatureRecord"]], list[str]]
PAIRED_METRICS: tuple[str, ...] = (*CLIP_METRICS, NOUN_PRECISION)
SUBSETS: tuple[str, ...] = ("all", "with_audio", "without_audio")


@dataclass
class DevSet:
    """The development clips with their references and cached feature records.

    Attributes:
        entries: the manifest entries (``meta["has_audio"]`` from the file's headers).
        records: clip id -> feature record.
    """

    entries: list[ManifestEntry]
    records: dict[str, FeatureRecord]

    @property
    def ids(self) -> list[str]:
        """Clip ids in manifest order."""
        return [e.id for e in self.entries]

    @property
    def references(self) -> dict[str, list[str]]:
        """clip id -> reference captions."""
        return {e.id: list(e.captions) for e in self.entries}

    def subset(self, name: str) -> list[str]:
        """``all``, ``with_audio`` (clips whose record has sound) or ``without_audio``."""
        if name not in SUBSETS:
            raise DataError(f"unknown clip subset {name!r}; use one of {', '.join(SUBSETS)}")
        if name == "all":
            return self.ids
        want = name == "with_audio"
        return [i for i in self.ids if self.records[i].has_audio == want]

    def ordered_records(self) -> list[FeatureRecord]:
        """The records in manifest order."""
        return [self.records[i] for i in self.ids]


def dev_extract_config() -> ExtractConfig:
    """The default extraction of the development clips: the default encoders (frame CNN ImageNet,
    SoundNet ImageNet + Places2) plus YAMNet's AudioSet posteriors of the sound, where this
    installation registers YAMNet as an audio encoder."""
    from fusion.encoders.registry import AUDIO_ENCODERS
    from fusion.features import ExtractConfig

    if "yamnet" in AUDIO_ENCODERS.names():
        return ExtractConfig(extra_audio_encoders={"yamnet": None})
    return ExtractConfig()


def load_devset(manifest: str | Path, store: str | Path | None = None, extract: ExtractConfig | None = None,
                *, progress: bool = True) -> DevSet:
    """Load the development manifest and its feature records, extracting the missing ones once.

    Args:
        manifest: the manifest written by ``python -m data_prep.devclips``.
        store: the feature store; default beside the manifest (see the module docstring).
        extract: the extraction config; default :func:`dev_extract_config`.
        progress: tqdm bar while extracting.

    Returns:
        The :class:`DevSet`. Raises DataError for a clip that cannot be read.
    """
    from fusion.data import feature_store_path
    from fusion.features import ensure_features
    from fusion.manifest import load_manifest

    entries = load_manifest(manifest)
    extract = extract or dev_extract_config()
    path = feature_store_path(manifest, extract, store)
    opened = ensure_features(entries, path, extract, progress=progress)
    records = {e.id: opened[e.id] for e in entries}
    logger.info("development set: %d clips (%d with audio), features in %s", len(entries),
                sum(r.has_audio for r in records.values()), path)
    return DevSet(entries=entries, records=records)


def caption_all(caption_fn: CaptionFn, records: Sequence[FeatureRecord]) -> dict[str, str]:
    """clip id -> caption of ``caption_fn`` over the records (DataError if counts differ)."""
    captions = caption_fn(records)
    if len(captions) != len(records):
        raise DataError(f"the system returned {len(captions)} captions for {len(records)} clips")
    return {r.id: c for r, c in zip(records, captions)}


def audio_ablation(caption_fn: CaptionFn, dev: DevSet) -> tuple[dict[str, str], dict[str, str]]:
    """Captions with the audio evidence on and off (every clip as if it had no audio stream).

    Clips without audio get the same input both times, so both caption sets cover every clip
    and score under the same CIDEr IDF; compare them on ``dev.subset("with_audio")``.

    Returns:
        (captions with audio, captions without): clip id -> caption each.
    """
    records = dev.ordered_records()
    return caption_all(caption_fn, records), caption_all(caption_fn, [without_audio(r) for r in records])


def compare(system: ClipScores, baseline: ClipScores, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """metric -> :func:`fusion.realeval.stats.paired` of ``system - baseline`` on ``ids``."""
    return {m: paired(system.values(m, ids), baseline.values(m, ids), ids) for m in PAIRED_METRICS}


def ablation_summary(on: ClipScores, off: ClipScores, dev: DevSet) -> dict[str, Any]:
    """Audio on vs off on the clips with sound: both summaries, paired ``on - off``, captions changed."""
    ids = dev.subset("with_audio")
    return {"on": on.summary(ids), "off": off.summary(ids), "paired": compare(on, off, ids),
            "changed": sum(on.predictions[i] != off.predictions[i] for i in ids)}


def compare_systems(scores: Mapping[str, ClipScores], dev: DevSet, baselines: Sequence[str]) -> dict[str, Any]:
    """Every system's means per subset, and its paired intervals against each baseline.

    Args:
        scores: system name -> its :class:`ClipScores` on every development clip.
        dev: the development set (for the subsets).
        baselines: names in ``scores`` that every other system is compared with.

    Returns:
        ``{"systems": {name: {"summary": {subset: means}, "corpus": {...}, "per_clip": {...},
        "predictions": {...}}}, "paired": {name: {baseline: {metric: interval}}}}``; the
        paired intervals are over all clips.
    """
    unknown = [b for b in baselines if b not in scores]
    if unknown:
        raise DataError(f"baseline {unknown[0]!r} was not scored; known systems: {', '.join(scores)}")
    systems = {
        name: {"summary": {s: sc.summary(dev.subset(s)) for s in SUBSETS}, "corpus": sc.corpus,
               "per_clip": sc.per_clip, "predictions": sc.predictions,
               "nouns": {i: {"nouns": m.nouns, "found": m.found} for i, m in sc.nouns.items()}}
        for name, sc in scores.items()
    }
    pairs = {name: {b: compare(sc, scores[b], dev.ids) for b in baselines if b != name}
             for name, sc in scores.items()}
    return {"systems": systems, "paired": pairs}
