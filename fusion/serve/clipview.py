"""Small views of a decoded clip for the page: the audio's status and a strip of its frames."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np

logger = logging.getLogger(__name__)

AudioStatus = Literal["present", "silent", "absent"]
# Peak amplitude under which a track counts as silent: -80 dBFS, below the noise floor of
# 16-bit audio with dither (~-96 dBFS plus margin for lossy codecs' rounding).
SILENCE_PEAK = 1e-4
STRIP_FRAMES = 8
STRIP_HEIGHT_PX = 96


def audio_status(waveform: np.ndarray | None) -> AudioStatus:
    """``"absent"`` without an audio stream, ``"silent"`` when every sample is near zero, else ``"present"``.

    Args:
        waveform: float32 ``(S,)`` mono samples in [-1, 1], or None when the file has no audio stream.
    """
    if waveform is None:
        return "absent"
    if waveform.size == 0 or float(np.max(np.abs(waveform))) < SILENCE_PEAK:
        return "silent"
    return "present"


def frame_strip(frames: np.ndarray, count: int = STRIP_FRAMES, height_px: int = STRIP_HEIGHT_PX) -> np.ndarray:
    """Up to ``count`` frames, evenly spaced, scaled to ``height_px`` and laid side by side.

    Args:
        frames: uint8 ``(T, H, W, 3)`` RGB frames as sampled for the frame CNN.
        count: how many frames the strip shows.
        height_px: the strip's height.

    Returns:
        uint8 ``(height_px, W', 3)`` image with 4-pixel white gaps between frames.
    """
    from PIL import Image

    total = int(frames.shape[0])
    if total == 0:
        return np.full((height_px, height_px, 3), 255, dtype=np.uint8)
    picks = np.unique(np.linspace(0, total - 1, num=min(count, total)).round().astype(int))
    height, width = frames.shape[1:3]
    new_width = max(1, round(width * height_px / max(1, height)))
    tiles = [np.asarray(Image.fromarray(frames[i]).resize((new_width, height_px), Image.BILINEAR)) for i in picks]
    gap = np.full((height_px, 4, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for tile in tiles:
        parts.extend([tile, gap])
    return np.concatenate(parts[:-1], axis=1)  # (height_px, W', 3)
