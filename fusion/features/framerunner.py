"""The frame CNN for bulk extraction: preprocessing split from the forward pass.

``fusion.encoders.frames.describe_frames`` preprocesses and runs a clip in one call. For
bulk extraction the two halves are separated so that :meth:`FrameRunner.prepare` (resize,
crop, normalise) runs in the decode thread, overlapping the previous clip's forward pass,
and :meth:`FrameRunner.run` does the batched forward. The arithmetic is the same as
``describe_frames`` (the tests compare the two).

Measured on the 2-core benchmark machine (``scripts/bench_extract.py``, EfficientNet-Lite0,
32 frames at 224 px): small forward batches are much faster than one batch of 32, as
activations then stay in cache (about 0.16 s per clip at 4 frames per batch vs 0.35 s at
32), which is why ``ExtractConfig.batch_size`` defaults to 4. A frozen TorchScript graph
(``torch.jit.optimize_for_inference``) and NCHW vs channels-last input were no faster there,
so the eager channels-last model is used.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

PREPROCESS_CHUNK = 8  # frames resized at once (bounds the full-resolution float buffer)


class FrameRunner:
    """Preprocess and run one frame-CNN bundle's model.

    Args:
        bundle: a ``FrameEncoderBundle`` (its ``preprocess`` module).
        model: ``bundle.get_model(...)``: ``x (B, 3, H, W) -> (features (B, D), logits (B, C) | None)``.
        device: where both run.
    """

    def __init__(self, bundle: Any, model: nn.Module, device: torch.device) -> None:
        self.bundle = bundle
        self.model = model
        self.device = device
        self.preprocess = bundle.preprocess.to(device)

    def prepare(self, frames: np.ndarray) -> Tensor:
        """uint8 ``(T, H, W, 3)`` RGB -> float32 ``(T, 3, crop, crop)`` channels-last model input.

        Frames are resized :data:`PREPROCESS_CHUNK` at a time: the float copy at source
        resolution is the largest buffer of extraction (32 frames of 1280x720 are 354 MB),
        and resizing is per image, so chunking changes no value.
        """
        out = []
        with torch.inference_mode():
            for start in range(0, frames.shape[0], PREPROCESS_CHUNK):
                chunk = torch.from_numpy(np.ascontiguousarray(frames[start : start + PREPROCESS_CHUNK]))  # (C, H, W, 3)
                out.append(self.preprocess(chunk.to(self.device)))  # (C, 3, crop, crop)
            return torch.cat(out).contiguous(memory_format=torch.channels_last)  # (T, 3, crop, crop)

    def run(self, pixels: Tensor, batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Features and mean class posteriors of prepared frames, ``batch_size`` at a time.

        Args:
            pixels: float32 ``(T, 3, crop, crop)`` from :meth:`prepare`.
            batch_size: frames per forward pass.

        Returns:
            ``(features (T, D) float32, objects (C,) float32 | None)``: objects are the softmax
            posteriors averaged over the T frames (as ``describe_frames``).
        """
        features, prob_sum = [], None
        with torch.inference_mode():
            for start in range(0, pixels.shape[0], batch_size):
                feats, logits = self.model(pixels[start : start + batch_size])  # (B, D), (B, C) | None
                features.append(feats.float().cpu())
                if logits is not None:
                    probs = torch.softmax(logits.float(), dim=1).sum(dim=0)  # (C,)
                    prob_sum = probs if prob_sum is None else prob_sum + probs
        objects = None if prob_sum is None else (prob_sum / pixels.shape[0]).cpu().numpy()
        return torch.cat(features).numpy(), objects
