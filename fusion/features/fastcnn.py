"""The frame CNN for bulk extraction: preprocessing split from the forward pass, and a
frozen, inference-optimised TorchScript graph of the encoder.

Two things make bulk extraction faster than calling ``describe_frames`` per clip:

* :meth:`FrameRunner.prepare` (resize, crop, normalise) runs in the decode thread, so it
  overlaps with the previous clip's forward pass;
* :meth:`FrameRunner.run` uses ``torch.jit.optimize_for_inference(torch.jit.freeze(trace))``:
  batch norm folded into the convolutions and oneDNN kernels with fused activations. On
  the 2-core benchmark machine this takes about a third off the CPU time of the eager
  channels-last forward of EfficientNet-Lite0 (see ``results/bench_extract.md``). Features
  agree with the eager model to ~1e-5 (float rounding of the folded batch norm); the
  tests check 1e-4 against ``fusion.encoders.frames.describe_frames``.

A backbone that cannot be traced (e.g. no classifier head, so a None output) falls back
to the eager model, with a log line.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

TRACE_BATCH = 2  # trace with a small batch; the graph is batch-size agnostic
PREPROCESS_CHUNK = 8  # frames resized at once (bounds the full-resolution float buffer)


class FrameRunner:
    """Preprocess and run one frame-CNN bundle's model.

    Args:
        bundle: a ``FrameEncoderBundle`` (``preprocess`` with a ``crop`` size).
        model: ``bundle.get_model(...)``: ``x (B, 3, H, W) -> (features (B, D), logits (B, C) | None)``.
        device: where both run.
        optimize: build the frozen TorchScript graph (else always eager).
    """

    def __init__(self, bundle: Any, model: nn.Module, device: torch.device, optimize: bool = True) -> None:
        self.bundle = bundle
        self.model = model
        self.device = device
        self.preprocess = bundle.preprocess.to(device)
        self.forward: Any = model
        self.optimized = False
        if optimize:
            self._optimize()

    def _optimize(self) -> None:
        crop = int(getattr(self.preprocess, "crop", 224))
        example = torch.zeros(TRACE_BATCH, 3, crop, crop, device=self.device)
        example = example.contiguous(memory_format=torch.channels_last)  # (2, 3, crop, crop)
        try:
            with torch.no_grad():
                traced = torch.jit.trace(self.model.eval(), example, check_trace=False)
                graph = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
                graph(example)  # fail here, not on the first clip
        except Exception as err:  # noqa: BLE001 (any tracing problem: fall back to eager, still correct)
            logger.info("frame CNN %s runs eagerly (not traceable: %s)", getattr(self.bundle, "name", "?"), err)
            return
        self.forward = graph
        self.optimized = True

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
                feats, logits = self.forward(pixels[start : start + batch_size])  # (B, D), (B, C) | None
                features.append(feats.float().cpu())
                if logits is not None:
                    probs = torch.softmax(logits.float(), dim=1).sum(dim=0)  # (C,)
                    prob_sum = probs if prob_sum is None else prob_sum + probs
        objects = None if prob_sum is None else (prob_sum / pixels.shape[0]).cpu().numpy()
        return torch.cat(features).numpy(), objects
