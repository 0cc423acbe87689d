"""Trained run in, captions and metrics out: :class:`CaptionPipeline`, :func:`prepare_split`, :func:`evaluate_split`.

``CaptionPipeline(model_path).caption(paths)`` loads the run, its encoders (the ones the
checkpoint names) and the fused scorers once, then captions raw video files: features on
the fly, one batched beam search, n-best captions with total and per-scorer scores, and
the verifier's explanation on request. A file that cannot be read gets an ``error`` instead
of captions; the others go on. A run trained on imported features (``fusion
import-features``) has no encoders: ``caption_stored(store, ids)`` captions its stored
records, and a file is refused with one line saying why.

Evaluating, tuning and ablating a run on a manifest split share one preparation,
:func:`prepare_split`: load the run -> resolve its decode configuration -> read the
manifest split -> extract the missing features (the visible stage, :mod:`fusion.stages`) ->
read the records. :func:`evaluate_split` then decodes the records (:func:`decode_records`),
scores them with coco-caption (plus the benchmark's judgements where the manifest has them)
and writes predictions, per-video scores and metrics beside the run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch

from fusion.checkpoint import LoadedRun, load_run, run_folder
from fusion.decoding.config import DecodeConfig, resolve_decode_config
from fusion.decoding.decoder import CaptionDecoder
from fusion.decoding.hypothesis import Hypothesis
from fusion.distributed import broadcast, is_main, main_first, map_batches, setup
from fusion.errors import ConfigError, DataError, MediaError
from fusion.features.imported import imported_modality, not_computable_message
from fusion.ood import annotate
from fusion.runcard import run_knowledge, warning_line

if TYPE_CHECKING:
    from fusion.features import FeatureExtractor, FeatureRecord
    from fusion.manifest import ManifestEntry

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
        ood: how far the clip lies from the run's training data (``OODReport.to_dict()``, plus
            ``"warning"``: the one warning line, or None), None without a training profile.
        reasons: what the decoding itself found on why the best caption won, where it has that to
            say (a zero-shot model's consensus mode: the nearest corpus clips), for ``--explain``.
    """

    path: str
    id: str
    hypotheses: list[Hypothesis] = field(default_factory=list)
    error: str | None = None
    audio_present: bool | None = None
    record: FeatureRecord | None = None
    ood: dict[str, Any] | None = None
    reasons: dict[str, Any] | None = None

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
        if self.ood is not None:
            out["ood"] = self.ood
        return out


class CaptionPipeline:
    """Caption raw video files with a trained run.

    Args:
        model_path: a run folder, checkpoint folder or ``model.safetensors``.
        options: the decode configuration; None = :func:`resolve_decode_config` of the run
            with ``overrides``.
        device: torch device for the encoders and the captioner.
        compute_profile: compute the run's card and training profile (``fusion.runcard``) when
            the run folder lacks them (a run trained before they existed), writing them there.
        **overrides: DecodeConfig fields overriding the run's (e.g. ``beam_size=3``).
    """

    def __init__(self, model_path: str | Path, options: DecodeConfig | None = None,
                 device: str | torch.device = "cpu", *, compute_profile: bool = True, **overrides: Any) -> None:
        from fusion.features import FeatureExtractor

        self.run = load_run(model_path, device=device)
        # What the run was trained on, and how far a clip lies from it; caps an older captioner's inputs.
        self.knowledge = run_knowledge(self.run, compute=compute_profile)
        self.device = device
        self.options = options if options is not None else resolve_decode_config(self.run, overrides)
        # features imported from outside cannot be computed from a file: no encoders to load
        computable = imported_modality(self.run.extract_config) is None
        self._extractor = FeatureExtractor(self.run.extract_config, device=device) if computable else None
        self.decoder = CaptionDecoder(self.run, self.options, device=device)

    @property
    def extractor(self) -> FeatureExtractor:
        """The run's encoders, turning a file into a feature record.

        Raises:
            DataError: the run's features were imported (computed outside fusion).
        """
        if self._extractor is None:
            raise DataError(not_computable_message(self.run.extract_config, "a video file"))
        return self._extractor

    def decoder_for(self, options: DecodeConfig) -> CaptionDecoder:
        """A decoder of this run with other decode settings; the loaded LM and verifier are reused."""
        return CaptionDecoder(self.run, options, device=self.device, shared=self.decoder.shared)

    def decode(self, records: Sequence[FeatureRecord], options: DecodeConfig | None = None) -> list[list[Hypothesis]]:
        """N-best hypotheses (per-scorer scores included) of feature records, with other decode settings if given."""
        decoder = self.decoder if options is None or options == self.options else self.decoder_for(options)
        return decoder.decode(records)

    def read(self, path: str | Path) -> CaptionResult:
        """Extract one file's features (``result.record``); an unreadable file gets ``error``."""
        result = CaptionResult(path=str(path), id=Path(path).stem)
        if self._extractor is None:  # one line for the whole command: no file can be read
            raise DataError(not_computable_message(self.run.extract_config, str(path)))
        try:
            result.record = self.extractor.extract(result.path, id=result.id)
        except MediaError as err:
            result.error = str(err)  # reported by the caller, once
            logger.info("cannot caption: %s", err)
            return result
        result.audio_present = result.record.audio is not None
        report = annotate(self.knowledge.profile, result.record)  # the verifier abstains on an unfamiliar clip
        if report is not None:
            result.ood = {**report.to_dict(), "warning": warning_line(report, self.knowledge.card)}
        return result

    def caption(self, paths: Sequence[str | Path], options: DecodeConfig | None = None) -> list[CaptionResult]:
        """Caption each file; unreadable files get ``error`` and the rest go on.

        Args:
            paths: video (or audio) files.
            options: decode settings for this call; None = the pipeline's.

        Returns:
            One result per path, in order.
        """
        results = [self.read(p) for p in paths]
        readable = [r for r in results if r.record is not None]
        if readable:
            for res, nbest in zip(readable, self.decode([r.record for r in readable if r.record is not None], options)):
                res.hypotheses = nbest
        return results

    def caption_stored(self, store_path: str | Path, ids: Sequence[str],
                       options: DecodeConfig | None = None) -> list[CaptionResult]:
        """Caption records of a feature store (the way to caption a run on imported features).

        Args:
            store_path: a feature store holding features like the run's (same encoders or,
                for imported features, the same modality and width).
            ids: the records to caption.
            options: decode settings for this call; None = the pipeline's.

        Returns:
            One result per id, in order (``path`` is ``STORE#ID``).

        Raises:
            DataError: not a store, features of another kind, or an id the store lacks.
        """
        from fusion.features import FeatureStore
        from fusion.features.imported import store_config_for

        store = FeatureStore(store_path, store_config_for(store_path, self.run.extract_config))
        results = []
        for video_id in ids:
            result = CaptionResult(path=f"{store_path}#{video_id}", id=video_id, record=store[video_id])
            result.audio_present = result.record.audio is not None
            report = annotate(self.knowledge.profile, result.record)
            if report is not None:
                result.ood = {**report.to_dict(), "warning": warning_line(report, self.knowledge.card)}
            results.append(result)
        for res, nbest in zip(results, self.decode([r.record for r in results if r.record is not None], options)):
            res.hypotheses = nbest
        return results

    def explain(self, result: CaptionResult, max_runners_up: int = 4) -> dict[str, Any]:
        """The verifier's report on a result's n-best list: audible nouns, their audio evidence, runner-ups."""
        from fusion.verifier import explain

        if result.record is None:
            raise DataError(f"{result.path}: nothing to explain ({result.error or 'not captioned'})")
        return explain(result.hypotheses, self.decoder.audio_evidence(result.record), max_runners_up=max_runners_up)


def default_eval_dir(checkpoint_dir: Path, split: str) -> Path:
    """``RUN/eval/<split>`` for a run's checkpoint, else ``<checkpoint>/eval/<split>``."""
    return run_folder(checkpoint_dir) / "eval" / split


@dataclass
class RunSplit:
    """A run, its decode configuration and one manifest split with its features, ready to decode.

    Attributes:
        run: the loaded run.
        options: the effective decode configuration.
        manifest: the manifest file.
        split: the split name.
        entries: the split's manifest entries (in manifest order).
        train_entries: the manifest's train entries (for novelty diagnostics).
        records: one feature record per entry.
        store: the feature store folder.
        skipped: the split's videos left out because they could not be read
            (``{"id", "video", "error"}`` each; see :func:`fusion.data.readable_entries`).
    """

    run: LoadedRun
    options: DecodeConfig
    manifest: Path
    split: str
    entries: list[ManifestEntry]
    train_entries: list[ManifestEntry]
    records: list[FeatureRecord]
    store: Path
    skipped: list[dict[str, str]] = field(default_factory=list)


def prepare_split(
    run_path: str | Path | LoadedRun,
    split: str,
    *,
    manifest: str | Path | None = None,
    features: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    captioned_only: bool = False,
    require_references: bool = False,
    progress: bool = True,
    strict: bool = False,
) -> RunSplit:
    """Load run -> decode configuration -> manifest split -> extract missing features -> records.

    Everything that can fail fast (the run, the decode options, the manifest and split) is
    checked before the extraction stage (:func:`fusion.stages.extract_features`) starts.

    Args:
        run_path: a run folder, checkpoint, ``model.safetensors``, or an already loaded run.
        split: the split to decode ("test", "val", "train").
        manifest: manifest to decode; None = the run's training manifest.
        features: feature store folder; None = the store beside the manifest (the run's own
            store when decoding the run's manifest).
        overrides: DecodeConfig fields from the command line (None values keep the run's).
        device: torch device.
        captioned_only: keep only entries with reference captions (tuning).
        require_references: fail unless some entry has reference captions (evaluation).
        progress: progress bar while extracting.
        strict: fail when a video cannot be read (else it is skipped, counted in ``skipped``).

    Raises:
        ConfigError / CheckpointError: bad run, decode options or manifest choice.
        DataError: the split is empty (also once unreadable videos are left out), has no
            references where they are needed, or (``strict``) holds unreadable videos.
    """
    from fusion.data import open_features, readable_entries
    from fusion.manifest import load_manifest, split_entries
    from fusion.stages import extract_features

    device = setup(device)  # under torchrun: join the job; "cuda" is this rank's GPU
    run = run_path if isinstance(run_path, LoadedRun) else load_run(run_path, device=device)
    options = resolve_decode_config(run, overrides)
    path = manifest if manifest is not None else run.config.data.manifest
    if path is None:
        raise ConfigError("the run names no manifest: give --manifest M")
    all_entries = load_manifest(path)
    entries = [e for e in split_entries(all_entries, split) if e.captions or not captioned_only]
    if not entries:
        found = sorted({e.split for e in all_entries})
        what = "videos with reference captions" if captioned_only else "videos"
        raise DataError(f"{path}: no {what} in split {split!r} (it has {found}); pick one with --split")
    if require_references and not any(e.captions for e in entries):
        raise DataError(f"{path}: split {split!r} has no reference captions to score against")
    if features is None and manifest is None:
        features = run.config.data.features
    store_path = extract_features(entries, path, run.extract_config, features, progress=progress, strict=strict)
    store = open_features(entries, path, run.extract_config, store_path, strict=False)
    entries, skipped = readable_entries(entries, store, split, strict=strict)
    records = [store[e.id] for e in entries]
    # caps an older captioner's inputs (None without a profile); a missing profile is computed and written by
    # rank 0 alone, the other ranks then read it
    profile = main_first(lambda: run_knowledge(run)).profile
    for record in records:
        annotate(profile, record)  # record.meta["ood"]: per_video.json reports it, the verifier reads it
    return RunSplit(run, options, Path(path), split, entries, split_entries(all_entries, "train"), records, store_path,
                    skipped)


def decode_records(decoder: CaptionDecoder, records: Sequence[FeatureRecord], progress: bool = True) -> list[list[Hypothesis]]:
    """The decode loop of an evaluation: n-best hypotheses per record, in order.

    Under torchrun each rank decodes whole batches (batch i on rank i mod N, exactly as one
    process decodes it) and every rank receives all the hypotheses
    (:func:`fusion.distributed.map_batches`).
    """
    return map_batches(decoder.decode_batch, records, decoder.config.batch_size, progress=progress)


def evaluate_split(
    prepared: RunSplit,
    out_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Decode a prepared split, score it, write the outputs.

    Args:
        prepared: from :func:`prepare_split`.
        out_dir: where outputs go; None = ``RUN/eval/<split>``.
        device: torch device.
        progress: progress bar while decoding.

    Returns:
        The metrics dict that ``fusion evaluate --json`` prints (and ``metrics.json`` holds):
        Bleu_1..4, METEOR, ROUGE_L, CIDEr, n_videos, the benchmark's sound/visual judgements
        where available, ``diagnostics``, ``n_audio_absent``, ``n_unfamiliar`` (clips unlike the
        run's training data; None without a training profile; ``per_video.json`` holds each
        clip's ``ood`` report), the scorer ``weights``, the
        effective ``decode`` configuration, ``out_dir``.
    """
    from fusion.evaluation import caption_diagnostics, score_predictions
    from fusion.io import atomic_write_json, atomic_write_text

    run, options, entries, records = prepared.run, prepared.options, prepared.entries, prepared.records
    if not any(e.captions for e in entries):
        raise DataError(f"{prepared.manifest}: split {prepared.split!r} has no reference captions to score against")
    decoder = CaptionDecoder(run, options, device=setup(device))
    hyps = decode_records(decoder, records, progress=progress)
    if not is_main():  # under torchrun rank 0 scores once (one METEOR JVM), writes, and shares the metrics
        return broadcast(None)
    predictions = {e.id: h[0].words for e, h in zip(entries, hyps)}

    result, metrics, per_video = score_predictions(predictions, entries)
    ood = {e.id: (r.meta or {}).get("ood") for e, r in zip(entries, records)}
    for vid, report in ood.items():
        per_video.setdefault(vid, {})["ood"] = report  # distance per modality, threshold, flagged
    metrics["n_unfamiliar"] = sum(bool(r and r["flagged"]) for r in ood.values()) if any(ood.values()) else None
    metrics["n_unscored"] = len(entries) - result.n_videos
    metrics["n_skipped"], metrics["skipped"] = len(prepared.skipped), prepared.skipped  # unreadable videos
    metrics["n_audio_absent"] = sum(r.audio is None for r in records)
    metrics["diagnostics"] = caption_diagnostics(predictions, [c for e in prepared.train_entries for c in e.captions])
    metrics["weights"] = decoder.weights
    metrics["verifier"] = (options.verifier or "zero-shot") if options.audio_weight else None
    metrics["beam_size"] = options.beam_size
    metrics["decode"] = options.to_dict()
    metrics["checkpoint"] = str(run.checkpoint_dir)

    out = Path(out_dir) if out_dir is not None else default_eval_dir(run.checkpoint_dir, prepared.split)
    metrics["out_dir"] = str(out)
    atomic_write_json(out / "predictions.json", predictions)
    atomic_write_json(out / "per_video.json", per_video)
    nbest_lines = [json.dumps({"id": e.id, "nbest": [x.to_dict() for x in h]}) for e, h in zip(entries, hyps)]
    atomic_write_text(out / "nbest.jsonl", "\n".join(nbest_lines) + "\n")
    atomic_write_json(out / "metrics.json", metrics)
    logger.info("wrote %s", out)
    return broadcast(metrics)


def evaluate_run(
    run_path: str | Path,
    manifest: str | Path | None = None,
    split: str = "test",
    out_dir: str | Path | None = None,
    features: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    strict: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """:func:`prepare_split` then :func:`evaluate_split`: ``fusion evaluate`` in one call.

    Args:
        run_path: run folder, checkpoint folder or model.safetensors.
        manifest / split / features: what to decode (see :func:`prepare_split`).
        out_dir: where outputs go; None = ``RUN/eval/<split>``.
        device: torch device.
        progress: progress bars (extraction, decoding).
        strict: fail on an unreadable video instead of skipping it (``metrics["skipped"]``).
        **overrides: DecodeConfig fields overriding the run's (e.g. ``beam_size=5``).
    """
    prepared = prepare_split(run_path, split, manifest=manifest, features=features, overrides=overrides,
                             device=device, require_references=True, progress=progress, strict=strict)
    return evaluate_split(prepared, out_dir=out_dir, device=device, progress=progress)

