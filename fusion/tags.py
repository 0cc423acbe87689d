"""What a media file sounds and looks like: every label space its encoders know.

``tag_media(path)`` returns the ``fusion tags --json`` shape, keyed by label space::

    {"file": str,
     "audio": null | {"imagenet": [{"label": str, "score": float}, ...], "places2": [...], ...},
     "frames": null | {"imagenet": [{"label": str, "score": float}, ...]}}

``null`` where the file has no such stream (MSVD clips have no audio; a WAV has no frames).
The audio spaces are those of the audio encoders asked for (SoundNet: ``imagenet`` objects
and ``places2`` scenes; an AudioSet encoder: ``audioset``); ``fusion tags`` asks for SoundNet
and, where its weights are found, YAMNet (:func:`default_audio_encoders`). Scores are posteriors:
each audio encoder's scores per output step averaged over time (SoundNet's softmax, as its demo
does; YAMNet's multi-label sigmoids per 0.96 s patch, as its demo does), the frame CNN's
softmax averaged over the sampled frames. Labels are the bundles' class names
(``railroad_track``, ``tabby``). Use one :class:`Tagger` for many files: the models load
once, on first need.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fusion.encoders import get_audio_bundle, get_frame_bundle
from fusion.encoders.bundle import resample
from fusion.encoders.frames import FrameEncoder, describe_frames
from fusion.errors import ConfigError

logger = logging.getLogger(__name__)

# How the text table titles a label space's column ("sound: place"); other spaces by their name.
SPACE_TITLES = {"places2": "place", "imagenet": "object", "audioset": "AudioSet"}


def top_labels(probs: np.ndarray, names: tuple[str, ...], k: int) -> list[dict[str, Any]]:
    """The ``k`` most probable classes, best first.

    Args:
        probs: float32 ``(C,)`` posteriors.
        names: ``C`` plain class names.
        k: how many.

    Returns:
        ``[{"label": str, "score": float}, ...]`` (scores rounded to 6 decimals).
    """
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"label": names[i], "score": round(float(probs[i]), 6)} for i in order]


def space_tags(posteriors: Mapping[str, np.ndarray], spaces: Mapping[str, tuple[str, ...]],
               k: int) -> dict[str, list[dict[str, Any]]]:
    """Top ``k`` labels of each label space in ``posteriors`` (space -> ``(C,)``) that ``spaces`` names."""
    return {space: top_labels(probs, tuple(spaces[space]), k) for space, probs in posteriors.items() if space in spaces}


def record_tags(record: Any, audio_spaces: Mapping[str, tuple[str, ...]], frame_spaces: Mapping[str, tuple[str, ...]],
                k: int) -> dict[str, Any]:
    """The ``audio`` / ``frames`` parts of the tags shape from a feature record's stored posteriors."""
    from fusion.features.config import AUDIO, FRAMES

    def part(modality: str, spaces: Mapping[str, tuple[str, ...]]) -> dict[str, Any] | None:
        found = {s: record.posterior(modality, s) for s in record.spaces(modality)}
        return space_tags(found, spaces, k) or None

    return {"audio": part(AUDIO, audio_spaces), "frames": part(FRAMES, frame_spaces)}


DEFAULT_TAG_ENCODERS = ("soundnet8",)  # always shown by `fusion tags`
AUTO_TAG_ENCODERS = ("yamnet",)  # shown beside them where their weights are found (AudioSet)


def default_audio_encoders() -> dict[str, None]:
    """The audio encoders ``fusion tags`` uses when none is named: SoundNet, and YAMNet where its
    weights are found (``FUSION_DATA_DIR/yamnet/yamnet.tflite``; an info line names the fetch otherwise)."""
    encoders: dict[str, None] = dict.fromkeys(DEFAULT_TAG_ENCODERS)
    for name in AUTO_TAG_ENCODERS:
        bundle = get_audio_bundle(name)
        if bundle.weights.locate() is not None:
            encoders[name] = None
        else:
            logger.info("%s tags left out: no weights found (%s)", ", ".join(bundle.label_spaces), bundle.weights.fix)
    return encoders


class Tagger:
    """Loads the encoders once and tags many files.

    Args:
        top_k: labels per list.
        num_frames: frames sampled uniformly over a video.
        audio_encoders: audio encoder name -> its weights file (None: the bundle's default),
            default ``{"soundnet8": None}``; each adds its label spaces.
        frame_encoder: frame bundle name (``efficientnet_lite0``, ``resnet50``, ``timm:<arch>``...).
        frame_weights: the frame CNN's weights file; default: the packaged one.
        device: torch device (default CPU).
        batch_size: frames per CNN forward pass.
        random_weights: random encoders (tests only).

    Raises:
        ConfigError: ``top_k`` or ``num_frames`` < 1, or a frame encoder without ImageNet classifier.
        WeightsError: an unknown encoder name.
    """

    def __init__(self, top_k: int = 5, num_frames: int = 16, audio_encoders: Mapping[str, str | Path | None] | None = None,
                 frame_encoder: str = "efficientnet_lite0", frame_weights: str | Path | None = None,
                 device: str | torch.device = "cpu", batch_size: int = 32, random_weights: bool = False) -> None:
        if top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k}; e.g. --top 5")
        if num_frames < 1:
            raise ConfigError(f"num_frames must be >= 1, got {num_frames}; e.g. --frames 16")
        self.top_k, self.num_frames, self.batch_size = top_k, num_frames, batch_size
        self.device = torch.device(device)
        self._audio_weights = dict(audio_encoders if audio_encoders is not None else {"soundnet8": None})
        self.audio_bundles = {name: get_audio_bundle(name) for name in self._audio_weights}
        self.frame_bundle = get_frame_bundle(frame_encoder)
        if self.frame_bundle.labels is None:
            raise ConfigError(f"frame encoder {frame_encoder!r} has no ImageNet classifier; tags need one")
        self._frame_weights = frame_weights
        self._random = random_weights
        self._audio_models: dict[str, nn.Module] = {}
        self._frame_model: FrameEncoder | None = None

    def audio_model(self, name: str) -> nn.Module:
        """The audio encoder ``name``, loaded on first use (WeightsError if its weights are missing)."""
        if name not in self._audio_models:
            model = self.audio_bundles[name].get_model(self._audio_weights[name], random_init=self._random)
            self._audio_models[name] = model.to(self.device)
        return self._audio_models[name]

    @property
    def frame_model(self) -> FrameEncoder:
        """The frame CNN, loaded on first use (WeightsError if its weights are missing)."""
        if self._frame_model is None:
            self._frame_model = self.frame_bundle.get_model(self._frame_weights, random_init=self._random)
            self._frame_model.to(self.device)
        return self._frame_model

    def tag_audio(self, waveform: np.ndarray, sample_rate_hz: int = 22050) -> dict[str, list[dict[str, Any]]]:
        """Top labels of every audio label space for a float32 ``(S,)`` mono waveform in [-1, 1]."""
        out: dict[str, list[dict[str, Any]]] = {}
        for name, bundle in self.audio_bundles.items():
            wave = resample(waveform, sample_rate_hz, int(bundle.sample_rate_hz))  # (S',)
            with torch.inference_mode():
                analysis = bundle.analyse(self.audio_model(name), wave)
            out.update(space_tags(analysis.posteriors, bundle.label_spaces, self.top_k))
        return out

    def tag_frames(self, frames: np.ndarray) -> dict[str, list[dict[str, Any]]]:
        """Top objects of uint8 ``(T, H, W, 3)`` RGB frames (posteriors averaged over frames)."""
        desc = describe_frames(self.frame_model, self.frame_bundle, frames, self.batch_size)
        return space_tags({"imagenet": desc.objects}, self.frame_bundle.label_spaces, self.top_k)

    def tag(self, path: str | Path) -> dict[str, Any]:
        """Decode ``path`` and tag its streams (MediaError if unreadable)."""
        from fusion.media import decode

        media = decode(path, num_frames=self.num_frames)
        audio = None
        if media.audio is not None:
            if media.audio.size:
                audio = self.tag_audio(media.audio, int(media.sample_rate_hz))
            else:  # a declared audio stream without one decodable sample: nothing to hear
                logger.warning("%s: the audio stream holds no samples; audio tags left out", path)
        frames = self.tag_frames(media.frames) if media.frames is not None and len(media.frames) else None
        return {"file": str(path), "audio": audio, "frames": frames}


def tag_media(path: str | Path, top_k: int = 5, num_frames: int = 16, tagger: Tagger | None = None,
              **tagger_kwargs: Any) -> dict[str, Any]:
    """Tag one file (see the module docstring for the shape); pass ``tagger`` to reuse models."""
    tagger = tagger or Tagger(top_k=top_k, num_frames=num_frames, **tagger_kwargs)
    return tagger.tag(path)


def format_tags(result: dict[str, Any]) -> str:
    """A readable table of one ``tag_media`` result, modalities side by side."""
    columns: list[tuple[str, list[dict[str, Any]] | None]] = []
    for modality, prefix in (("audio", "sound"), ("frames", "picture")):
        part = result[modality]
        if not part:
            columns.append((f"{prefix}: {'object' if modality == 'frames' else 'tags'}", None))
        for space, items in (part or {}).items():
            columns.append((f"{prefix}: {SPACE_TITLES.get(space, space)}", items))
    rows = max((len(items) for _, items in columns if items), default=1)
    cells = []
    for title, items in columns:
        if items is None:
            body = ["(no audio stream)" if title.startswith("sound") else "(no video stream)"] + [""] * (rows - 1)
        else:
            body = [f"{item['label']} {item['score']:.3f}" for item in items] + [""] * (rows - len(items))
        cells.append([title] + body)
    widths = [max(len(text) for text in column) for column in cells]
    lines = [result["file"]]
    for r in range(rows + 1):
        rank = "#" if r == 0 else str(r)
        lines.append(f"  {rank:>2}  " + "  ".join(col[r].ljust(w) for col, w in zip(cells, widths)).rstrip())
    return "\n".join(lines)
