"""Video file -> :class:`FeatureRecord`: decode once, run the frame CNN and the audio encoder(s).

The work is split in two steps so a caller can overlap them: :meth:`FeatureExtractor.decode`
(av decoding plus frame preprocessing, thread-safe; ffmpeg and torch release the GIL) and
:meth:`FeatureExtractor.describe` (the networks). Any registered audio encoder runs through its
bundle's ``analyse``: the main one (``audio_encoder``) gives the per-step ``audio`` features and
its label spaces' posteriors, each of ``extra_audio_encoders`` its posteriors only. ``extract_to_store`` decodes the next
clips in a background thread while the networks run on the current one.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusion.distributed import autocast
from fusion.encoders.bundle import WeightsSource
from fusion.encoders.frames import FrameRunner
from fusion.features.config import AUDIO, FRAMES, ExtractConfig, FeatureRecord, posterior_key

logger = logging.getLogger(__name__)

RANDOM_WEIGHTS_SEED = 0  # random_weights=True builds the same encoders in every process


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _weights_id(encoder: str, user_path: str | None, random: bool, source: WeightsSource) -> dict[str, Any]:
    """Which weights an encoder ran with, for ``store.json`` and record meta."""
    if random:
        return {"name": encoder, "weights": "random", "seed": RANDOM_WEIGHTS_SEED}
    if user_path is not None:
        path = Path(user_path)
        size = path.stat().st_size if path.is_file() else None
        return {"name": encoder, "weights": str(path), "weights_bytes": size}
    default = source.locate()
    pkg = source.distribution
    return {
        "name": encoder,
        "weights": default.name if default else "default",
        "package": pkg,
        "package_version": _package_version(pkg) if pkg else None,
    }


@dataclass
class DecodedClip:
    """A decoded file plus its preprocessed frames (made in the decode thread).

    Attributes:
        media: the :class:`fusion.media.Media`.
        pixels: float32 ``(T, 3, 224, 224)`` channels-last frame-CNN input, None without video.
    """

    media: Any
    pixels: torch.Tensor | None


def decode_clip(path: str | Path, config: ExtractConfig, frame_runner: FrameRunner,
                timings: dict[str, float] | None = None) -> DecodedClip:
    """Decode ``path`` as ``config`` samples it and prepare its frames with ``frame_runner``.

    Used by :meth:`FeatureExtractor.decode` and by the decode worker processes
    (:mod:`fusion.features.decodepool`). Adds to ``timings["decode"]`` / ``["preprocess"]``.

    Raises:
        MediaError: the file cannot be read.
    """
    from fusion.media import decode

    start = time.perf_counter()
    if config.frame_rate_hz is not None:
        media = decode(str(path), num_frames=None, frame_rate_hz=config.frame_rate_hz)
    else:
        media = decode(str(path), num_frames=config.frames_per_clip)
    decoded = time.perf_counter()
    pixels = None if media.frames is None else frame_runner.prepare(media.frames)  # (T, 3, 224, 224)
    if timings is not None:
        timings["decode"] += decoded - start  # float += is atomic enough under the GIL
        timings["preprocess"] += time.perf_counter() - decoded
    return DecodedClip(media=media, pixels=pixels)


class FeatureExtractor:
    """Loads the frame CNN and the audio encoder(s) once; turns files into feature records.

    Args:
        config: what to extract. ``random_weights=True`` builds seeded random encoders
            (tests only).
        device: torch device for every network (default CPU).

    Attributes:
        audio_bundle: the main audio encoder's bundle (its features are the record's ``audio``).
        audio_bundles: name -> bundle of every audio encoder, the main one first.
        audio_models: name -> model, same order.

    Raises:
        WeightsError: unknown encoder, or pretrained weights missing.
    """

    def __init__(self, config: ExtractConfig, device: str | torch.device = "cpu") -> None:
        from fusion.encoders.frames import get_frame_bundle
        from fusion.encoders.registry import AUDIO_ENCODERS

        self.config = config
        self.device = torch.device(device)
        self.frame_bundle = get_frame_bundle(config.frame_encoder)
        weights = {config.audio_encoder: config.audio_weights, **config.extra_audio_encoders}
        self.audio_bundles = {name: AUDIO_ENCODERS.get(name) for name in weights}
        self.audio_bundle = self.audio_bundles[config.audio_encoder]
        rng = torch.random.fork_rng() if config.random_weights else contextlib.nullcontext()
        with rng:
            if config.random_weights:
                torch.manual_seed(RANDOM_WEIGHTS_SEED)
            self.frame_model = self.frame_bundle.get_model(
                weights_path=config.frame_weights, random_init=config.random_weights, grid=config.frame_grid
            ).to(self.device).eval()
            self.audio_models = {name: bundle.get_model(weights_path=weights[name], random_init=config.random_weights)
                                 .to(self.device).eval() for name, bundle in self.audio_bundles.items()}
        self.audio_model = self.audio_models[config.audio_encoder]
        self.frame_runner = FrameRunner(self.frame_bundle, self.frame_model, self.device)
        self.timings: dict[str, float] = defaultdict(float)  # seconds per stage, summed over calls
        self._encoders_info = self._make_encoders_info(weights)

    # -- what the store records about the encoders ----------------------------------------
    def encoders_info(self) -> dict[str, Any]:
        """Encoder names and weight versions (JSON-able), saved in ``store.json``."""
        return {k: (dict(v) if isinstance(v, dict) else [dict(x) for x in v]) for k, v in self._encoders_info.items()}

    def _make_encoders_info(self, weights: dict[str, str | None]) -> dict[str, Any]:
        cfg = self.config
        frames = _weights_id(cfg.frame_encoder, cfg.frame_weights, cfg.random_weights, self.frame_bundle.weights)
        audio = [_weights_id(name, weights[name], cfg.random_weights, bundle.weights)
                 for name, bundle in self.audio_bundles.items()]
        audio[0]["layer"] = cfg.audio_layer
        info: dict[str, Any] = {"frames": frames, "audio": audio[0]}
        if len(audio) > 1:  # left out otherwise: store.json of SoundNet-only stores stays as it was
            info["audio_extra"] = audio[1:]
        return info

    def dims(self) -> dict[str, int | None]:
        """Feature dims per array of a record (``frames``: Dv, ``audio``: Da, ``"modality/space"``: C)."""
        dims: dict[str, int | None] = {
            "frames": int(self.frame_bundle.feature_dim) * self.config.frame_grid ** 2,
            "audio": int(self.audio_bundle.layers[self.config.audio_layer]),
        }
        for bundle in self.audio_bundles.values():
            dims.update({posterior_key(AUDIO, space): len(labels) for space, labels in bundle.label_spaces.items()})
        frame_spaces = self.frame_bundle.label_spaces
        dims[posterior_key(FRAMES, "imagenet")] = len(frame_spaces["imagenet"]) if frame_spaces else None
        return dims

    # -- the two steps -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] += time.perf_counter() - start

    def decode(self, path: str | Path) -> DecodedClip:
        """Decode ``path`` (frames + 22,050 Hz mono audio) and preprocess its frames.

        Thread-safe (runs in the prefetch thread); adds to ``timings["decode"]`` and
        ``timings["preprocess"]``.

        Raises:
            MediaError: the file cannot be read.
        """
        return decode_clip(path, self.config, self.frame_runner, self.timings)

    def describe(self, clip: DecodedClip | Any, video_id: str) -> FeatureRecord:
        """Run the networks on a decoded clip; absent modalities stay None (and have no posteriors).

        Args:
            clip: from :meth:`decode`, or a bare :class:`fusion.media.Media` (frames
                (T, H, W, 3) uint8 or None; audio (S,) float32 at 22,050 Hz or None).
            video_id: the record's id.
        """
        if not isinstance(clip, DecodedClip):
            clip = DecodedClip(media=clip, pixels=None if clip.frames is None else self.frame_runner.prepare(clip.frames))
        media = clip.media
        frames = audio = None
        posteriors: dict[str, np.ndarray] = {}
        per_step: dict[str, np.ndarray] = {}
        precision = autocast(self.device, self.config.precision)  # fp32: no-op; bf16 / fp16: autocast
        if clip.pixels is not None:
            with self._timed("frame_cnn"), precision:
                frames, objects, steps = self.frame_runner.run(clip.pixels, self.config.batch_size,
                                                               self.config.posteriors_per_step)  # (T, Dv), (C,), (T, C)
            if objects is not None:
                posteriors[posterior_key(FRAMES, "imagenet")] = objects
            if steps is not None:
                per_step[posterior_key(FRAMES, "imagenet")] = steps
        if media.audio is not None and media.audio.size > 0:
            audio = self._describe_audio(media, posteriors, per_step)  # (A, Da)
        times = media.frame_times_s
        meta = {
            "source": str(media.path),
            "duration_s": float(media.duration_s),
            "fps": None if media.fps is None else float(media.fps),
            "frames_sampled": 0 if media.frames is None else int(media.frames.shape[0]),
            "distinct_frames": int(getattr(media, "frames_sampled", 0) or 0),
            "frame_times_s": None if times is None else [round(float(t), 6) for t in times],
            "rotation_deg": int(getattr(media, "rotation_deg", 0) or 0),
            "has_video_stream": media.frames is not None,
            "has_audio_stream": media.audio is not None,
            "audio_seconds": None if media.audio is None else media.audio.size / float(media.sample_rate_hz),
            "encoders": self.encoders_info(),
        }
        return FeatureRecord(id=video_id, frames=frames, audio=audio, posteriors=posteriors,
                             posteriors_per_step=per_step, meta=meta)

    def _describe_audio(self, media: Any, posteriors: dict[str, np.ndarray],
                        per_step: dict[str, np.ndarray]) -> np.ndarray:
        """Run every audio encoder on ``media.audio``; add their posteriors; return the main one's
        ``(A, Da)`` features of ``audio_layer``."""
        from fusion.encoders.bundle import resample

        features = None
        precision = autocast(self.device, self.config.precision)
        for name, bundle in self.audio_bundles.items():
            main = name == self.config.audio_encoder
            waveform = resample(media.audio, int(media.sample_rate_hz), int(bundle.sample_rate_hz))  # (S',)
            with self._timed(name), torch.inference_mode(), precision:
                analysis = bundle.analyse(self.audio_models[name], waveform, (self.config.audio_layer,) if main else (),
                                          self.config.posteriors_per_step)
            if main:
                features = np.asarray(analysis.features[self.config.audio_layer], dtype=np.float32)  # (A, Da)
            for space, probs in analysis.posteriors.items():
                posteriors[posterior_key(AUDIO, space)] = np.asarray(probs, dtype=np.float32)  # (C,)
            for space, probs in analysis.posteriors_per_step.items():
                per_step[posterior_key(AUDIO, space)] = np.asarray(probs, dtype=np.float32)  # (S, C)
        return features

    def extract(self, path: str | Path, id: str | None = None) -> FeatureRecord:  # noqa: A002 (contract name)
        """Decode and describe one file. ``id`` defaults to the file stem.

        Raises:
            MediaError: the file cannot be read.
        """
        return self.describe(self.decode(path), id if id is not None else Path(path).stem)
