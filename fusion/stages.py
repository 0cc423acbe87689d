"""The explicit stages a command runs before training or decoding: feature extraction, in view.

Opening a feature store never runs an encoder: :func:`fusion.data.open_features` raises a
``DataError`` naming the ``fusion extract`` command when records are missing. The commands
that need features (``fusion train``, ``evaluate``, ``tune``, ``ablate``) first run
:func:`extract_features`, which says what it extracts and where (one log line on stderr,
shown by default) and shows a progress bar, after every check that can fail fast:

- ``fusion train``: :func:`prepare_training` checks the run folder's ``config.yaml`` against
  the config (a mismatched ``--out`` fails in seconds), then extracts the train / val videos;
- ``evaluate`` / ``tune`` / ``ablate``: :func:`fusion.pipeline.prepare_split` loads the run and
  resolves the decode configuration, then extracts the split's videos.

Features imported from outside (``fusion import-features``, :mod:`fusion.features.imported`)
cannot be computed: for them the stage only checks the store and fails, naming the ``fusion
import-features`` command, when no video (or, ``strict``, not every video) has a record.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from fusion.errors import DataError
from fusion.features.imported import import_command, imported_modality, store_config_for

if TYPE_CHECKING:
    from fusion.experiment import ExperimentConfig
    from fusion.features import ExtractConfig
    from fusion.manifest import ManifestEntry

logger = logging.getLogger(__name__)


def describe_encoders(extract: ExtractConfig) -> str:
    """``"efficientnet_lite0 frames (8 per clip), soundnet conv7 audio"``: what a store holds."""
    frames = f"{extract.frame_rate_hz} Hz" if extract.frame_rate_hz else f"{extract.frames_per_clip} per clip"
    audio = f"{extract.audio_encoder} {extract.audio_layer} audio" if extract.audio_encoder else "no audio"
    return f"{extract.frame_encoder} frames ({frames}), {audio}"


def extract_features(
    entries: Sequence[ManifestEntry],
    manifest_path: str | Path,
    extract: ExtractConfig,
    features: str | Path | None = None,
    *,
    progress: bool = True,
    strict: bool = True,
) -> Path:
    """The extraction stage: make sure the store holds a record for every entry.

    Videos already in the store are skipped; the missing ones are extracted with a progress
    bar after one log line saying how many, with which encoders and into which store. Under
    torchrun every rank must call this: :func:`fusion.features.ensure_features` shares the
    missing videos among the ranks and writes one store.

    Args:
        entries: the manifest entries whose features are needed.
        manifest_path: their manifest (the default store lives beside it).
        extract: the extraction config (must match an existing store's).
        features: the store folder; None = :func:`fusion.data.default_store_path`.
        progress: show a progress bar while extracting.
        strict: fail when some videos cannot be read (else they stay without a record, and
            :func:`fusion.data.readable_entries` skips them and says how many).

    Returns:
        The store folder, ready for :func:`fusion.data.open_features`.

    Raises:
        DataError: the store holds other features, or (``strict``) some videos could not be read.
    """
    from fusion import distributed as dist
    from fusion.data import feature_store_path
    from fusion.features import FeatureStore, ensure_features

    dist.setup()  # under torchrun: join the job (once)
    path = feature_store_path(manifest_path, extract, features)
    wanted = {e.id for e in entries}
    if imported_modality(extract) is not None:  # features from outside: check them, never extract
        return _check_imported(path, wanted, extract, strict)
    # A look that holds no collectives (a store of other features fails here); rank 0's count decides.
    present = dist.main_first(lambda: FeatureStore(path, extract) if path.is_dir() else None)
    missing = dist.broadcast(len(wanted) if present is None else
                             sum(i not in present or present.verify(i, full=False) is not None for i in wanted))
    if not missing:
        logger.debug("%s holds the features of all %d videos", path, len(wanted))
        return path
    if dist.is_main():  # the stage's one line, shown by default
        logger.info("extracting features of %d of %d videos (%s) into %s", missing, len(wanted),
                    describe_encoders(extract), path)
    # every rank: it holds collectives
    ensure_features(list(entries), path, extract, progress=progress, allow_failures=not strict)
    return path


def _check_imported(path: Path, wanted: set[str], extract: ExtractConfig, strict: bool) -> Path:
    """The store of imported features at ``path``, when it holds the wanted ids (``strict``) or some of them.

    Ids without a record (a bad file the import skipped) are left to :func:`fusion.data.readable_entries`,
    which skips and says them.

    Raises:
        DataError: no such store, one of other features, none of the ids, or (``strict``) some
            missing (with the import command).
    """
    from fusion.features import FeatureStore

    if not path.is_dir():
        raise DataError(f"{path}: no feature store; these features are imported, not computed: "
                        f"`{import_command(path, extract)}`")
    store = FeatureStore(path, store_config_for(path, extract))
    missing = sorted(i for i in wanted if i not in store)
    if missing and (strict or len(missing) == len(wanted)):
        raise DataError(f"{path}: {len(missing)} of {len(wanted)} videos have no features (e.g. {missing[0]!r}); "
                        f"fusion cannot compute imported features, import them: `{import_command(path, extract)}`")
    return path


def prepare_training(
    config: ExperimentConfig,
    run_dir: str | Path,
    *,
    manifest: str | Path | None = None,
    features: str | Path | None = None,
    progress: bool = True,
    strict: bool = False,
) -> Path:
    """``fusion train``'s stages before training: check the run folder, then extract features.

    Sets ``config.data.manifest`` / ``.features`` to the paths the run will use (as
    :func:`fusion.training.train` does), checks ``RUN/config.yaml`` against ``config`` (a folder
    holding another run fails here, before any extraction), then extracts the train and val
    splits' missing features.

    Args (besides the paths): ``strict``: fail when videos cannot be read, instead of leaving
    them out of training (:func:`fusion.training.train` skips them with the same ``strict``).

    Returns:
        The feature store folder.

    Raises:
        ConfigError: no manifest, or the run folder holds a run of another config.
        DataError: another trainer holds the folder, or (``strict``) videos could not be read.
    """
    from fusion.manifest import load_manifest, split_entries
    from fusion.training.setup import check_run_config, resolve_data_paths, run_lock

    resolve_data_paths(config, manifest, features)
    with run_lock(run_dir):
        check_run_config(config, run_dir)
    data = config.data
    assert data.manifest is not None  # resolve_data_paths raised otherwise
    entries = load_manifest(data.manifest)
    needed = split_entries(entries, data.train_split) + split_entries(entries, data.val_split)
    return extract_features(needed, data.manifest, config.extract, data.features, progress=progress, strict=strict)
