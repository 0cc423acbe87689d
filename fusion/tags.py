"""What a media file sounds and looks like: SoundNet places/objects + frame-CNN objects.

``tag_media(path)`` returns the ``fusion tags --json`` shape::

    {"file": str,
     "audio": null | {"places": [{"label": str, "score": float}, ...], "objects": [...]},
     "frames": null | {"objects": [{"label": str, "score": float}, ...]}}

``null`` where the file has no such stream (MSVD clips have no audio; a WAV has no frames).
Scores are posteriors: SoundNet's softmax per output step averaged over time (as SoundNet's
demo does), the frame CNN's softmax averaged over the sampled frames. Labels are plain class
names (``railroad_track``, ``tabby``). Use one :class:`Tagger` for many files: the models
load once, on first need.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusion.encoders import get_audio_bundle, get_frame_bundle
from fusion.encoders.frames import FrameEncoder, describe_frames
from fusion.encoders.soundnet import SoundNet8, analyse_audio
from fusion.errors import ConfigError

logger = logging.getLogger(__name__)


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


class Tagger:
    """Loads the encoders once and tags many files.

    Args:
        top_k: labels per list.
        num_frames: frames sampled uniformly over a video.
        audio_encoder: audio bundle name (``soundnet8``).
        soundnet_weights: a ``sound8.npy``; default: the installed ``soundnet`` package's.
        frame_encoder: frame bundle name (``efficientnet_lite0``, ``resnet50``, ``timm:<arch>``...).
        frame_weights: the frame CNN's weights file; default: the packaged one.
        device: torch device (default CPU).
        batch_size: frames per CNN forward pass.
        random_weights: random encoders (tests only).

    Raises:
        ConfigError: ``top_k`` or ``num_frames`` < 1, or a frame encoder without ImageNet classifier.
    """

    def __init__(self, top_k: int = 5, num_frames: int = 16, audio_encoder: str = "soundnet8",
                 soundnet_weights: str | Path | None = None, frame_encoder: str = "efficientnet_lite0",
                 frame_weights: str | Path | None = None, device: str | torch.device = "cpu",
                 batch_size: int = 32, random_weights: bool = False) -> None:
        if top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k}; e.g. --top 5")
        if num_frames < 1:
            raise ConfigError(f"num_frames must be >= 1, got {num_frames}; e.g. --frames 16")
        self.top_k, self.num_frames, self.batch_size = top_k, num_frames, batch_size
        self.device = torch.device(device)
        self.audio_bundle = get_audio_bundle(audio_encoder)
        self.frame_bundle = get_frame_bundle(frame_encoder)
        if self.frame_bundle.labels is None:
            raise ConfigError(f"frame encoder {frame_encoder!r} has no ImageNet classifier; tags need one")
        self._soundnet_weights, self._frame_weights = soundnet_weights, frame_weights
        self._random = random_weights
        self._soundnet: SoundNet8 | None = None
        self._frame_model: FrameEncoder | None = None
        self._object_names = tuple(label.slug for label in self.audio_bundle.object_labels)
        self._frame_names = tuple(label.slug for label in self.frame_bundle.labels)

    @property
    def soundnet(self) -> SoundNet8:
        """SoundNet, loaded on first use (WeightsError if its weights are missing)."""
        if self._soundnet is None:
            self._soundnet = self.audio_bundle.get_model(self._soundnet_weights, random_init=self._random)
            self._soundnet.to(self.device)
        return self._soundnet

    @property
    def frame_model(self) -> FrameEncoder:
        """The frame CNN, loaded on first use (WeightsError if its weights are missing)."""
        if self._frame_model is None:
            self._frame_model = self.frame_bundle.get_model(self._frame_weights, random_init=self._random)
            self._frame_model.to(self.device)
        return self._frame_model

    def tag_audio(self, waveform: np.ndarray) -> dict[str, list[dict[str, Any]]]:
        """Top places and objects of a float32 ``(S,)`` 22,050 Hz mono waveform in [-1, 1]."""
        _, objects, places = analyse_audio(self.soundnet, waveform, (), self.audio_bundle.preprocess)
        return {"places": top_labels(places, self.audio_bundle.place_labels, self.top_k),
                "objects": top_labels(objects, self._object_names, self.top_k)}

    def tag_frames(self, frames: np.ndarray) -> dict[str, list[dict[str, Any]]]:
        """Top objects of uint8 ``(T, H, W, 3)`` RGB frames (posteriors averaged over frames)."""
        desc = describe_frames(self.frame_model, self.frame_bundle, frames, self.batch_size)
        return {"objects": top_labels(desc.objects, self._frame_names, self.top_k)}

    def tag(self, path: str | Path) -> dict[str, Any]:
        """Decode ``path`` and tag its streams (MediaError if unreadable)."""
        from fusion.media import decode

        media = decode(path, num_frames=self.num_frames)
        audio = None
        if media.audio is not None:
            if media.audio.size:
                audio = self.tag_audio(media.audio)
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
    audio, frames = result["audio"], result["frames"]
    columns.append(("sound: place", audio["places"] if audio else None))
    columns.append(("sound: object", audio["objects"] if audio else None))
    columns.append(("picture: object", frames["objects"] if frames else None))
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
