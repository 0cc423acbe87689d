"""Systems the harness can score: a trained (or zero-shot) run decoded as ``fusion caption`` would,
and the constant captions.

A system is a ``CaptionFn``: feature records in, one caption per record out
(:mod:`fusion.realeval.harness`). A run goes through :class:`fusion.pipeline.CaptionPipeline`
exactly as ``fusion caption`` does, the unfamiliarity annotation included (the audio-noun
verifier abstains on a clip its run finds unfamiliar), but from the cached records, so the
audio ablation can hand it the same clips without their sound.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fusion.realeval.harness import CaptionFn

if TYPE_CHECKING:
    from fusion.features import ExtractConfig, FeatureRecord
    from fusion.pipeline import CaptionPipeline
    from fusion.zeroshot.pipeline import ZeroShotPipeline

logger = logging.getLogger(__name__)


def constant_system(caption: str) -> CaptionFn:
    """The same caption for every clip."""
    def caption_fn(records: Sequence[FeatureRecord]) -> list[str]:
        return [caption] * len(records)

    return caption_fn


def open_run(model_path: str | Path, device: str = "cpu", **overrides: Any) -> CaptionPipeline | ZeroShotPipeline:
    """A model folder (a trained run or a zero-shot model) loaded once, as ``fusion caption --model``
    opens it (``overrides``: decode settings); nothing is written into the folder."""
    from fusion.zeroshot.pipeline import open_pipeline

    return open_pipeline(model_path, device=device, compute_profile=False, **overrides)


def run_extract_config(pipeline: CaptionPipeline | ZeroShotPipeline) -> ExtractConfig:
    """The extraction config the model reads its features with (load the dev set with it)."""
    return pipeline.extractor.config


def run_system(pipeline: CaptionPipeline | ZeroShotPipeline, options: Any = None) -> CaptionFn:
    """The model's best caption per record, as ``fusion caption`` would give it.

    Args:
        pipeline: the loaded model (:func:`open_run`).
        options: decode settings (a DecodeConfig, or a ZeroShotConfig for a zero-shot model);
            None = its own; or a mapping clip id -> settings (e.g. the settings each
            leave-one-out fold chose for its held-out clip; other clips get the model's own).
    """
    from fusion.ood import annotate

    def caption_fn(records: Sequence[FeatureRecord]) -> list[str]:
        ready = []
        for record in records:
            copy = dataclasses.replace(record, meta=dict(record.meta))  # the cached record stays as it was
            annotate(pipeline.knowledge.profile, copy)
            ready.append(copy)
        per_clip = options if isinstance(options, Mapping) else {}
        groups: dict[int, list[int]] = {}
        settings: dict[int, Any] = {}
        for n, record in enumerate(ready):
            chosen = per_clip.get(record.id, None if per_clip else options)
            groups.setdefault(id(chosen), []).append(n)
            settings[id(chosen)] = chosen
        captions = [""] * len(ready)
        for key, rows in groups.items():  # one batched decode per distinct setting
            for n, nbest in zip(rows, pipeline.decode([ready[n] for n in rows], settings[key])):
                captions[n] = nbest[0].words if nbest else ""
        return captions

    return caption_fn
