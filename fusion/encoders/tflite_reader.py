"""A small reader of TensorFlow Lite flatbuffers: tensors (with their data) and operators.

Enough of the TFLite schema (``tensorflow/lite/schema/schema.fbs``, schema version 3) to load
a model's weights into PyTorch without TensorFlow: ``Model.subgraphs[0]`` with its tensors
(shape, type, buffer, name, quantisation) and operators (builtin code, inputs, outputs and the
options of convolutions), and ``Model.buffers``. Flatbuffer layout (flatbuffers.dev,
"Internals"): little-endian; a table starts with a signed offset back to its vtable, whose
``uint16`` entries give each field's offset in the table (0 = absent, the default applies);
vectors and strings are a ``uint32`` length followed by their elements.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fusion.errors import WeightsError

logger = logging.getLogger(__name__)

FILE_IDENTIFIER = b"TFL3"
# TensorType enum of schema.fbs -> NumPy dtype (the types a weight tensor can have)
TENSOR_TYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"), 1: np.dtype("<f2"), 2: np.dtype("<i4"), 3: np.dtype("u1"),
    4: np.dtype("<i8"), 7: np.dtype("<i2"), 9: np.dtype("i1"),
}
# BuiltinOperator enum of schema.fbs, the codes this project reads by name
BUILTIN_NAMES: dict[int, str] = {
    0: "ADD", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 6: "DEQUANTIZE", 9: "FULLY_CONNECTED",
    14: "LOGISTIC", 18: "MUL", 22: "RESHAPE", 34: "PAD", 36: "GATHER", 40: "MEAN", 45: "STRIDED_SLICE",
    65: "SLICE", 73: "LOG", 75: "SQRT",
}
PADDING_NAMES = {0: "SAME", 1: "VALID"}


@dataclass(frozen=True)
class TFLiteTensor:
    """One tensor of the graph.

    Attributes:
        index: position in ``subgraph.tensors``.
        name: the converter's name (fused layers join several names with ``;``).
        shape: the static shape.
        dtype: NumPy dtype of the stored values.
        data: the constant's values in ``shape`` (None for activations).
        scales: per-tensor (1) or per-channel quantisation scales (empty: not quantised).
        zero_points: matching zero points.
        quantized_dimension: the channel axis of per-channel scales.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | None
    scales: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    zero_points: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    quantized_dimension: int = 0

    def dequantized(self) -> np.ndarray:
        """The constant as float32: ``(q - zero_point) * scale`` per channel, or as stored if float.

        Raises:
            WeightsError: the tensor holds no constant data.
        """
        if self.data is None:
            raise WeightsError(f"TFLite tensor {self.name!r} holds no constant data")
        values = self.data.astype(np.float32)
        if self.scales.size == 0:
            return values
        axis_shape = [1] * values.ndim
        if self.scales.size > 1:
            axis_shape[self.quantized_dimension] = self.scales.size
        scales = self.scales.astype(np.float32).reshape(axis_shape)
        zeros = self.zero_points.astype(np.float32).reshape(axis_shape) if self.zero_points.size else 0.0
        return (values - zeros) * scales


@dataclass(frozen=True)
class TFLiteOperator:
    """One operator: its builtin name, tensor indices (-1 = optional input absent) and options."""

    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, int | str] = field(default_factory=dict)


@dataclass(frozen=True)
class TFLiteModel:
    """The first subgraph of a ``.tflite`` file."""

    tensors: tuple[TFLiteTensor, ...]
    operators: tuple[TFLiteOperator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


class _Buffer:
    """Field access on one flatbuffer (bounds-checked through ``struct``)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def u32(self, pos: int) -> int:
        return struct.unpack_from("<I", self.data, pos)[0]

    def field_pos(self, table: int, index: int) -> int | None:
        """Absolute position of field ``index`` of the table at ``table``, None if absent."""
        vtable = table - struct.unpack_from("<i", self.data, table)[0]
        vtable_size = struct.unpack_from("<H", self.data, vtable)[0]
        entry = 4 + 2 * index
        if entry >= vtable_size:
            return None
        offset = struct.unpack_from("<H", self.data, vtable + entry)[0]
        return table + offset if offset else None

    def scalar(self, table: int, index: int, fmt: str, default: int | float = 0) -> int | float:
        pos = self.field_pos(table, index)
        return default if pos is None else struct.unpack_from("<" + fmt, self.data, pos)[0]

    def ref(self, table: int, index: int) -> int | None:
        """Position of the table, vector or string that field ``index`` points at."""
        pos = self.field_pos(table, index)
        return None if pos is None else pos + self.u32(pos)

    def vector(self, table: int, index: int) -> tuple[int, int]:
        """``(start of the elements, length)`` of a vector field (``(0, 0)`` if absent)."""
        pos = self.ref(table, index)
        return (0, 0) if pos is None else (pos + 4, self.u32(pos))

    def tables(self, table: int, index: int) -> list[int]:
        start, length = self.vector(table, index)
        return [start + 4 * i + self.u32(start + 4 * i) for i in range(length)]

    def array(self, table: int, index: int, dtype: str) -> np.ndarray:
        start, length = self.vector(table, index)
        return np.frombuffer(self.data, dtype=np.dtype(dtype), count=length, offset=start) if length else \
            np.zeros(0, np.dtype(dtype))

    def string(self, table: int, index: int) -> str:
        start, length = self.vector(table, index)
        return self.data[start : start + length].decode("utf-8", "replace")


ACTIVATION_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH"}


def _conv_options(fb: _Buffer, table: int, depthwise: bool) -> dict[str, int | str]:
    """Conv2DOptions / DepthwiseConv2DOptions: padding, strides, fused activation."""
    activation_field = 4 if depthwise else 3
    return {
        "padding": PADDING_NAMES.get(int(fb.scalar(table, 0, "b")), "?"),
        "stride_w": int(fb.scalar(table, 1, "i")),
        "stride_h": int(fb.scalar(table, 2, "i")),
        "activation": ACTIVATION_NAMES.get(int(fb.scalar(table, activation_field, "b")), "?"),
    }


def _tensor(fb: _Buffer, index: int, table: int, buffers: list[int]) -> TFLiteTensor:
    shape = tuple(int(v) for v in fb.array(table, 0, "<i4"))
    type_code = int(fb.scalar(table, 1, "b"))
    dtype = TENSOR_TYPES.get(type_code, np.dtype("u1"))
    buffer_index = int(fb.scalar(table, 2, "I"))
    data = None
    if 0 < buffer_index < len(buffers):
        raw = fb.array(buffers[buffer_index], 0, "u1")
        if raw.size:
            count = int(np.prod(shape)) if shape else 1
            if raw.size != count * dtype.itemsize:
                raise WeightsError(f"TFLite tensor {index}: {raw.size} bytes of data for shape {shape}")
            data = raw.view(dtype).reshape(shape).copy()
    quant = fb.ref(table, 4)
    scales, zeros, axis = np.zeros(0, np.float32), np.zeros(0, np.int64), 0
    if quant is not None:
        scales, zeros = fb.array(quant, 2, "<f4").copy(), fb.array(quant, 3, "<i8").copy()
        axis = int(fb.scalar(quant, 6, "i"))
    return TFLiteTensor(index=index, name=fb.string(table, 3), shape=shape, dtype=dtype, data=data,
                        scales=scales, zero_points=zeros, quantized_dimension=axis)


def _operator(fb: _Buffer, table: int, codes: list[int]) -> TFLiteOperator:
    code = codes[int(fb.scalar(table, 0, "I"))]
    name = BUILTIN_NAMES.get(code, f"BUILTIN_{code}")
    options: dict[str, int | str] = {}
    options_table = fb.ref(table, 4)
    if options_table is not None and name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        options = _conv_options(fb, options_table, depthwise=name == "DEPTHWISE_CONV_2D")
    return TFLiteOperator(name=name, inputs=tuple(int(v) for v in fb.array(table, 1, "<i4")),
                          outputs=tuple(int(v) for v in fb.array(table, 2, "<i4")), options=options)


def parse_tflite(data: bytes) -> TFLiteModel:
    """Parse the first subgraph of a TFLite flatbuffer.

    Args:
        data: the whole ``.tflite`` file.

    Returns:
        :class:`TFLiteModel`.

    Raises:
        WeightsError: not a TFLite flatbuffer, or a truncated / inconsistent one.
    """
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise WeightsError("not a TensorFlow Lite model (no TFL3 file identifier)")
    fb = _Buffer(data)
    try:
        root = fb.u32(0)
        codes = [max(int(fb.scalar(t, 0, "b")), int(fb.scalar(t, 3, "i"))) for t in fb.tables(root, 1)]
        buffers = fb.tables(root, 4)
        subgraph = fb.tables(root, 2)[0]
        tensors = tuple(_tensor(fb, i, t, buffers) for i, t in enumerate(fb.tables(subgraph, 0)))
        operators = tuple(_operator(fb, t, codes) for t in fb.tables(subgraph, 3))
        inputs = tuple(int(v) for v in fb.array(subgraph, 1, "<i4"))
        outputs = tuple(int(v) for v in fb.array(subgraph, 2, "<i4"))
    except (struct.error, IndexError, ValueError) as err:
        raise WeightsError(f"truncated or corrupt TFLite flatbuffer ({type(err).__name__}: {err})") from None
    return TFLiteModel(tensors=tensors, operators=operators, inputs=inputs, outputs=outputs)


def read_tflite(path: str | Path) -> TFLiteModel:
    """Read and parse a ``.tflite`` file.

    Raises:
        WeightsError: the file is missing or not a TFLite model (the message names the file).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise WeightsError(f"{path}: cannot read the TFLite model ({err.strerror or err})") from None
    try:
        model = parse_tflite(data)
    except WeightsError as err:
        raise WeightsError(f"{path}: {err}") from None
    logger.debug("%s: %d tensors, %d operators", path, len(model.tensors), len(model.operators))
    return model
