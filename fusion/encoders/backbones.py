"""Backbone builders of the frame CNN bundles: how each architecture yields pooled features,
its last feature map and ImageNet logits, and how a local weights file is read into it
(``fusion.encoders.frames`` composes them into bundles)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from fusion.errors import WeightsError

logger = logging.getLogger(__name__)

Builder = Callable[[], tuple[nn.Module, Callable, Callable | None, Callable | None]]


def timm_features(model: nn.Module, x: Tensor) -> Tensor:
    """Pooled features (B, D) of a timm model."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def timm_map(model: nn.Module, x: Tensor) -> Tensor:
    """The last feature map (B, D, h, w) of a timm CNN."""
    return model.forward_features(x)  # (B, D, h, w) for CNNs


def timm_logits(model: nn.Module, features: Tensor) -> Tensor:
    """ImageNet logits of a timm model from its pooled features."""
    return model.get_classifier()(features)


def vgg_fc7(model: nn.Module, x: Tensor) -> Tensor:
    """VGG16's fc7 after ReLU (B, 4096): S2VT's frame feature."""
    x = torch.flatten(model.avgpool(model.features(x)), 1)  # (B, 25088)
    return model.classifier[:5](x)  # fc6, relu, dropout, fc7, relu -> (B, 4096): S2VT's fc7


def vgg_logits(model: nn.Module, features: Tensor) -> Tensor:
    """VGG16's ImageNet logits from fc7."""
    return model.classifier[6](features)


def resnet_features(model: nn.Module, x: Tensor) -> Tensor:
    """ResNet's pooled features (B, 2048)."""
    body = nn.Sequential(*list(model.children())[:-1])  # everything up to avgpool
    return torch.flatten(body(x), 1)  # (B, 2048)


def resnet_map(model: nn.Module, x: Tensor) -> Tensor:
    """ResNet's last feature map (B, 2048, h, w), before the average pool."""
    return nn.Sequential(*list(model.children())[:-2])(x)  # (B, 2048, h, w): before avgpool


def resnet_logits(model: nn.Module, features: Tensor) -> Tensor:
    """ResNet's ImageNet logits from its pooled features."""
    return model.fc(features)


def timm_builder(arch: str) -> Builder:
    """A bundle builder for timm architecture ``arch`` (random weights)."""
    def build() -> tuple[nn.Module, Callable, Callable | None, Callable | None]:
        import timm

        model = timm.create_model(arch, pretrained=False)
        return model, timm_features, (timm_logits if model.num_classes else None), timm_map

    return build


def torchvision_builder(arch: str) -> Builder:
    """A bundle builder for torchvision ``vgg16`` or ``resnet50`` (random weights)."""
    def build() -> tuple[nn.Module, Callable, Callable | None, Callable | None]:
        import torchvision

        model = getattr(torchvision.models, arch)(weights=None)
        if arch == "vgg16":
            return model, vgg_fc7, vgg_logits, None
        return model, resnet_features, resnet_logits, resnet_map

    return build


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """A state dict from ``.pth``/``.pt``/``.bin`` (tensors only) or ``.safetensors``; WeightsError if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found; pass an existing file (torchvision/timm state dict)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise WeightsError(f"{path}: not a readable PyTorch weights file ({type(err).__name__}); "
                           "pass a .pth/.safetensors state dict") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"{path}: holds no state dict of tensors; pass a .pth/.safetensors state dict")
    return state


def map_in_order(source: dict[str, Tensor], target: dict[str, Tensor], path: str | Path) -> dict[str, Tensor]:
    """Rename ``source`` tensors onto ``target``'s keys one to one, in order, checking every shape."""
    if len(source) != len(target):
        raise WeightsError(f"{path}: {len(source)} tensors, the model has {len(target)}; wrong weights file")
    mapped = {}
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items()):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise WeightsError(f"{path}: tensor {src_key} {tuple(tensor.shape)} does not fit {dst_key} "
                               f"{tuple(ref.shape)}; wrong weights file")
        mapped[dst_key] = tensor
    return mapped


def load_into(model: nn.Module, state: dict[str, Tensor], path: str | Path, in_order: bool) -> None:
    """Load ``state`` into ``model`` strictly (renamed onto its keys in order first if ``in_order``); WeightsError if it does not fit."""
    target = model.state_dict()
    if in_order and set(state) != set(target):
        state = map_in_order(state, target, path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise WeightsError(f"{path}: weights do not fit the model ({first}); check the backbone name") from None
