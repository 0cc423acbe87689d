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
    low = torch.clamp(x.amin(dim=-1, keepdim=True), max=0.0)
    high = torch.clamp(x.amax(dim=-1, keepdim=True), min=0.0)
    scale = torch.where(high > low, (high - low) / 255.0, torch.ones_like(high))
    low_scaled, high_scaled = low / scale, high / scale
    # the zero point from the end of the range with the smaller rounding error, as XNNPACK picks it
    zero_point = torch.where(low_scaled + high_scaled - 1.0 > 0.0, INT8_MIN - low_scaled, INT8_MAX - high_scaled)
    zero_point = torch.round(zero_point.clamp(INT8_MIN, INT8_MAX))
    q = torch.clamp(torch.round(x / scale) + zero_point, INT8_MIN, INT8_MAX)
    return q, zero_point, scale


def symmetric_scales(weight: Tensor) -> Tensor:
    """Per-output-channel int8 scales ``max|w| / 127`` of a float ``(O, ...)`` weight: float32 ``(O,)``."""
    scales = weight.detach().abs().flatten(1).amax(dim=1) / INT8_MAX
    return torch.where(scales > 0, scales, torch.ones_like(scales))


def dynamic_int8_linear(x: Tensor, weight: Tensor, weight_scale: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` as a TFLite dynamic-range kernel computes it under XNNPACK.

    Args:
        x: float32 ``(..., K)`` input, ``K <= 1024``.
        weight: float32 ``(O, K)`` dequantised int8 weight (``int8 * weight_scale[:, None]``).
        weight_scale: float32 ``(O,)`` the weight's per-output-channel scales.
        bias: float32 ``(O,)`` or None.

    Returns:
        float32 ``(..., O)``.

    Raises:
        ValueError: ``K > 1024`` (the float32 sums would no longer be exact).
    """
    if x.shape[-1] > MAX_EXACT_INPUTS:
        raise ValueError(f"dynamic_int8_linear is exact for at most {MAX_EXACT_INPUTS} inputs, got {x.shape[-1]}")
    q, zero_point, scale = quantize_rows(x)
    weight_int = torch.round(weight / weight_scale[:, None])  # (O, K) the stored int8 values
    # the int32 accumulator sum(q * w) - zero_point * sum(w): both terms are exact in float32 and the
    # subtraction rounds once, to the float32 nearest the exact integer, as XNNPACK's int32 -> float does
    accumulator = q @ weight_int.T - zero_point * weight_int.sum(dim=1)  # (..., O)
    rescaled = accumulator * scale  # (..., O) float(acc) * input scale
    if bias is None:
        return rescaled * weight_scale
    # * weight scale + bias as one fused multiply-add (XNNPACK's epilogue): exact product in float64, one rounding
    return (rescaled.double() * weight_scale.double() + bias.double()).float()
