"""What a feature record is made of: the extraction config, the record and the run summary.

The config is saved in every store (``store.json``); two configs that would give different
arrays for the same video must never share a store. :data:`RUNTIME_KEYS` lists the keys
that only change speed, not the numbers, so they may differ between runs on one store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fusion.config import renamed_to_current, to_dict

# Keys of ExtractConfig that change how fast features are made, not what they are.
# batch_size: frames per CNN forward; batch-size-dependent kernels differ by float rounding only.
# decode_workers: background decode threads (prefetch of the next clips while the CNN runs).
# decode_processes: decode worker processes (the same prefetch, off the main process's GIL).
RUNTIME_KEYS: frozenset[str] = frozenset({"batch_size", "decode_workers", "decode_processes"})

# An encoder name of features computed outside fusion (``fusion import-features``): ``imported:<name>``.
IMPORTED_PREFIX = "imported:"

# Keys added after stores existed, with the value every older store was made with. At that
# value they are left out of the fingerprint, so older stores and checkpoints still match.
LEGACY_DEFAULTS: dict[str, Any] = {"frame_grid": 1, "precision": "fp32", "extra_audio_encoders": {},
                                   "posteriors_per_step": False}

# Keys renamed after stores existed are hashed under their former name, so the fingerprint (and
# the default store folder named after it) of a store made before the rename stays the same.
FINGERPRINT_NAMES: dict[str, str] = {"audio_weights": "soundnet_weights"}

AUDIO = "audio"  # the modality names of posterior keys ("audio/imagenet")
FRAMES = "frames"


def posterior_key(modality: str, space: str) -> str:
    """The key of one (modality, label space) in :attr:`FeatureRecord.posteriors`: ``"audio/places2"``."""
    return f"{modality}/{space}"


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
        audio_encoder: the audio encoder whose per-step features are the record's ``audio``
            (a name in :data:`fusion.encoders.registry.AUDIO_ENCODERS`, ``soundnet8``); its
            label-space posteriors are stored too.
        audio_layer: that encoder's layer whose per-step activations are stored (SoundNet's
            pool5: 256-d, the layer SoundNet's paper found best for transfer together with conv7).
        audio_weights: local weights file of ``audio_encoder``; None = the bundle's default.
        extra_audio_encoders: further audio encoders whose label-space posteriors are stored
            beside the main one's (name -> weights file, null = the bundle's default), e.g.
            ``{yamnet: null}``; their features are not stored.
        posteriors_per_step: also store every encoder's posteriors per output step (per frame
            for the frame CNN), not only their time average.
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
    audio_weights: str | None = None
    extra_audio_encoders: dict[str, str | None] = field(default_factory=dict)
    posteriors_per_step: bool = False
    batch_size: int = 4
    decode_workers: int = 1
    decode_processes: int = 0
    precision: str = "fp32"
    random_weights: bool = False

    RENAMED_KEYS: ClassVar[dict[str, str]] = {"soundnet_weights": "audio_weights"}

    def __post_init__(self) -> None:
        if self.frames_per_clip < 1:
            raise ValueError(f"frames_per_clip must be >= 1, got {self.frames_per_clip}")
        if not 1 <= self.frame_grid <= 7:
            raise ValueError(f"frame_grid must be 1 (pooled) to 7 (cells per side), got {self.frame_grid}")
        if self.frame_rate_hz is not None and self.frame_rate_hz <= 0:
            raise ValueError(f"frame_rate_hz must be > 0 or null, got {self.frame_rate_hz}")
        self._check_audio_encoders()
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.decode_workers < 0 or self.decode_processes < 0:
            raise ValueError(f"decode_workers and decode_processes must be >= 0, got {self.decode_workers}, "
                             f"{self.decode_processes}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, got {self.precision!r}")

    def _check_audio_encoders(self) -> None:
        """Every audio encoder is registered, the layer is the main one's, and no label space is named twice."""
        from fusion.encoders.registry import AUDIO_ENCODERS

        if not self.audio_encoder or self.audio_encoder.startswith(IMPORTED_PREFIX):
            names = ", ".join(AUDIO_ENCODERS.names())
            if self.extra_audio_encoders:
                raise ValueError(f"extra_audio_encoders need a main audio_encoder ({names}); drop them")
            return  # no audio, or audio features computed outside fusion (fusion.features.imported)
        for name in (self.audio_encoder, *self.extra_audio_encoders):
            if name not in AUDIO_ENCODERS:
                raise ValueError(f"audio encoder {name!r} is unknown; use one of {', '.join(AUDIO_ENCODERS.names())}")
        layers = AUDIO_ENCODERS.get(self.audio_encoder).layers
        if self.audio_layer not in layers:
            raise ValueError(f"audio_layer {self.audio_layer!r} is not a layer of {self.audio_encoder}; "
                             f"use one of {', '.join(layers)}")
        if self.audio_encoder in self.extra_audio_encoders:
            raise ValueError(f"extra_audio_encoders names the main audio_encoder {self.audio_encoder!r}; drop it there")
        seen: dict[str, str] = {}
        for name in (self.audio_encoder, *self.extra_audio_encoders):
            for space in AUDIO_ENCODERS.get(name).label_spaces:
                if space in seen:
                    raise ValueError(f"audio encoders {seen[space]} and {name} both give label space {space!r}; "
                                     "keep one of them")
                seen[space] = name

    def feature_dict(self) -> dict[str, Any]:
        """The keys that decide the arrays (everything but :data:`RUNTIME_KEYS`; :data:`LEGACY_DEFAULTS` left out at their value)."""
        return {k: v for k, v in to_dict(self).items()
                if k not in RUNTIME_KEYS and not (k in LEGACY_DEFAULTS and v == LEGACY_DEFAULTS[k])}

    def fingerprint(self) -> str:
        """A short stable hash of :meth:`feature_dict`, stamped into every record's meta."""
        named = {FINGERPRINT_NAMES.get(k, k): v for k, v in self.feature_dict().items()}
        blob = json.dumps(named, sort_keys=True).encode("utf-8")
        return hashlib.sha1(blob).hexdigest()[:16]


def config_difference(stored: dict[str, Any], wanted: ExtractConfig) -> tuple[str, Any, Any] | None:
    """The first feature-deciding key whose value differs, as (key, stored, wanted), or None.

    Args:
        stored: the ``config`` mapping read from a store's ``store.json``.
        wanted: the config a caller opens the store with.
    """
    stored = renamed_to_current(ExtractConfig, stored)
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
        audio: (A, Da) float32 audio-encoder features per time step; None when the file has no
            audio stream (every MSVD clip). A silent track is present audio.
        posteriors: ``"modality/label space"`` (:func:`posterior_key`) -> float32 ``(C,)`` class
            posteriors averaged over time: ``audio/imagenet`` (1000) and ``audio/places2`` (401)
            from SoundNet, ``frames/imagenet`` from the frame CNN, ``audio/audioset`` (521) from
            an AudioSet encoder. A modality the file lacks has no keys.
        posteriors_per_step: the same keys -> float32 ``(S, C)`` per output step (per frame),
            where extraction was asked for them (``posteriors_per_step``), else empty.
        meta: JSON-able facts: source, duration_s, fps, frames_sampled, frame_times_s,
            has_video_stream, has_audio_stream, encoders (names/versions), config_fingerprint.
    """

    id: str
    frames: np.ndarray | None
    audio: np.ndarray | None
    posteriors: dict[str, np.ndarray] = field(default_factory=dict)
    posteriors_per_step: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    ARRAYS: ClassVar[tuple[str, ...]] = ("frames", "audio")

    @property
    def has_audio(self) -> bool:
        """True when the record carries audio features (the file had an audio stream)."""
        return self.audio is not None

    def posterior(self, modality: str, space: str) -> np.ndarray | None:
        """The time-pooled ``(C,)`` posteriors of one (modality, label space), or None where absent."""
        return self.posteriors.get(posterior_key(modality, space))

    def spaces(self, modality: str) -> list[str]:
        """The label spaces this record has posteriors of, for ``modality``, in stored order."""
        prefix = f"{modality}/"
        return [key[len(prefix):] for key in self.posteriors if key.startswith(prefix)]

    def without_modality(self, modality: str, **changes: Any) -> FeatureRecord:
        """A copy with ``modality``'s posteriors (pooled and per step) dropped and ``changes`` applied."""
        return self.replace_posteriors(modality, {}, {}, **changes)

    def replace_posteriors(self, modality: str, pooled: dict[str, np.ndarray], per_step: dict[str, np.ndarray],
                           **changes: Any) -> FeatureRecord:
        """A copy whose ``modality`` posteriors are ``pooled`` / ``per_step`` (keyed by label space)."""
        prefix = f"{modality}/"

        def merged(old: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            kept = {k: v for k, v in old.items() if not k.startswith(prefix)}
            return {**kept, **{posterior_key(modality, s): v for s, v in new.items()}}

        return dataclasses.replace(self, posteriors=merged(self.posteriors, pooled),
                                   posteriors_per_step=merged(self.posteriors_per_step, per_step), **changes)


@dataclass
class ExtractSummary:
    """What one ``extract_to_store`` run did; ``to_json()`` is the ``fusion extract --json`` shape."""

    done: int = 0
    skipped: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    store: str = ""
    elapsed_s: float = 0.0
    repaired: int = 0  # corrupt records found and re-extracted (counted in ``done`` too)

    def to_json(self) -> dict[str, Any]:
        """Exactly ``{"done", "skipped", "repaired", "failed": [{"file", "error"}], "store"}``."""
        return {"done": self.done, "skipped": self.skipped, "repaired": self.repaired, "failed": list(self.failed),
                "store": self.store}
