"""What a feature record is made of: the extraction config, the record and the run summary.

The config is saved in every store (``store.json``); two configs that would give different
arrays for the same video must never share a store. :data:`RUNTIME_KEYS` lists the keys
that only change speed, not the numbers, so they may differ between runs on one store.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fusion.config import to_dict

# Keys of ExtractConfig that change how fast features are made, not what they are.
# batch_size: frames per CNN forward; batch-size-dependent kernels differ by float rounding only.
# decode_workers: background decode threads (prefetch of the next clips while the CNN runs).
# decode_processes: decode worker processes (the same prefetch, off the main process's GIL).
RUNTIME_KEYS: frozenset[str] = frozenset({"batch_size", "decode_workers", "decode_processes"})

# Keys added after stores existed, with the value every older store was made with. At that
# value they are left out of the fingerprint, so older stores and checkpoints still match.
LEGACY_DEFAULTS: dict[str, Any] = {"frame_grid": 1, "precision": "fp32"}


@dataclass
class ExtractConfig:
    """How videos become feature records.

    Attributes:
        frames_per_clip: frames sampled uniformly over each video (the S2VT setup uses a
            fixed number per clip); ignored when ``frame_rate_hz`` is set.
        frame_rate_hz: sample frames at this rate instead (variable T per video).
        frame_encoder: frame CNN bundle name (``fusion.encoders.get_frame_bundle``).
        frame_weights: local weights file for the frame CNN; None = the bundle's default.
        frame_grid: 1 = one globally pooled vector per frame (Dv); G > 1 = the CNN's last
            feature map average-pooled to G x G cells (G*G*Dv), which keeps where things are:
            which object moves where when several are in view.
        audio_encoder: audio encoder bundle name; only ``soundnet8`` exists.
        audio_layer: SoundNet layer whose per-step activations are stored (pool5: 256-d,
            the layer SoundNet's paper found best for transfer together with conv7).
        soundnet_weights: local ``sound8.npy``; None = the one in the installed package.
        batch_size: frames per CNN forward pass (runtime only; ``results/bench_extract.md``
            compares batch sizes, see :class:`fusion.encoders.frames.FrameRunner`).
        decode_workers: background threads decoding the next clips while the CNN runs on the
            current one; 0 decodes inline (runtime only).
        decode_processes: when > 0, decode (av + frame preprocessing) in this many worker
            processes instead of threads, so the networks never wait for av and Python-side
            decoding work does not hold the main process's GIL (``fusion extract --workers K``;
            runtime only).
        precision: the encoders' arithmetic: "fp32", or "bf16" / "fp16" autocast (for GPUs;
            bf16 also runs on CPUs). Features made in another precision differ, so it is
            part of the store's config.
        random_weights: random encoders instead of pretrained ones. For tests only: the
            features mean nothing.
    """

    frames_per_clip: int = 32
    frame_rate_hz: float | None = None
    frame_encoder: str = "efficientnet_lite0"
    frame_weights: str | None = None
    frame_grid: int = 1
    audio_encoder: str = "soundnet8"
    audio_layer: str = "pool5"
    soundnet_weights: str | None = None
    batch_size: int = 4
    decode_workers: int = 1
    decode_processes: int = 0
    precision: str = "fp32"
    random_weights: bool = False

    def __post_init__(self) -> None:
        if self.frames_per_clip < 1:
            raise ValueError(f"frames_per_clip must be >= 1, got {self.frames_per_clip}")
        if not 1 <= self.frame_grid <= 7:
            raise ValueError(f"frame_grid must be 1 (pooled) to 7 (cells per side), got {self.frame_grid}")
        if self.frame_rate_hz is not None and self.frame_rate_hz <= 0:
            raise ValueError(f"frame_rate_hz must be > 0 or null, got {self.frame_rate_hz}")
        from fusion.encoders.soundnet import SOUNDNET_LAYERS

        if self.audio_layer not in SOUNDNET_LAYERS:
            raise ValueError(f"audio_layer {self.audio_layer!r} is not a SoundNet layer; use one of {', '.join(SOUNDNET_LAYERS)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.decode_workers < 0 or self.decode_processes < 0:
            raise ValueError(f"decode_workers and decode_processes must be >= 0, got {self.decode_workers}, "
                             f"{self.decode_processes}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, got {self.precision!r}")

    def feature_dict(self) -> dict[str, Any]:
        """The keys that decide the arrays (everything but :data:`RUNTIME_KEYS`; :data:`LEGACY_DEFAULTS` left out at their value)."""
        return {k: v for k, v in to_dict(self).items()
                if k not in RUNTIME_KEYS and not (k in LEGACY_DEFAULTS and v == LEGACY_DEFAULTS[k])}

    def fingerprint(self) -> str:
        """A short stable hash of :meth:`feature_dict`, stamped into every record's meta."""
        blob = json.dumps(self.feature_dict(), sort_keys=True).encode("utf-8")
        return hashlib.sha1(blob).hexdigest()[:16]


def config_difference(stored: dict[str, Any], wanted: ExtractConfig) -> tuple[str, Any, Any] | None:
    """The first feature-deciding key whose value differs, as (key, stored, wanted), or None.

    Args:
        stored: the ``config`` mapping read from a store's ``store.json``.
        wanted: the config a caller opens the store with.
    """
    want = wanted.feature_dict()
    for key in sorted(set(want) | (set(stored) - RUNTIME_KEYS)):
        if key in RUNTIME_KEYS:
            continue
        old, new = (d.get(key, LEGACY_DEFAULTS.get(key, "<missing>")) for d in (stored, want))
        if old != new:
            return key, old, new
    return None


@dataclass
class FeatureRecord:
    """Everything extracted from one video. A modality the file lacks is None, never zeros.

    Attributes:
        id: the video's id (manifest entry id, or the file stem).
        frames: (T, Dv) float32 frame-CNN features; None when the file has no video stream.
        audio: (A, Da) float32 SoundNet features per time step; None when the file has no
            audio stream (every MSVD clip). A silent track is present audio.
        audio_objects: (1000,) float32 SoundNet object posteriors (ImageNet order), or None.
        audio_places: (401,) float32 SoundNet place posteriors (Places2 order), or None.
        frame_objects: (1000,) float32 frame-CNN posteriors averaged over frames, or None.
        meta: JSON-able facts: source, duration_s, fps, frames_sampled, frame_times_s,
            has_video_stream, has_audio_stream, encoders (names/versions), config_fingerprint.
    """

    id: str
    frames: np.ndarray | None
    audio: np.ndarray | None
    audio_objects: np.ndarray | None = None
    audio_places: np.ndarray | None = None
    frame_objects: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    ARRAYS: ClassVar[tuple[str, ...]] = ("frames", "audio", "audio_objects", "audio_places", "frame_objects")

    @property
    def has_audio(self) -> bool:
        """True when the record carries audio features (the file had an audio stream)."""
        return self.audio is not None


@dataclass
class ExtractSummary:
    """What one ``extract_to_store`` run did; ``to_json()`` is the ``fusion extract --json`` shape."""

    done: int = 0
    skipped: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    store: str = ""
    elapsed_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Exactly ``{"done", "skipped", "failed": [{"file", "error"}], "store"}``."""
        return {"done": self.done, "skipped": self.skipped, "failed": list(self.failed), "store": self.store}
