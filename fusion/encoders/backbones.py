"""Backbone builders of the frame CNN bundles: how each architecture yields pooled features,
its last feature map and ImageNet logits (``fusion.encoders.frames`` composes them into bundles)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor, nn

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
