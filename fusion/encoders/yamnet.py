"""YAMNet (AudioSet, 521 classes) in PyTorch, with the weights of its TFLite file, as a bundle.

Model: YAMNet (Plakal & Ellis, tensorflow/models ``research/audioset/yamnet``, 2020), the
MobileNet-v1 of Howard et al. (2017) on 0.96 s log-mel patches ``(96, 64)``: a 3x3 conv
(32, stride 2) and 13 depthwise-separable blocks (3x3 depthwise + 1x1 pointwise, each with
batch norm and ReLU; :mod:`fusion.encoders.yamnet_spec` holds the original ``_YAMNET_LAYER_DEFS``),
TensorFlow "same" padding, global average pooling to a 1024-d embedding, then a dense layer
and a sigmoid to 521 AudioSet class scores (multi-label: the scores do not sum to 1).
Trained on AudioSet (Gemmeke et al., ICASSP 2017).

Weights come from ``yamnet.tflite`` (4,078,224 bytes; see ``data_prep.fetch yamnet``), read
with :mod:`fusion.encoders.tflite_reader`: no TensorFlow at run time. The converter folded
each batch norm into its convolution's kernel and bias, so the PyTorch layers are plain
convolutions with bias. Most kernels and the dense layer are int8 with per-tensor or
per-channel scales; they are dequantised (``q * scale``) to float32. Tensors are found by
walking the file's operators in order (the converter's tensor names are fused and
ambiguous), and every convolution's stride, padding and activation is checked against the
layer table. The front end's window, DFT and mel matrices are read from the file too
(:mod:`fusion.encoders.yamnet_preprocess`).

The TFLite interpreter runs the int8 1x1 convolutions and dense layers as "dynamic range"
kernels that round their inputs to int8, one scale per pixel or row (XNNPACK, its default CPU
delegate). With ``activations="dynamic_int8"`` (the default) this port computes the same
integer products (:mod:`fusion.encoders.dynamic_int8`), so its scores equal the interpreter's
up to float rounding; ``"float"`` keeps every activation in float32, as the original
TensorFlow model. ``scripts/yamnet_vs_tflite.py`` measures both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from fusion.encoders.bundle import AudioAnalysis, WeightsSource, load_frozen
from fusion.encoders.dynamic_int8 import DerivedTensors, dynamic_int8_linear, integer_weight, symmetric_scales
from fusion.encoders.labels import AudioSetLabel, audioset_labels
from fusion.encoders.tflite_reader import TFLiteModel, TFLiteOperator, TFLiteTensor, read_tflite
from fusion.encoders.yamnet_preprocess import ACTIVATION_MODES, YAMNET_PREPROCESS, LogMelFrontEnd, YAMNetPreprocess
from fusion.encoders.yamnet_spec import EMBEDDING_DIM, YAMNET_CONVS, ConvSpec, tf_same_pad
from fusion.errors import ConfigError, WeightsError
from fusion.paths import data_dir

logger = logging.getLogger(__name__)

WEIGHTS_SUBPATH = "yamnet/yamnet.tflite"  # under FUSION_DATA_DIR, where `data_prep.fetch yamnet` puts it
PATCHES_PER_BATCH = 64  # patches (0.48 s each) through the network at once
class YAMNet(nn.Module):
    """YAMNet: log-mel front end, MobileNet-v1, 521 sigmoid scores.

    Args:
        num_classes: output classes (``len(labels)``, 521).
        params: the front end's parameters.
        activations: ``"dynamic_int8"`` (inputs of the int8 layers rounded as the TFLite
            interpreter does) or ``"float"``.

    Raises:
        ConfigError: unknown ``activations``.
    """

    def __init__(self, num_classes: int = 521, params: YAMNetPreprocess = YAMNET_PREPROCESS,
                 activations: str = "dynamic_int8") -> None:
        super().__init__()
        if activations not in ACTIVATION_MODES:
            raise ConfigError(f"YAMNet activations {activations!r} is unknown; use one of {', '.join(ACTIVATION_MODES)}")
        self.quantize = activations == "dynamic_int8"
        self.frontend = LogMelFrontEnd(params, activations)
        self.convs = nn.ModuleDict({
            s.name: nn.Conv2d(s.in_channels, s.out_channels, s.kernel, s.stride,
                              groups=s.in_channels if s.kind == "depthwise" else 1)
            for s in YAMNET_CONVS})
        self.classifier = nn.Linear(EMBEDDING_DIM, num_classes)
        self.weight_scales = nn.Module()  # int8 scales (O,) of the pointwise kernels and the classifier
        for name in [s.name for s in YAMNET_CONVS if s.kind == "pointwise"]:
            self.weight_scales.register_buffer(name, symmetric_scales(self.convs[name].weight))
        self.weight_scales.register_buffer("classifier", symmetric_scales(self.classifier.weight))
        self.derived = DerivedTensors()  # the int8 layers' integer weights, built once

    def _integer_weight(self, name: str, weight: Tensor, scale: Tensor) -> tuple[Tensor, Tensor]:
        """``integer_weight`` of one int8 layer ``(O, K)``, ``(O,)``, built once."""
        return self.derived.get(name, (weight, scale), lambda: integer_weight(weight, scale))

    def _pointwise(self, name: str, x: Tensor) -> Tensor:
        """A 1x1 convolution as the interpreter's dynamic int8 kernel: ``(N, C, H, W)`` -> ``(N, O, H, W)``."""
        conv = self.convs[name]
        weight, scale = conv.weight.flatten(1), self.weight_scales.get_buffer(name)  # (O, C), (O,)
        integers = self._integer_weight(name, weight, scale)
        out = dynamic_int8_linear(x.permute(0, 2, 3, 1), weight, scale, conv.bias, integers)
        return out.permute(0, 3, 1, 2)  # (N, O, H, W)

    def embed(self, patches: Tensor) -> Tensor:
        """Args: patches float32 ``(N, 96, 64)`` log-mel. Returns: float32 ``(N, 1024)`` embeddings."""
        x = patches.unsqueeze(1)  # (N, 1, frames, mel)
        for spec in YAMNET_CONVS:
            x = self.layer(spec, x)  # (N, C, H, W)
        return x.mean(dim=(2, 3))  # (N, 1024)

    def layer(self, spec: ConvSpec, x: Tensor) -> Tensor:
        """One convolution and its ReLU: float32 ``(N, C_in, H, W)`` -> ``(N, C_out, H', W')``."""
        if self.quantize and spec.kind == "pointwise":  # the file's int8 1x1 kernels
            return torch.relu(self._pointwise(spec.name, x))
        return torch.relu(self.convs[spec.name](tf_same_pad(x, spec.kernel, spec.stride)))

    def classify(self, patches: Tensor) -> tuple[Tensor, Tensor]:
        """Args: patches float32 ``(N, 96, 64)``. Returns: ``(scores (N, 521), embeddings (N, 1024))``."""
        embeddings = self.embed(patches)
        if self.quantize:
            weight, scale = self.classifier.weight, self.weight_scales.classifier
            logits = dynamic_int8_linear(embeddings, weight, scale, self.classifier.bias,
                                         self._integer_weight("classifier", weight, scale))
        else:
            logits = self.classifier(embeddings)
        return torch.sigmoid(logits), embeddings

    def forward(self, waveform: Tensor) -> tuple[Tensor, Tensor]:
        """Scores of every patch of 16 kHz waveforms, padded as :meth:`YAMNetPreprocess.pad`.

        Args:
            waveform: float32 ``(B, S)``; ``S = 15600`` gives one patch (the TFLite model's input).

        Returns:
            ``(scores (B, P, 521), embeddings (B, P, 1024))`` float32.
        """
        patches = self.frontend.patches(waveform)  # (B, P, 96, 64)
        batch, count = patches.shape[:2]
        scores, embeddings = self.classify(patches.flatten(0, 1))
        return scores.view(batch, count, -1), embeddings.view(batch, count, -1)


def _producer_input(graph: TFLiteModel, index: int) -> int:
    """The stored constant behind ``index`` (through a DEQUANTIZE operator if there is one)."""
    for op in graph.operators:
        if op.name == "DEQUANTIZE" and op.outputs == (index,):
            return op.inputs[0]
    return index


def _constant(graph: TFLiteModel, index: int, shape: tuple[int, ...], what: str, path: str | Path) -> np.ndarray:
    tensor = graph.tensors[_producer_input(graph, index)]
    if tensor.data is None or tensor.shape != shape:
        raise WeightsError(f"{path}: {what} has shape {tensor.shape}, YAMNet needs {shape}; use the yamnet.tflite "
                           "of `python -m data_prep.fetch yamnet`")
    return tensor.dequantized()


def _scales(graph: TFLiteModel, index: int, channels: int) -> Tensor:
    """Per-output-channel int8 scales ``(channels,)`` of a constant (per-tensor ones broadcast)."""
    tensor: TFLiteTensor = graph.tensors[_producer_input(graph, index)]
    if tensor.scales.size in (1, channels):
        return torch.from_numpy(np.broadcast_to(tensor.scales.astype(np.float32), (channels,)).copy())
    return symmetric_scales(torch.from_numpy(tensor.dequantized()))  # a float kernel: scales as the converter's


def _check_conv(op: TFLiteOperator, spec: ConvSpec, path: str | Path) -> None:
    want = {"padding": "SAME", "stride_w": spec.stride, "stride_h": spec.stride, "activation": "RELU"}
    got = {key: op.options.get(key) for key in want}
    if got != want:
        raise WeightsError(f"{path}: {spec.name} is {got} in the file, YAMNet has {want}; not a YAMNet model")


def _conv_state(graph: TFLiteModel, path: str | Path) -> dict[str, Tensor]:
    """Kernels and biases of the 27 convolutions, in PyTorch layout."""
    ops = [op for op in graph.operators if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    if len(ops) != len(YAMNET_CONVS):
        raise WeightsError(f"{path}: {len(ops)} convolutions, YAMNet has {len(YAMNET_CONVS)}; not a YAMNet model")
    state: dict[str, Tensor] = {}
    for op, spec in zip(ops, YAMNET_CONVS):
        _check_conv(op, spec, path)
        if spec.kind == "depthwise":  # TFLite (1, kh, kw, C) -> torch (C, 1, kh, kw)
            kernel = _constant(graph, op.inputs[1], (1, spec.kernel, spec.kernel, spec.out_channels), spec.name, path)
            kernel = kernel.transpose(3, 0, 1, 2)
        else:  # TFLite (O, kh, kw, I) -> torch (O, I, kh, kw)
            shape = (spec.out_channels, spec.kernel, spec.kernel, spec.in_channels)
            kernel = _constant(graph, op.inputs[1], shape, spec.name, path).transpose(0, 3, 1, 2)
        state[f"convs.{spec.name}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel))
        if spec.kind == "pointwise":
            state[f"weight_scales.{spec.name}"] = _scales(graph, op.inputs[1], spec.out_channels)
        bias = _constant(graph, op.inputs[2], (spec.out_channels,), f"{spec.name} bias", path)
        state[f"convs.{spec.name}.bias"] = torch.from_numpy(bias)
    return state


def _frontend_and_head_state(graph: TFLiteModel, model: YAMNet, path: str | Path) -> dict[str, Tensor]:
    """Window, DFT and mel matrices, log offset and the dense layer (the file's 4 FULLY_CONNECTED)."""
    fronts = model.frontend
    dense = [op for op in graph.operators if op.name == "FULLY_CONNECTED"]
    if len(dense) != 4:
        raise WeightsError(f"{path}: {len(dense)} dense layers, YAMNet's file has 4; not a YAMNet model")
    real, imag, mel, head = dense
    window_ops = [op for op in graph.operators if op.name == "MUL"
                  and graph.tensors[op.inputs[1]].shape == (1, fronts.window.numel())]
    if len(window_ops) != 1:
        raise WeightsError(f"{path}: no STFT window of {fronts.window.numel()} samples; not a YAMNet model")
    num_classes, dim = model.classifier.weight.shape
    return {
        "frontend.window": torch.from_numpy(_constant(graph, window_ops[0].inputs[1], (1, fronts.window.numel()),
                                                      "STFT window", path)[0]),
        "frontend.dft_real": torch.from_numpy(_constant(graph, real.inputs[1], tuple(fronts.dft_real.shape),
                                                        "DFT cosine matrix", path)),
        "frontend.dft_imag": torch.from_numpy(_constant(graph, imag.inputs[1], tuple(fronts.dft_imag.shape),
                                                        "DFT sine matrix", path)),
        "frontend.mel": torch.from_numpy(_constant(graph, mel.inputs[1], tuple(fronts.mel.shape), "mel matrix", path)),
        "frontend.mel_offset": torch.from_numpy(_constant(graph, mel.inputs[2], tuple(fronts.mel_offset.shape),
                                                          "log offset", path)),
        "classifier.weight": torch.from_numpy(_constant(graph, head.inputs[1], (num_classes, dim), "classifier", path)),
        "classifier.bias": torch.from_numpy(_constant(graph, head.inputs[2], (num_classes,), "classifier bias", path)),
        "weight_scales.classifier": _scales(graph, head.inputs[1], num_classes),
        "frontend.dft_real_scale": _scales(graph, real.inputs[1], fronts.dft_real.shape[0]),
        "frontend.dft_imag_scale": _scales(graph, imag.inputs[1], fronts.dft_imag.shape[0]),
        "frontend.mel_scale": _scales(graph, mel.inputs[1], fronts.mel.shape[0]),
    }


def load_yamnet_tflite(model: YAMNet, path: str | Path) -> None:
    """Copy the weights of ``yamnet.tflite`` into ``model`` (every tensor checked for its shape).

    Raises:
        WeightsError: the file is missing, not a TFLite model, or not YAMNet.
    """
    if not Path(path).is_file():
        raise WeightsError(f"{path}: YAMNet weights not found; get them with `python -m data_prep.fetch yamnet "
                           "--out DIR` (then export FUSION_DATA_DIR=DIR) or pass the path of yamnet.tflite")
    graph = read_tflite(path)
    state = _conv_state(graph, path)
    state.update(_frontend_and_head_state(graph, model, path))
    model.load_state_dict(state, strict=True)


def default_weights_file() -> Path | None:
    """``$FUSION_DATA_DIR/yamnet/yamnet.tflite`` where it exists, else None."""
    candidate = data_dir() / WEIGHTS_SUBPATH
    return candidate if candidate.is_file() else None


YAMNET_WEIGHTS = WeightsSource(
    file="yamnet.tflite", finder=default_weights_file,
    fix=f"get them with `python -m data_prep.fetch yamnet --out DIR` and export FUSION_DATA_DIR=DIR ({WEIGHTS_SUBPATH} "
        "under it), or pass the path of yamnet.tflite",
)


@dataclass(frozen=True)
class YAMNetBundle:
    """Everything needed to use YAMNet: weights, preprocessing, labels, layers.

    Attributes:
        name: encoder name stored with features (``"yamnet"``).
        weights: where ``yamnet.tflite`` is found (``FUSION_DATA_DIR``) and the fix when absent.
        labels: the 521 AudioSet classes (ontology id + display name), output order.
        default_layer: the feature layer used when none is named.
        feature_dims: feature size of every layer (the 1024-d embedding).
        preprocess: waveform -> log-mel patches (16 kHz, 0.96 s patches hopped by 0.48 s).
        activations: ``"dynamic_int8"`` (equal to the TFLite interpreter) or ``"float"`` (see the
            module docstring).

    Raises:
        ConfigError: unknown ``activations``.
    """

    name: str = "yamnet"
    weights: WeightsSource = YAMNET_WEIGHTS
    labels: tuple[AudioSetLabel, ...] = field(default_factory=audioset_labels)
    default_layer: str = "embedding"
    feature_dims: dict[str, int] = field(default_factory=lambda: {"embedding": EMBEDDING_DIM})
    preprocess: YAMNetPreprocess = YAMNET_PREPROCESS
    activations: str = "dynamic_int8"

    def __post_init__(self) -> None:
        if self.activations not in ACTIVATION_MODES:
            raise ConfigError(f"YAMNet activations {self.activations!r} is unknown; "
                              f"use one of {', '.join(ACTIVATION_MODES)}")

    @property
    def label_spaces(self) -> dict[str, tuple[str, ...]]:
        """What it recognises, by label space: ``{"audioset": 521 display names}``."""
        return {"audioset": tuple(label.name for label in self.labels)}

    @property
    def layers(self) -> dict[str, int]:
        """The feature layers and their widths, input to output."""
        return dict(self.feature_dims)

    @property
    def sample_rate_hz(self) -> int:
        """The model's input rate (16 kHz); :meth:`YAMNetPreprocess.prepare` resamples to it."""
        return self.preprocess.sample_rate_hz

    @property
    def weights_file(self) -> Path | None:
        """``$FUSION_DATA_DIR/yamnet/yamnet.tflite`` (None if absent)."""
        return default_weights_file()

    def get_model(self, weights_path: str | Path | None = None, random_init: bool = False) -> YAMNet:
        """Build the model in eval mode with frozen weights.

        Args:
            weights_path: a ``yamnet.tflite``; default: :attr:`weights_file`.
            random_init: random weights (tests only); never used silently.

        Raises:
            WeightsError: no weights file found or it is not YAMNet.
        """
        model = YAMNet(num_classes=len(self.labels), params=self.preprocess, activations=self.activations)
        return load_frozen(model, f"audio encoder {self.name!r}", self.weights, weights_path, random_init,
                           load_yamnet_tflite)

    def analyse(self, model: YAMNet, waveform: np.ndarray, layers: tuple[str, ...] = (),
                per_step: bool = False) -> AudioAnalysis:
        """The ``embedding`` (P, 1024) if asked and the ``audioset`` scores: (521,) averaged over the
        0.96 s patches, and (P, 521) per patch with ``per_step``, of float32 ``(S,)`` audio at 16 kHz."""
        desc = describe_yamnet(model, waveform, self.sample_rate_hz, self.preprocess)
        features = {"embedding": desc.embeddings} if "embedding" in layers else {}
        return AudioAnalysis(features, {"audioset": desc.mean_scores}, {"audioset": desc.scores} if per_step else {})


YAMNET = YAMNetBundle()


@dataclass
class YAMNetDescription:
    """What YAMNet hears in one waveform.

    Attributes:
        scores: float32 ``(P, 521)`` AudioSet scores (sigmoid) of every 0.96 s patch.
        embeddings: float32 ``(P, 1024)`` patch embeddings.
        patch_hop_seconds: time between patch starts (0.48 s); patch ``p`` starts at ``p * hop``.
    """

    scores: np.ndarray
    embeddings: np.ndarray
    patch_hop_seconds: float

    @property
    def mean_scores(self) -> np.ndarray:
        """float32 ``(521,)`` scores averaged over the patches (the clip's scores, as YAMNet's demo)."""
        return self.scores.mean(axis=0)


def describe_yamnet(model: YAMNet, waveform: np.ndarray, sample_rate_hz: int = 22050,
                    preprocess: YAMNetPreprocess = YAMNET_PREPROCESS,
                    patches_per_batch: int = PATCHES_PER_BATCH) -> YAMNetDescription:
    """AudioSet scores and embeddings of every 0.96 s patch (0.48 s hop) of one waveform.

    Args:
        model: from ``YAMNET.get_model()``.
        waveform: float32 ``(S,)`` mono in [-1, 1] at ``sample_rate_hz`` (any length > 0).
        sample_rate_hz: its rate; resampled to 16 kHz.
        preprocess: the bundle's preprocessing.
        patches_per_batch: patches per forward pass (bounds memory on long audio).

    Returns:
        :class:`YAMNetDescription`.

    Raises:
        DataError: empty or non-1-D waveform.
    """
    prepared = preprocess.prepare(waveform, sample_rate_hz)
    device = next(model.parameters()).device
    samples = torch.from_numpy(prepared.samples).to(device)  # (S',)
    scores, embeddings = [], []
    with torch.inference_mode():
        for first in range(0, prepared.num_patches, patches_per_batch):
            count = min(patches_per_batch, prepared.num_patches - first)
            start = first * preprocess.patch_hop_samples
            stop = start + preprocess.patch_samples + (count - 1) * preprocess.patch_hop_samples
            batch_scores, batch_embeddings = model(samples[start:stop].unsqueeze(0))  # (1, count, 521/1024)
            scores.append(batch_scores[0].float().cpu())
            embeddings.append(batch_embeddings[0].float().cpu())
    return YAMNetDescription(scores=torch.cat(scores).numpy(), embeddings=torch.cat(embeddings).numpy(),
                             patch_hop_seconds=preprocess.patch_hop_seconds)
