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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fusion.realeval.harness import CaptionFn

if TYPE_CHECKING:
    from fusion.decoding.config import DecodeConfig
    from fusion.features import ExtractConfig, FeatureRecord
    from fusion.pipeline import CaptionPipeline

logger = logging.getLogger(__name__)


def constant_system(caption: str) -> CaptionFn:
    """The same caption for every clip."""
    def caption_fn(records: Sequence[FeatureRecord]) -> list[str]:
        return [caption] * len(records)

    return caption_fn


def open_run(model_path: str | Path, device: str = "cpu", **overrides: Any) -> CaptionPipeline:
    """A run loaded once for captioning (``overrides``: decode settings, as ``fusion caption`` takes them)."""
    from fusion.pipeline import CaptionPipeline

    return CaptionPipeline(model_path, device=device, **overrides)


def run_extract_config(pipeline: CaptionPipeline) -> ExtractConfig:
    """The extraction config the run reads its features with (load the dev set with it)."""
    return pipeline.run.extract_config


def run_system(pipeline: CaptionPipeline, options: DecodeConfig | None = None) -> CaptionFn:
    """The run's best caption per record, as ``fusion caption`` would give it.

    Args:
        pipeline: the loaded run (:func:`open_run`).
        options: decode settings; None = the run's own.
    """
    from fusion.ood import annotate

    def caption_fn(records: Sequence[FeatureRecord]) -> list[str]:
        ready = []
        for record in records:
            copy = dataclasses.replace(record, meta=dict(record.meta))  # the cached record stays as it was
            annotate(pipeline.knowledge.profile, copy)
            ready.append(copy)
        return [nbest[0].words if nbest else "" for nbest in pipeline.decode(ready, options)]

    return caption_fn
