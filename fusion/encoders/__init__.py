"""Pretrained encoders as bundles (weights + preprocessing + layers + label spaces).

Each bundle declares where its weights come from (:class:`WeightsSource`), its preprocessing
(``describe()``), its feature layers with their widths and its ``label_spaces`` (name -> class
names: ``imagenet``, ``places2``, ``audioset``, ...). See :mod:`fusion.encoders.bundle`.

Registries (:mod:`fusion.encoders.registry`): :data:`AUDIO_ENCODERS` / :data:`FRAME_ENCODERS`,
read through :func:`get_audio_bundle` / :func:`get_frame_bundle` by the names stored in feature
stores and checkpoints (``"soundnet8"``; ``"efficientnet_lite0"``, ``"vgg16_fc7"``,
``"resnet50"``, ``"timm:<arch>"``).
"""

from __future__ import annotations

from fusion.encoders.bundle import AudioAnalysis, AudioEncoderBundle, Registry, WeightsSource
from fusion.encoders.frames import (
    DEFAULT_FRAMES,
    EFFICIENTNET_LITE0,
    FrameDescription,
    FrameEncoder,
    FrameEncoderBundle,
    describe_frames,
    get_frame_bundle,
)
from fusion.encoders.labels import ImageNetLabel, imagenet_labels, imagenet_names, places_labels
from fusion.encoders.registry import AUDIO_ENCODERS, FRAME_ENCODERS, get_audio_bundle
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

__all__ = [
    "AUDIO_ENCODERS", "DEFAULT_AUDIO", "DEFAULT_FRAMES", "EFFICIENTNET_LITE0", "FRAME_ENCODERS", "SOUNDNET8",
    "SOUNDNET_FEATURE_DIMS", "SOUNDNET_LAYERS", "AudioAnalysis", "AudioDescription", "AudioEncoderBundle",
    "FrameDescription", "FrameEncoder", "FrameEncoderBundle", "ImageNetLabel", "Registry", "SoundNet8",
    "SoundNetBundle", "SoundNetPreprocess", "WeightsSource", "describe_audio", "describe_frames",
    "get_audio_bundle", "get_frame_bundle", "imagenet_labels", "imagenet_names", "places_labels",
]
