"""Pretrained encoders as bundles (weights + preprocessing + labels + input contract).

Each bundle owns its preprocessing: ``SOUNDNET8.preprocess`` (a :class:`SoundNetPreprocess`:
sample rate, x256 scaling, padding of the clip's end), the frame bundles their transforms.

Registry: :func:`get_audio_bundle` / :func:`get_frame_bundle` by the names stored in
feature stores and checkpoints (``"soundnet8"``; ``"efficientnet_lite0"``, ``"vgg16_fc7"``,
``"resnet50"``, ``"timm:<arch>"``).
"""

from __future__ import annotations

from fusion.encoders.frames import (
    DEFAULT_FRAMES,
    EFFICIENTNET_LITE0,
    FRAME_BUNDLES,
    FrameDescription,
    FrameEncoder,
    FrameEncoderBundle,
    describe_frames,
    get_frame_bundle,
)
from fusion.encoders.labels import ImageNetLabel, imagenet_labels, imagenet_names, places_labels
from fusion.encoders.soundnet import (
    DEFAULT_AUDIO,
    SOUNDNET8,
    SOUNDNET_FEATURE_DIMS,
    SOUNDNET_LAYERS,
    AudioDescription,
    SoundNet8,
    SoundNetBundle,
    describe_audio,
)
from fusion.encoders.soundnet_preprocess import SoundNetPreprocess
from fusion.errors import WeightsError

AUDIO_BUNDLES: dict[str, SoundNetBundle] = {SOUNDNET8.name: SOUNDNET8}


def get_audio_bundle(name: str) -> SoundNetBundle:
    """An audio encoder bundle by name (``"soundnet8"``).

    Raises:
        WeightsError: unknown name.
    """
    try:
        return AUDIO_BUNDLES[name]
    except KeyError:
        raise WeightsError(f"unknown audio encoder {name!r}; use one of {', '.join(AUDIO_BUNDLES)}") from None


__all__ = [
    "AUDIO_BUNDLES", "DEFAULT_AUDIO", "DEFAULT_FRAMES", "EFFICIENTNET_LITE0", "FRAME_BUNDLES", "SOUNDNET8",
    "SOUNDNET_FEATURE_DIMS", "SOUNDNET_LAYERS", "AudioDescription", "FrameDescription", "FrameEncoder",
    "FrameEncoderBundle", "ImageNetLabel", "SoundNet8", "SoundNetBundle", "SoundNetPreprocess", "describe_audio",
    "describe_frames", "get_audio_bundle", "get_frame_bundle", "imagenet_labels", "imagenet_names", "places_labels",
]
