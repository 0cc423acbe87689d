"""Features that came from outside: how a store, a run and a command know they cannot be computed.

A store filled by ``fusion import-features`` (:mod:`fusion.features.importer`) holds arrays
someone else extracted (a paper's release of per-video CNN features, an HDF5 file). Its
:class:`~fusion.features.config.ExtractConfig` names the imported modality's encoder
``imported:<name>`` and the other modality's encoder ``""`` (absent), so everything that
reads a config (training, ``load_run``, the run card) sees where the features came from, and
nothing ever tries to run an encoder that does not exist:

* the extraction stage (:mod:`fusion.stages`) turns missing records into an error naming the
  ``fusion import-features`` command, never an extraction;
* ``fusion caption FILE`` on such a run answers in one line that the features cannot be
  computed from a file (:func:`not_computable_message`).

The name is a label the user chose (``--name``); what must agree between a run and a store is
the modality and the feature width, which the data loader checks. :func:`store_config_for`
therefore opens a store of another imported name with a warning instead of failing.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal

from fusion.errors import DataError
from fusion.features.config import IMPORTED_PREFIX, ExtractConfig, config_difference

logger = logging.getLogger(__name__)

Modality = Literal["frames", "audio"]
MODALITIES: tuple[str, ...] = ("frames", "audio")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


def check_name(name: str) -> str:
    """``name`` if it is a usable feature-set name (letters, digits, ``_.+-``, up to 64 chars).

    Raises:
        DataError: anything else, naming the rule.
    """
    if not _NAME_RE.match(name):
        raise DataError(f"--name {name!r}: use letters, digits and _ . + - (up to 64, starting with a letter "
                        "or digit), e.g. --name vgg16_ae128")
    return name


def imported_config(name: str, modality: Modality, steps: int) -> ExtractConfig:
    """The store config of features named ``name`` for one modality.

    Args:
        name: the feature set's name (e.g. ``vgg16_ae128``).
        modality: ``"frames"`` (the captioner's frame input) or ``"audio"``.
        steps: the typical number of time steps per video (frames: ``frames_per_clip``).
    """
    check_name(name)
    if modality == "frames":
        return ExtractConfig(frames_per_clip=max(1, steps), frame_encoder=IMPORTED_PREFIX + name, audio_encoder="")
    if modality == "audio":
        return ExtractConfig(frames_per_clip=1, frame_encoder="", audio_encoder=IMPORTED_PREFIX + name)
    raise DataError(f"--modality {modality!r}: use one of {', '.join(MODALITIES)}")


def imported_modality(config: ExtractConfig | None) -> str | None:
    """``"frames"`` or ``"audio"`` for a config of imported features, else None."""
    if config is None:
        return None
    if str(config.frame_encoder).startswith(IMPORTED_PREFIX):
        return "frames"
    if str(config.audio_encoder).startswith(IMPORTED_PREFIX):
        return "audio"
    return None


def imported_name(config: ExtractConfig | None) -> str | None:
    """The feature set's name for a config of imported features, else None."""
    modality = imported_modality(config)
    if modality is None or config is None:
        return None
    encoder = config.frame_encoder if modality == "frames" else config.audio_encoder
    return encoder[len(IMPORTED_PREFIX):]


def import_command(store_path: str | Path, config: ExtractConfig) -> str:
    """The ``fusion import-features`` command line that fills ``store_path`` with ``config``'s features."""
    modality = imported_modality(config)
    flag = "" if modality == "frames" else f" --modality {modality}"
    return f"fusion import-features SOURCE --out {store_path} --name {imported_name(config)}{flag}"


def not_computable_message(config: ExtractConfig, what: str) -> str:
    """One line: ``what`` cannot be turned into these imported features, and what to do instead."""
    name, modality = imported_name(config), imported_modality(config)
    return (f"{what}: this run's {modality} features are imported ({name!r}, computed outside fusion) and cannot "
            f"be computed from a file: that would need a {name!r} encoder, which fusion does not have; caption a "
            "stored record instead: `fusion caption --features STORE --id ID --model RUN`")


_NAME_WARNINGS_SAID: set[tuple[str, str, str]] = set()  # one "other name" warning per store and names


def store_config_for(path: str | Path, wanted: ExtractConfig) -> ExtractConfig:
    """The config to open the store at ``path`` with, for a run whose features are ``wanted``.

    For imported features, a store of the same modality under another name (or another
    typical length) is accepted with a warning: the name is a label, the feature width is
    checked where the records meet the model. Anything else returns ``wanted`` unchanged, so
    the store's own config check applies.

    Raises:
        DataError: the run's features are imported and the store holds features of
            another modality, or computed ones.
    """
    from fusion.features.store import FeatureStore

    store_path = Path(path)
    if imported_modality(wanted) is None or not (store_path / "store.json").is_file():
        return wanted
    have = FeatureStore(store_path).config
    if imported_modality(have) != imported_modality(wanted):
        kind = f"imported {imported_modality(have)}" if imported_modality(have) else "extracted"
        raise DataError(f"{store_path}: holds {kind} features ({have.frame_encoder or have.audio_encoder}), the run "
                        f"was trained on imported {imported_modality(wanted)} features {imported_name(wanted)!r}; "
                        f"fill a store with `{import_command(store_path, wanted)}`")
    diff = config_difference(have.feature_dict(), wanted)
    said = (str(store_path.resolve()), imported_name(have), imported_name(wanted))
    if diff is not None and said not in _NAME_WARNINGS_SAID:  # the stages and the loader both open the store
        _NAME_WARNINGS_SAID.add(said)
        logger.warning("%s holds imported features %r, the run was trained on %r (%s: %r vs %r); using them: "
                       "their width must match the run's", store_path, imported_name(have), imported_name(wanted),
                       *diff)
    return have

