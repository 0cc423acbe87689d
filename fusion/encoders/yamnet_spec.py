"""YAMNet's layer table (MobileNet-v1 on log-mel patches) and TensorFlow's "same" padding.

The table is the original ``_YAMNET_LAYER_DEFS`` (tensorflow/models ``research/audioset/yamnet``,
``yamnet.py``): a 3x3 convolution then 13 depthwise-separable blocks, all 3x3 with "same"
padding, batch norm and ReLU. This module holds no weights: the model
(:mod:`fusion.encoders.yamnet`) and its TFLite weight reader both read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

EMBEDDING_DIM = 1024  # the last block's channels, averaged over time and frequency
YAMNET_LAYER_DEFS: tuple[tuple[str, int, int], ...] = (  # (kind, stride, out channels); 3x3 kernels
    ("conv", 2, 32), ("separable", 1, 64), ("separable", 2, 128), ("separable", 1, 128),
    ("separable", 2, 256), ("separable", 1, 256), ("separable", 2, 512), ("separable", 1, 512),
    ("separable", 1, 512), ("separable", 1, 512), ("separable", 1, 512), ("separable", 1, 512),
    ("separable", 2, 1024), ("separable", 1, 1024),
)


@dataclass(frozen=True)
class ConvSpec:
    """One convolution of YAMNet (batch norm folded in), followed by ReLU."""

    name: str  # "layer1_conv", "layer2_depthwise", "layer2_pointwise", ...
    kind: str  # "conv", "depthwise" or "pointwise"
    in_channels: int
    out_channels: int
    kernel: int
    stride: int


def conv_specs() -> tuple[ConvSpec, ...]:
    """The 27 convolutions of :data:`YAMNET_LAYER_DEFS`, input to output."""
    specs, channels = [], 1
    for number, (kind, stride, out) in enumerate(YAMNET_LAYER_DEFS, start=1):
        if kind == "conv":
            specs.append(ConvSpec(f"layer{number}_conv", "conv", channels, out, 3, stride))
        else:
            specs.append(ConvSpec(f"layer{number}_depthwise", "depthwise", channels, channels, 3, stride))
            specs.append(ConvSpec(f"layer{number}_pointwise", "pointwise", channels, out, 1, 1))
        channels = out
    return tuple(specs)


YAMNET_CONVS = conv_specs()


def tf_same_pad(x: Tensor, kernel: int, stride: int) -> Tensor:
    """Pad ``(B, C, H, W)`` as TensorFlow's ``padding="same"`` (the extra row/column at the end)."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return nn.functional.pad(x, pads)
