"""Matrix products as TFLite's "dynamic range" kernels compute them (int8 weights, int8-rounded inputs).

A TFLite model converted with dynamic range quantisation keeps int8 weights with float scales
and float activations. At run time the interpreter's default CPU delegate, XNNPACK, quantises
each input row of a fully connected layer or a 1x1 convolution (one pixel's channels) to int8
on the fly, asymmetrically, and multiplies integers (``qd8_f32_qc8w`` kernels): per row the
range ``[min(x, 0), max(x, 0)]`` maps onto [-128, 127] with scale ``(max - min) / 255`` and a
rounded zero point (``xnn_f32_qd8_asymmetric_quantization_params``); the int32 dot products
are scaled back by ``input_scale * weight_scale`` and the bias is added.

:func:`dynamic_int8_linear` computes the same integers in float32, exactly: every product of
an int8 input and an int8 weight is at most 128 * 127 in magnitude, so sums over up to 1,024
inputs stay below 2^24 and float32 holds every partial sum exactly, in any summation order.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

INT8_MIN, INT8_MAX = -128.0, 127.0
MAX_EXACT_INPUTS = 1024  # 1024 * 128 * 127 < 2**24: float32 sums of int8 products stay exact


def quantize_rows(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """XNNPACK's dynamic asymmetric int8 quantisation, one scale per row (the last axis).

    Args:
        x: float32 ``(..., K)``.

    Returns:
        ``(q (..., K), zero_point (..., 1), scale (..., 1))`` float32; ``q`` and ``zero_point``
        hold integers in [-128, 127] and ``x ~= (q - zero_point) * scale``.
    """
    low, high = torch.aminmax(x, dim=-1, keepdim=True)  # one pass over x
    low, high = low.clamp(max=0.0), high.clamp(min=0.0)
    scale = torch.where(high > low, (high - low) / 255.0, torch.ones_like(high))
    low_scaled, high_scaled = low / scale, high / scale
    # the zero point from the end of the range with the smaller rounding error, as XNNPACK picks it
    zero_point = torch.where(low_scaled + high_scaled - 1.0 > 0.0, INT8_MIN - low_scaled, INT8_MAX - high_scaled)
    zero_point = torch.round(zero_point.clamp(INT8_MIN, INT8_MAX))
    q = (x / scale).round_().add_(zero_point).clamp_(INT8_MIN, INT8_MAX)  # in place: one temporary
    return q, zero_point, scale


def symmetric_scales(weight: Tensor) -> Tensor:
    """Per-output-channel int8 scales ``max|w| / 127`` of a float ``(O, ...)`` weight: float32 ``(O,)``."""
    scales = weight.detach().abs().flatten(1).amax(dim=1) / INT8_MAX
    return torch.where(scales > 0, scales, torch.ones_like(scales))


def integer_weight(weight: Tensor, weight_scale: Tensor) -> tuple[Tensor, Tensor]:
    """The stored int8 values of a dequantised weight and their row sums.

    Args:
        weight: float32 ``(O, K)`` dequantised int8 weight.
        weight_scale: float32 ``(O,)`` per-output-channel scales.

    Returns:
        ``(weight_int (O, K), row_sums (O,))`` float32 holding integers; pass them to
        :func:`dynamic_int8_linear` to skip recomputing them on every call.
    """
    weight_int = torch.round(weight / weight_scale[:, None])  # (O, K)
    return weight_int, weight_int.sum(dim=1)


def dynamic_int8_linear(x: Tensor, weight: Tensor, weight_scale: Tensor, bias: Tensor | None = None,
                        integers: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """``x @ weight.T + bias`` as a TFLite dynamic-range kernel computes it under XNNPACK.

    Args:
        x: float32 ``(..., K)`` input, ``K <= 1024``.
        weight: float32 ``(O, K)`` dequantised int8 weight (``int8 * weight_scale[:, None]``).
        weight_scale: float32 ``(O,)`` the weight's per-output-channel scales.
        bias: float32 ``(O,)`` or None.
        integers: ``integer_weight(weight, weight_scale)`` computed once (a cache); None: computed here.

    Returns:
        float32 ``(..., O)``.

    Raises:
        ValueError: ``K > 1024`` (the float32 sums would no longer be exact).
    """
    if x.shape[-1] > MAX_EXACT_INPUTS:
        raise ValueError(f"dynamic_int8_linear is exact for at most {MAX_EXACT_INPUTS} inputs, got {x.shape[-1]}")
    q, zero_point, scale = quantize_rows(x)
    weight_int, row_sums = integers if integers is not None else integer_weight(weight, weight_scale)
    # the int32 accumulator sum(q * w) - zero_point * sum(w): both terms are exact in float32 and the
    # subtraction rounds once, to the float32 nearest the exact integer, as XNNPACK's int32 -> float does
    accumulator = (q @ weight_int.T).sub_(zero_point * row_sums)  # (..., O)
    rescaled = accumulator.mul_(scale)  # (..., O) float(acc) * input scale
    if bias is None:
        return rescaled * weight_scale
    # * weight scale + bias as one fused multiply-add (XNNPACK's epilogue): exact product in float64, one rounding
    return rescaled.double().mul_(weight_scale.double()).add_(bias.double()).float()


class DerivedTensors:
    """Tensors derived from a module's weights (integer weights, concatenations), built once.

    An entry is rebuilt when any of its source tensors changed: loaded, moved to another device
    or edited in place (the key is each source's storage address and version counter). Inference
    tensors have no version counter: their derived tensors are built on every call.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[tuple[int, ...], object]] = {}

    def get(self, name: str, sources: tuple[Tensor, ...], build: Callable[[], object]) -> object:
        """``build()`` the first time, or when a tensor of ``sources`` changed; else the stored value."""
        if any(t.is_inference() for t in sources):
            # inference tensors (made under torch.inference_mode) keep no version counter, so an
            # in-place edit could not be seen: build every time rather than risk a stale entry
            with torch.no_grad():
                return build()
        key = tuple(x for t in sources for x in (t.data_ptr(), t._version))
        entry = self._entries.get(name)
        if entry is None or entry[0] != key:
            with torch.no_grad():
                entry = (key, build())
            self._entries[name] = entry
        return entry[1]
