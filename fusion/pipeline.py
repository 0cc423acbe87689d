"""Trained run in, captions and metrics out: :class:`CaptionPipeline` and :func:`evaluate_run`.

``CaptionPipeline(model_path).caption(paths)`` loads the run, its encoders (the ones the
checkpoint names) and the fused scorers once, then captions raw video files: features on
the fly, one batched beam search, n-best captions with total and per-scorer scores. A
file that cannot be read gets an ``error`` instead of captions; the others go on.

``evaluate_run`` decodes one manifest split with a run (features extracted and cached in a
store as for training), scores it with coco-caption (plus the benchmark's judgements where
the manifest has them) and writes predictions, per-video scores and metrics beside the run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from fusion.checkpoint import run_folder
from fusion.decoding.decoder import CaptionDecoder, DecodeOptions
from fusion.decoding.hypothesis import Hypothesis
from fusion.errors import ConfigError, DataError, MediaError

logger = logging.getLogger(__name__)


@dataclass
class CaptionResult:
    """The captions of one file.

    Attributes:
        path: the video file.
        id: the file's id (its stem).
        hypotheses: n-best captions, best first (empty when ``error``).
        error: one line saying why the file could not be captioned, else None.
        audio_present: whether the file had an audio stream (None when unread).
        record: the feature record (for explanations), None when unread.
    """

    path: str
    id: str
    hypotheses: list[Hypothesis] = field(default_factory=list)
    error: str | None = None
    audio_present: bool | None = None
    record: Any = None

    @property
    def caption(self) -> str | None:
        """The best caption, or None."""
        return self.hypotheses[0].words if self.hypotheses else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: path, caption, audio_present, n-best with per-scorer scores, error."""
        out: dict[str, Any] = {"path": self.path, "id": self.id, "caption": self.caption,
                               "audio_present": self.audio_present, "nbest": [h.to_dict() for h in self.hypotheses]}
        if self.error is not None:
            out["error"] = self.error
        return out


class CaptionPipeline:
    """Caption raw video files with a trained run.

    Args:
        model_path: a run folder, checkpoint folder or ``model.safetensors``.
        options: decoding options; None = the run's stored decode config.
        device: torch device for the encoders and the captioner.
        **overrides: DecodeOptions fields overriding the run's (e.g. ``beam_size=3``).
    """

    def __init__(self, model_path: str | Path, options: DecodeOptions | None = None,
                 device: str | torch.device = "cpu", **overrides: Any) -> None:
        from fusion.checkpoint import load_run
        from fusion.features import FeatureExtractor

        self.run = load_run(model_path, device=device)
        self.options = options if options is not None else DecodeOptions.for_run(self.run, **overrides)
        self.extractor = FeatureExtractor(self.run.extract_config, device=device)
        self.decoder = CaptionDecoder(self.run, self.options, device=device)

    def caption(self, paths: Sequence[str | Path]) -> list[CaptionResult]:
        """Caption each file; unreadable files get ``error`` and the rest go on.

        Args:
            paths: video (or audio) files.

        Returns:
            One result per path, in order.
        """
        results = [CaptionResult(path=str(p), id=Path(p).stem) for p in paths]
        readable: list[CaptionResult] = []
        for res in results:
            try:
                res.record = self.extractor.extract(res.path, id=res.id)
            except MediaError as err:
                res.error = str(err)  # reported by the caller, once
                logger.info("cannot caption: %s", err)
                continue
            res.audio_present = res.record.audio is not None
            readable.append(res)
        if readable:
            hyps = self.decoder.decode([r.record for r in readable])
            for res, nbest in zip(readable, hyps):
                res.hypotheses = nbest
        return results


def default_eval_dir(checkpoint_dir: Path, split: str) -> Path:
    """``RUN/eval/<split>`` for a run's checkpoint, else ``<checkpoint>/eval/<split>``."""
    return run_folder(checkpoint_dir) / "eval" / split


def run_manifest_entries(run: Any, manifest: str | Path | None, split: str) -> tuple[Path, list[Any], list[Any]]:
    """(manifest path, split entries, train entries) of the manifest to evaluate on."""
    from fusion.manifest import load_manifest, split_entries

    path = manifest if manifest is not None else run.config.data.manifest
    if path is None:
        raise ConfigError("the run names no manifest: give --manifest M")
    entries = load_manifest(path)
    chosen = split_entries(entries, split)
    if not chosen:
        splits = sorted({e.split for e in entries})
        raise DataError(f"{path}: no videos in split {split!r} (it has {splits}); pick one with --split")
    return Path(path), chosen, split_entries(entries, "train")


def evaluate_run(
    run_path: str | Path,
    manifest: str | Path | None = None,
    split: str = "test",
    options: DecodeOptions | None = None,
    out_dir: str | Path | None = None,
    features: str | Path | None = None,
    device: str | torch.device = "cpu",
    **overrides: Any,
) -> dict[str, Any]:
    """Decode a manifest split with a run, score it, write the outputs.

    Args:
        run_path: run folder, checkpoint folder or model.safetensors.
        manifest: manifest to evaluate on; None = the run's training manifest.
        split: the split to decode ("test", "val", "train").
        options: decoding options; None = the run's decode config with ``overrides``.
        out_dir: where outputs go; None = ``RUN/eval/<split>``.
        features: feature store folder; None = the store beside the manifest (the run's own
            store when evaluating on the run's manifest).
        device: torch device.

    Returns:
        The metrics dict that ``fusion evaluate --json`` prints: Bleu_1..4, METEOR,
        ROUGE_L, CIDEr, n_videos, the benchmark's sound/visual judgements where available,
        ``diagnostics``, ``n_audio_absent``, the decoding ``weights``, ``out_dir``.
    """
    from fusion.checkpoint import load_run
    from fusion.data import open_features
    from fusion.evaluation import caption_diagnostics, score_predictions
    from fusion.io import atomic_write_json, atomic_write_text

    run = load_run(run_path, device=device)
    options = options if options is not None else DecodeOptions.for_run(run, **overrides)
    manifest_path, entries, train_entries = run_manifest_entries(run, manifest, split)
    if not any(e.captions for e in entries):
        raise DataError(f"{manifest_path}: split {split!r} has no reference captions to score against")
    if features is None and manifest is None:
        features = run.config.data.features
    store = open_features(entries, manifest_path, run.extract_config, features)
    records = [store[e.id] for e in entries]
    decoder = CaptionDecoder(run, options, device=device)
    hyps = decoder.decode(records, progress=True)
    predictions = {e.id: h[0].words for e, h in zip(entries, hyps)}

    result, metrics, per_video = score_predictions(predictions, entries)
    metrics["n_unscored"] = len(entries) - result.n_videos
    metrics["n_audio_absent"] = sum(r.audio is None for r in records)
    metrics["diagnostics"] = caption_diagnostics(predictions, [c for e in train_entries for c in e.captions])
    metrics["weights"] = dict(decoder.weights)
    metrics["verifier"] = (options.verifier or "zero-shot") if options.audio_weight else None
    metrics["beam_size"] = options.beam_size
    metrics["checkpoint"] = str(run.checkpoint_dir)

    out = Path(out_dir) if out_dir is not None else default_eval_dir(run.checkpoint_dir, split)
    metrics["out_dir"] = str(out)
    atomic_write_json(out / "predictions.json", predictions)
    atomic_write_json(out / "per_video.json", per_video)
    nbest_lines = [json.dumps({"id": e.id, "nbest": [x.to_dict() for x in h]}) for e, h in zip(entries, hyps)]
    atomic_write_text(out / "nbest.jsonl", "\n".join(nbest_lines) + "\n")
    atomic_write_json(out / "metrics.json", metrics)
    logger.info("wrote %s", out)
    return metrics
