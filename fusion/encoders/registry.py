"""The encoder registries: one per modality, holding every bundle by the name stored with features.

A new encoder is one bundle file plus one line here (a lazy ``"module:ATTRIBUTE"`` reference,
imported on first use, so registering costs nothing at import time)::

    AUDIO_ENCODERS.register("yamnet", "fusion.encoders.yamnet:YAMNET")

Audio bundles follow :class:`~fusion.encoders.bundle.AudioEncoderBundle`; frame bundles are
:class:`~fusion.encoders.frames.FrameEncoderBundle` (any timm architecture as ``timm:<arch>``).
"""

from __future__ import annotations

from typing import Any

from fusion.encoders.bundle import Registry

AUDIO_ENCODERS: Registry[Any] = Registry("audio")
AUDIO_ENCODERS.register("soundnet8", "fusion.encoders.soundnet:SOUNDNET8")
AUDIO_ENCODERS.register("yamnet", "fusion.encoders.yamnet:YAMNET")

FRAME_ENCODERS: Registry[Any] = Registry("frame")
FRAME_ENCODERS.register("efficientnet_lite0", "fusion.encoders.frames:EFFICIENTNET_LITE0")
FRAME_ENCODERS.register("vgg16_fc7", "fusion.encoders.frames:VGG16_FC7")
FRAME_ENCODERS.register("resnet50", "fusion.encoders.frames:RESNET50")
FRAME_ENCODERS.register_prefix("timm:", "fusion.encoders.frames:timm_bundle")


def get_audio_bundle(name: str) -> Any:
    """The audio encoder bundle registered as ``name`` (``"soundnet8"``; WeightsError if unknown)."""
    return AUDIO_ENCODERS.get(name)
