"""SoundNet 8's layer table and the arithmetic that follows from it (lengths, hops, windows).

Architecture: Aytar, Vondrick & Torralba, "SoundNet: Learning Sound Representations from
Unlabeled Video", NeurIPS 2016 (cvondrick/soundnet, ``soundnet8`` Torch model). Seven 1-D
convolutions with batch norm and ReLU, max pooling after conv1 (8), conv2 (8) and conv5 (4),
then two heads of kernel 8 stride 2 (``conv8`` objects, ``conv8_2`` places), no padding.

This module holds no weights and no preprocessing: the model (:mod:`fusion.encoders.soundnet`)
and its input policy (:mod:`fusion.encoders.soundnet_preprocess`) both read it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConvSpec:
    """One conv(+BN+ReLU)(+max-pool) block of SoundNet (cvondrick/soundnet ``soundnet8``)."""

    name: str
    out_channels: int
    kernel: int
    stride: int
    padding: int
    pool: int = 0  # max-pool kernel == stride; 0 = no pooling


SOUNDNET8_CONVS: tuple[ConvSpec, ...] = (
    ConvSpec("conv1", 16, 64, 2, 32, pool=8),
    ConvSpec("conv2", 32, 32, 2, 16, pool=8),
    ConvSpec("conv3", 64, 16, 2, 8),
    ConvSpec("conv4", 128, 8, 2, 4),
    ConvSpec("conv5", 256, 4, 2, 2, pool=4),
    ConvSpec("conv6", 512, 4, 2, 2),
    ConvSpec("conv7", 1024, 4, 2, 2),
)
HEAD_KERNEL, HEAD_STRIDE = 8, 2  # conv8 / conv8_2, no padding
BATCH_NORM_EPS = 1e-5  # Torch nn.SpatialBatchNormalization default, as trained

SOUNDNET_LAYERS: tuple[str, ...] = (
    "conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5", "conv6", "conv7",
)


def _pool_name(conv_name: str) -> str:
    return "pool" + conv_name[4:]


def _operations() -> list[tuple[str, int, int, int]]:
    """Every sliding window from the waveform to the heads, in order: ``(name, kernel, stride, padding)``."""
    ops: list[tuple[str, int, int, int]] = []
    for spec in SOUNDNET8_CONVS:
        ops.append((spec.name, spec.kernel, spec.stride, spec.padding))
        if spec.pool:
            ops.append((_pool_name(spec.name), spec.pool, spec.pool, 0))
    ops.append(("conv8", HEAD_KERNEL, HEAD_STRIDE, 0))
    return ops


def _layer_tables() -> tuple[dict[str, int], dict[str, int]]:
    """Feature size and hop (input samples per output step) of every layer, from the spec table."""
    dims: dict[str, int] = {}
    hops: dict[str, int] = {}
    hop = 1
    for spec in SOUNDNET8_CONVS:
        hop *= spec.stride
        dims[spec.name], hops[spec.name] = spec.out_channels, hop
        if spec.pool:
            hop *= spec.pool
            dims[_pool_name(spec.name)], hops[_pool_name(spec.name)] = spec.out_channels, hop
    hops["conv8"] = hop * HEAD_STRIDE
    return dims, hops


SOUNDNET_FEATURE_DIMS, SOUNDNET_HOP_SAMPLES = _layer_tables()  # pool5: 256-d, one step per 8192 samples


def output_lengths(num_samples: int) -> dict[str, int]:
    """Number of time steps of every layer (and ``conv8``) for an input of ``num_samples``.

    Non-positive lengths mean the input is too short for that layer.
    """
    lengths: dict[str, int] = {}
    length = num_samples
    for name, kernel, stride, padding in _operations():
        fits = length > 0 and length + 2 * padding >= kernel
        length = (length + 2 * padding - kernel) // stride + 1 if fits else 0
        lengths[name] = length
    return lengths


def receptive_field(layer: str, step: int) -> tuple[int, int]:
    """Input samples ``[first, last]`` that step ``step`` of ``layer`` (or ``conv8``) reads.

    Indices below 0 or past the input's end are the layers' zero padding, not audio.

    Args:
        layer: a name from :data:`SOUNDNET_LAYERS` or ``"conv8"``.
        step: output step index (0-based).

    Returns:
        ``(first, last)`` sample indices, both inclusive.

    Raises:
        ValueError: unknown layer.
    """
    ops = _operations()
    names = [op[0] for op in ops]
    if layer not in names:
        raise ValueError(f"unknown SoundNet layer {layer!r}; use one of {', '.join(names)}")
    first = last = step
    for _, kernel, stride, padding in reversed(ops[: names.index(layer) + 1]):
        first, last = first * stride - padding, last * stride - padding + kernel - 1
    return first, last


def _min_input_samples() -> int:
    """Smallest input length for which the heads give one step (exponential + binary search)."""
    low, high = 1, 1 << 14
    while output_lengths(high)["conv8"] < 1:
        low, high = high, high * 2
    while low < high:
        mid = (low + high) // 2
        if output_lengths(mid)["conv8"] >= 1:
            high = mid
        else:
            low = mid + 1
    return low


MIN_INPUT_SAMPLES: int = _min_input_samples()  # 209,374 samples = 9.5 s at 22,050 Hz
