"""Class labels of the pretrained encoders, shipped in ``fusion/assets``.

* ImageNet-1k (1000 classes): the order of SoundNet's ``conv8`` object head and of every
  ImageNet CNN's logits. Each label keeps its WordNet 3.0 noun id (``n02123045``) because
  the audio-noun verifier maps caption nouns onto WordNet synsets.
* Places2 (401 scenes): the order of SoundNet's ``conv8_2`` place head.
* AudioSet (521 classes): the order of YAMNet's outputs, with their ontology ids.

The first two come from cvondrick/soundnet (MIT), the AudioSet class map from tensorflow/models
(Apache-2.0); see ``fusion/assets/README.md``.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

IMAGENET_FILE = "categories_imagenet.txt"
PLACES_FILE = "categories_places2.txt"
NUM_IMAGENET_CLASSES = 1000
NUM_PLACES_CLASSES = 401
AUDIOSET_FILE = "yamnet_class_map.csv"
NUM_AUDIOSET_CLASSES = 521


@dataclass(frozen=True)
class ImageNetLabel:
    """One ImageNet class.

    Attributes:
        wnid: WordNet 3.0 noun id, e.g. ``"n02123045"``.
        name: the first (most common) synonym, e.g. ``"tabby"`` or ``"great white shark"``.
        synonyms: every synonym of the line, ``name`` first.
    """

    wnid: str
    name: str
    synonyms: tuple[str, ...] = ()

    @property
    def slug(self) -> str:
        """The plain class name as one token (spaces -> ``_``), e.g. ``"great_white_shark"``."""
        return plain_name(self.name)

    @property
    def offset(self) -> int:
        """The WordNet noun offset as an int (``n02123045`` -> 2123045)."""
        return int(self.wnid[1:])


def plain_name(name: str) -> str:
    """One-token class name: lower-case words joined by ``_`` (``"Great white shark"`` -> ``great_white_shark``)."""
    return "_".join(name.strip().lower().split())


def _read_asset(filename: str) -> list[str]:
    text = resources.files("fusion").joinpath("assets", filename).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def parse_imagenet(lines: Iterable[str]) -> tuple[ImageNetLabel, ...]:
    """ImageNet labels from ``nXXXXXXXX name, synonym, ...`` lines (blank lines skipped), in order."""
    labels = []
    for line in (ln.strip() for ln in lines):
        if not line:
            continue
        wnid, _, names = line.partition(" ")
        synonyms = tuple(s.strip() for s in names.split(",") if s.strip())
        labels.append(ImageNetLabel(wnid=wnid, name=synonyms[0] if synonyms else wnid, synonyms=synonyms))
    return tuple(labels)


def place_parts(line: str) -> tuple[str, ...]:
    """The name parts of a Places2 line, letter folder dropped: ``/t/train_station/platform`` ->
    ``("train_station", "platform")``; a line without the folder is one part."""
    parts = [p for p in line.strip().split("/") if p]
    return tuple(parts[1:]) if len(parts) > 1 else tuple(parts)


@functools.lru_cache(maxsize=1)
def imagenet_labels() -> tuple[ImageNetLabel, ...]:
    """The 1000 ImageNet classes in logit order (== SoundNet conv8 order).

    Returns:
        1000 :class:`ImageNetLabel`, index i = logit i.
    """
    labels = parse_imagenet(_read_asset(IMAGENET_FILE))
    if len(labels) != NUM_IMAGENET_CLASSES:  # the shipped file is fixed; guard against a bad install
        raise RuntimeError(f"{IMAGENET_FILE}: expected {NUM_IMAGENET_CLASSES} classes, found {len(labels)}")
    return tuple(labels)


@functools.lru_cache(maxsize=1)
def places_labels() -> tuple[str, ...]:
    """The 401 Places2 scenes in SoundNet conv8_2 order, as plain names.

    ``/r/railroad_track`` -> ``railroad_track``; ``/t/train_station/platform`` ->
    ``train_station_platform`` (the letter folder dropped, the qualifier joined by ``_``).

    Returns:
        401 plain scene names, index i = conv8_2 output i.
    """
    names = ["_".join(parts) for parts in places_parts()]
    if len(names) != NUM_PLACES_CLASSES:
        raise RuntimeError(f"{PLACES_FILE}: expected {NUM_PLACES_CLASSES} classes, found {len(names)}")
    return tuple(names)


@functools.lru_cache(maxsize=1)
def places_parts() -> tuple[tuple[str, ...], ...]:
    """The 401 Places2 scenes in conv8_2 order as name parts (see :func:`place_parts`):
    ``("train_station", "platform")``, where :func:`places_labels` joins them."""
    return tuple(place_parts(line) for line in _read_asset(PLACES_FILE))


def imagenet_names() -> tuple[str, ...]:
    """The 1000 ImageNet classes as plain one-token names (``tabby``, ``great_white_shark``)."""
    return tuple(label.slug for label in imagenet_labels())


@dataclass(frozen=True)
class AudioSetLabel:
    """One AudioSet class (Gemmeke et al., ICASSP 2017), as YAMNet's class map lists it.

    Attributes:
        mid: the ontology id, e.g. ``"/m/09x0r"``.
        name: the display name, e.g. ``"Speech"`` or ``"Child speech, kid speaking"``.
    """

    mid: str
    name: str


def parse_audioset(lines: Iterable[str]) -> tuple[AudioSetLabel, ...]:
    """AudioSet labels from ``index,mid,display_name`` CSV lines (header first), in index order.

    Raises:
        ValueError: a row whose index is not its position.
    """
    rows = list(csv.reader(lines))
    labels = []
    for position, row in enumerate(rows[1:]):
        if len(row) != 3 or row[0].strip() != str(position):
            raise ValueError(f"class map row {position + 2}: expected '{position},mid,display_name', got {row}")
        labels.append(AudioSetLabel(mid=row[1].strip(), name=row[2].strip()))
    return tuple(labels)


@functools.lru_cache(maxsize=1)
def audioset_labels() -> tuple[AudioSetLabel, ...]:
    """The 521 AudioSet classes in YAMNet's output order.

    Returns:
        521 :class:`AudioSetLabel`, index i = output i.
    """
    labels = parse_audioset(_read_asset(AUDIOSET_FILE))
    if len(labels) != NUM_AUDIOSET_CLASSES:
        raise RuntimeError(f"{AUDIOSET_FILE}: expected {NUM_AUDIOSET_CLASSES} classes, found {len(labels)}")
    return labels


def audioset_names() -> tuple[str, ...]:
    """The 521 AudioSet display names in YAMNet's output order (``Speech``, ``Music``, ...)."""
    return tuple(label.name for label in audioset_labels())
