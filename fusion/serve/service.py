"""What the web page asks of a trained run, with no web framework in sight.

:class:`CaptionService` loads each run once (model, encoders, verifier), turns an upload
into an :class:`Analysis` (features, tags, frame strip, audio status), cached by the file's
content hash so the same clip is never extracted twice, and decodes an analysis with any
beam size, LM weight and audio weight into n-best captions with each scorer's share and
the verifier's word-by-word explanation. Every method is safe to call from several request
threads: loading and decoding hold a lock (one model, requests queued behind it).

    service = CaptionService({"demo": Path("runs/demo")}, workdir=Path(tempfile.mkdtemp()))
    analysis = service.analyse("demo", "clip.mp4")
    view = service.decode("demo", analysis.key, DecodeSettings.of(5, lm=0.0, audio=1.0))
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusion.errors import DataError, FusionError, MediaError
from fusion.serve.clipview import AudioStatus, audio_status, frame_strip
from fusion.serve.settings import DecodeSettings, WeightSlider, weight_sliders

logger = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_MB = 200
TOP_TAGS = 5  # labels per bar chart
HASH_CHUNK = 1 << 20


class UploadError(FusionError):
    """An upload the page cannot caption: too large, not media, unreadable."""


@dataclass
class Analysis:
    """Everything one upload yields before decoding; cached by content hash.

    Attributes:
        key: content hash of the file, the run's feature fingerprint and the run's name.
        name: the file's name as uploaded.
        record: the feature record (``fusion.features.FeatureRecord``).
        audio: ``"present"``, ``"silent"`` (a track of near-zero samples) or ``"absent"``.
        strip: uint8 ``(H, W, 3)`` image of the sampled frames side by side, None without video.
        tags: ``{"audio": {label space: [...]} | None, "frames": {label space: [...]} | None}`` (:mod:`fusion.tags`),
            each list ``[{"label", "score"}]`` best first.
        duration_s: the file's duration.
        has_video: whether the file has a video stream.
        familiarity: how far the clip lies from the run's training features, where the run
            stores a description of them (``fusion.ood``), else None.
    """

    key: str
    name: str
    record: Any
    audio: AudioStatus
    strip: np.ndarray | None
    tags: dict[str, Any]
    duration_s: float
    has_video: bool
    familiarity: dict[str, Any] | None = None


@dataclass
class CaptionView:
    """One decoding of an analysis.

    Attributes:
        settings: the settings it was decoded with.
        hypotheses: n-best ``Hypothesis`` list, best first.
        nouns: per hypothesis, the verifier's report on each audible noun (``noun_evidence``).
        evidence_available: False when the clip has no audio (nothing to verify against).
        decode_s: seconds the beam search (consensus mode: the neighbour search and vote) took.
        consensus: for a zero-shot model in the consensus mode, why its caption won
            (``fusion.zeroshot.explain.consensus_summary``: the nearest corpus clips, the words whose
            evidence chose them); else None.
        evidence_scale: the largest evidence a word can get (the bars' full width); None: the
            largest shown.
    """

    settings: DecodeSettings
    hypotheses: list[Any]
    nouns: list[list[dict[str, Any]]] = field(default_factory=list)
    evidence_available: bool = False
    decode_s: float = 0.0
    consensus: dict[str, Any] | None = None
    evidence_scale: float | None = None

    @property
    def caption(self) -> str:
        """The winning caption ("" when the search found none)."""
        return self.hypotheses[0].words if self.hypotheses else ""


def content_hash(path: str | Path) -> str:
    """sha256 of a file's bytes (hex, first 24 characters)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()[:24]


def check_upload(path: str | Path, max_bytes: int, name: str | None = None) -> int:
    """Size and existence checks before any decoding; returns the size in bytes.

    Raises:
        UploadError: missing, empty or over ``max_bytes``.
    """
    path = Path(path)
    name = name or path.name
    try:
        size = path.stat().st_size
    except OSError:
        raise UploadError(f"{name}: the upload did not arrive; try again") from None
    if not path.is_file():
        raise UploadError(f"{name}: not a file; upload a video or audio file")
    if size == 0:
        raise UploadError(f"{name}: the file is empty; upload a video or audio file")
    if size > max_bytes:
        raise UploadError(f"{name}: {size / 2**20:.0f} MB is over the {max_bytes / 2**20:.0f} MB upload limit; "
                          "cut the clip shorter (or start the server with a larger --max-upload-mb)")
    return size


def _shorter_paths(text: str | None) -> str | None:
    """``text`` with the current folder's absolute path dropped (``/home/me/runs/demo`` -> ``runs/demo``)."""
    if text is None:
        return None
    return text.replace(str(Path.cwd().resolve()) + "/", "")


class _LoadedRun:
    """One run's pipeline, its base decode configuration, what it knows, and decoders by settings."""

    def __init__(self, path: Path, device: str) -> None:
        from fusion.runcard import describe_training
        from fusion.zeroshot.pipeline import ZeroShotPipeline, open_pipeline

        # compute_profile=False: the server writes nothing into run folders (a run from before
        # run cards gets its profile with `python -m fusion.runcard RUN`; the page says so)
        self.pipeline = open_pipeline(path, device=device, compute_profile=False)
        self.zeroshot = isinstance(self.pipeline, ZeroShotPipeline)  # no caption model: its sliders are its weights
        self.base = self.pipeline.decode_config_view() if self.zeroshot else self.pipeline.options
        # the consensus mode votes among corpus clips: its index is read now, so the first request is warm
        self.neighbours = self.pipeline.options.neighbours if self.zeroshot and self.pipeline.options.mode == "consensus" else None
        if self.neighbours is not None:
            _ = self.pipeline.model.index
        self.decoders: OrderedDict[DecodeSettings, Any] = OrderedDict()
        knowledge = self.pipeline.knowledge  # the card and training profile as the run folder has them
        self.card, self.profile, self.note = knowledge.card, knowledge.profile, _shorter_paths(knowledge.note)
        self.trained_on = describe_training(self.card) if self.card else None

    def decoder(self, settings: DecodeSettings) -> Any:
        """A decoder for ``settings`` (the last 16 kept; the run's LM and verifier are shared).

        Raises:
            ConfigError: settings the decode configuration refuses (one line, shown by the page).
        """
        from fusion.decoding.config import resolve_decode_config

        if settings in self.decoders:
            self.decoders.move_to_end(settings)
            return self.decoders[settings]
        beam = settings.beam_size
        if self.zeroshot:
            decoder = self.pipeline.decoder_with(beam, dict(settings.weights), settings.neighbours)
        else:
            options = resolve_decode_config(self.pipeline.run, {"beam_size": beam, "nbest": beam, "batch_size": 1},
                                            weights=dict(settings.weights))
            decoder = self.pipeline.decoder_for(options)
        self.decoders[settings] = decoder
        while len(self.decoders) > 16:
            self.decoders.popitem(last=False)
        return decoder


class CaptionService:
    """Runs loaded once, uploads analysed once, decoded as often as the sliders move.

    Args:
        runs: run name -> run folder (or checkpoint).
        device: torch device for every run.
        max_upload_bytes: uploads over this size are refused with one message.
        cache_size: analyses kept (least recently used dropped first).
    """

    def __init__(self, runs: Mapping[str, Path], device: str = "cpu",
                 max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 2**20, cache_size: int = 32) -> None:
        self.runs = dict(runs)
        self.device = device
        self.max_upload_bytes = max_upload_bytes
        self.cache_size = cache_size
        self._loaded: dict[str, _LoadedRun] = {}
        self._analyses: OrderedDict[str, Analysis] = OrderedDict()
        self._lock = threading.RLock()

    def run_names(self) -> list[str]:
        """The runs a user can pick, in order."""
        return list(self.runs)

    def load(self, run: str) -> _LoadedRun:
        """The run, loaded on first use and kept (one model per run for the server's life)."""
        if run not in self.runs:
            raise UploadError(f"run {run!r} is unknown; pick one of {', '.join(self.runs) or '(none)'}")
        with self._lock:
            if run not in self._loaded:
                logger.info("loading run %s from %s", run, self.runs[run])
                self._loaded[run] = _LoadedRun(self.runs[run], self.device)
            return self._loaded[run]

    def defaults(self, run: str) -> DecodeSettings:
        """The run's own beam size and slider weights (and, for a zero-shot model in the consensus mode, its
        number of neighbours)."""
        loaded = self.load(run)
        base = loaded.base
        return DecodeSettings(int(base.beam_size), tuple((s.scorer, s.value) for s in weight_sliders(base)),
                              loaded.neighbours)

    def sliders(self, run: str) -> list[WeightSlider]:
        """The run's weight sliders: values, ranges (the decode configuration's bounds), availability."""
        return weight_sliders(self.load(run).base)

    def trained_on(self, run: str) -> tuple[str | None, str | None]:
        """(what the run was trained on, from its run card; why the clip's familiarity cannot be judged), each or None."""
        loaded = self.load(run)
        return loaded.trained_on, loaded.note

    def analyse(self, run: str, path: str | Path, name: str | None = None) -> Analysis:
        """Features, tags, frame strip and audio status of a file (cached by content).

        Args:
            run: the run whose encoders to use.
            path: the uploaded file.
            name: the file's name as the user knows it (for messages).

        Raises:
            UploadError: too large, empty, or not a readable video or audio file.
        """
        name = name or Path(path).name
        check_upload(path, self.max_upload_bytes, name)
        loaded = self.load(run)
        try:
            extractor = loaded.pipeline.extractor
        except DataError as err:  # a run on imported features: nothing can be computed from an upload
            raise UploadError(str(err)) from None
        key = f"{content_hash(path)}-{extractor.config.fingerprint()}-{run}"  # the run: its own familiarity annotation
        with self._lock:
            if key in self._analyses:
                self._analyses.move_to_end(key)
                cached = self._analyses[key]
                return dataclasses.replace(cached, name=name)
            try:
                clip = extractor.decode(path)
                record = extractor.describe(clip, Path(name).stem)
            except MediaError as err:
                raise UploadError(f"{name}: {err.reason}") from None
            media = clip.media
            analysis = Analysis(
                key=key, name=name, record=record, audio=audio_status(media.audio),
                strip=None if media.frames is None else frame_strip(media.frames),
                tags=self._tags(extractor, record), duration_s=float(media.duration_s),
                has_video=media.frames is not None, familiarity=self._familiarity(loaded, record),
            )
            self._analyses[key] = analysis
            while len(self._analyses) > self.cache_size:
                self._analyses.popitem(last=False)
            return analysis

    def clear_cache(self) -> None:
        """Forget every analysis (the next upload of any clip is extracted again)."""
        with self._lock:
            self._analyses.clear()

    def cached(self, key: str) -> Analysis | None:
        """The analysis of ``key`` if still cached."""
        with self._lock:
            return self._analyses.get(key)

    def decode(self, run: str, key: str, settings: DecodeSettings) -> CaptionView:
        """Decode a cached analysis with ``settings``: n-best and per-caption noun explanations.

        Raises:
            UploadError: the analysis has left the cache (upload the clip again).
        """
        import time

        from fusion.verifier import noun_evidence

        analysis = self.cached(key)
        if analysis is None or not key.endswith(f"-{run}"):  # gone, or analysed for another run's encoders
            raise UploadError("this clip is no longer in the server's cache for this run; upload it again")
        loaded = self.load(run)
        if (settings.neighbours is None) != (loaded.neighbours is None):
            settings = dataclasses.replace(settings, neighbours=loaded.neighbours)  # only the consensus mode has them
        with self._lock:
            decoder = loaded.decoder(settings)
            start = time.perf_counter()
            if loaded.zeroshot:
                hyps, consensus = decoder.decode_explained(analysis.record)
            else:
                hyps, consensus = decoder.decode([analysis.record])[0], None
            elapsed = time.perf_counter() - start
            evidence = decoder.audio_evidence(analysis.record)
            if loaded.zeroshot:  # per linked word, the seen and heard evidence behind it
                nouns = [decoder.concept_report(h, analysis.record) for h in hyps]
            else:
                nouns = [noun_evidence(h.words, evidence, decoder.verifier.table) for h in hyps]
        return CaptionView(settings, hyps, nouns, evidence is not None, elapsed, consensus,
                           decoder.evidence_scale if loaded.zeroshot else None)

    @staticmethod
    def _tags(extractor: Any, record: Any) -> dict[str, Any]:
        from fusion.tags import record_tags

        audio_spaces = {s: labels for b in extractor.audio_bundles.values() for s, labels in b.label_spaces.items()}
        return record_tags(record, audio_spaces, extractor.frame_bundle.label_spaces, TOP_TAGS)

    @staticmethod
    def _familiarity(loaded: _LoadedRun, record: Any) -> dict[str, Any] | None:
        """How far the clip lies from the run's training features (``fusion.ood``), with the warning
        line when it is unlike them; None when the run has no training profile. Annotates the
        record, so the verifier abstains on an unfamiliar clip as ``fusion caption`` does."""
        from fusion.ood import annotate
        from fusion.runcard import warning_line

        try:
            report = annotate(loaded.profile, record)
            if report is None:
                return None
            out = report.to_dict()
            out["warning"] = warning_line(report, loaded.card)
        except (FusionError, ArithmeticError, ValueError, KeyError) as err:  # a bad profile must not cost the caption
            logger.warning("familiarity not judged: %s: %s", type(err).__name__, err)
            return None
        return out
