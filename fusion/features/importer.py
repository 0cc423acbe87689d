"""Pre-extracted features -> a feature store: ``fusion import-features SOURCE --out STORE``.

SOURCE is a folder of ``<id>.npy`` / ``<id>.npz`` files or one ``.h5`` / ``.hdf5`` file whose
top-level datasets are keyed by id; each array is (T, D) steps or one (D,) vector (stored as
one step). The store is an ordinary :class:`~fusion.features.store.FeatureStore` written
through its public API (one atomic record per video, failures in ``failures.jsonl``), with an
``imported:<name>`` config (:mod:`fusion.features.imported`) and, in ``store.json``'s
``encoders``, the feature set's name, modality, width and source.

The width D is the store's when it exists, else the most common width among the inputs
(read from the headers). A file that is unreadable, not a numeric array, empty, of another
width or holds NaN / inf values is recorded and skipped with one line; the rest go in. A
re-run skips the ids already in the store, so a killed import resumes.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from fusion.errors import DataError, FusionError, error_text
from fusion.features.config import ExtractSummary, FeatureRecord
from fusion.features.imported import (
    MODALITIES,
    Modality,
    check_name,
    imported_config,
    imported_modality,
    imported_name,
)
from fusion.features.store import FeatureStore

logger = logging.getLogger(__name__)

ARRAY_SUFFIXES = (".npy", ".npz")
H5_SUFFIXES = (".h5", ".hdf5")
NPZ_KEYS = ("features", "frames", "audio", "feats", "arr_0")  # tried in order in an .npz of several arrays


@dataclass
class ImportSummary(ExtractSummary):
    """What one import did (``done``, ``skipped``, ``failed``, ``store``, ``elapsed_s`` as for an
    extraction, plus the feature set); ``to_json()`` is the ``fusion import-features --json`` shape."""

    name: str = ""
    modality: str = "frames"
    width: int | None = None
    matched: str | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"done", "skipped", "failed": [{"file", "id", "error"}], "store", "name", "modality", "width", "matched"}``."""
        return {**super().to_json(), "name": self.name, "modality": self.modality, "width": self.width,
                "matched": self.matched}


# ----------------------------------------------------------------- reading the source
def _npz_array(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as npz:
        keys = list(npz.files)
        if len(keys) == 1:
            return npz[keys[0]]
        for key in NPZ_KEYS:
            if key in keys:
                return npz[key]
    raise DataError(f"holds {len(keys)} arrays ({', '.join(keys[:5])}) and none is named "
                    f"{' / '.join(NPZ_KEYS)}; save one array per file")


def _read_file(path: Path) -> np.ndarray:
    """The array of one .npy / .npz file (no pickles)."""
    try:
        if path.suffix == ".npz":
            return _npz_array(path)
        return np.load(path, allow_pickle=False)
    except FusionError:
        raise
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"not a readable NumPy array ({error_text(err)})") from None


def _peek_shape(path: Path) -> tuple[int, ...] | None:
    """The array's shape from a .npy header (no data read; an .npz is read), or None when unreadable."""
    try:
        return tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape if path.suffix == ".npy"
                     else _read_file(path).shape)
    except (FusionError, OSError, ValueError, EOFError):
        return None


@dataclass
class _Source:
    """The items of SOURCE: ``(id, label)`` in id order, how to read one, and its shape from the header."""

    items: list[tuple[str, str]]  # (id, label for messages)
    read: Any  # label -> np.ndarray (raises on a bad item)
    shape: Any  # label -> tuple[int, ...] | None (None: unreadable)


@contextmanager
def open_source(source: str | Path) -> Iterator[_Source]:
    """Open SOURCE (a folder of .npy/.npz files or one .h5/.hdf5 file) for reading.

    Raises:
        DataError: SOURCE is missing, of another kind, or holds no arrays.
    """
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in ARRAY_SUFFIXES and p.is_file())
        if not files:
            raise DataError(f"{path}: no .npy or .npz files in this folder; give a folder of <id>.npy files "
                            "or one .h5 file")
        by_label = {str(p): p for p in files}
        yield _Source([(p.stem, str(p)) for p in files], lambda label: _read_file(by_label[label]),
                      lambda label: _peek_shape(by_label[label]))
    elif path.is_file() and path.suffix.lower() in H5_SUFFIXES:
        with _open_h5(path) as h5:
            yield _Source([(key, f"{path}:{key}") for key in sorted(h5.keys())],
                          lambda label: _h5_array(h5, label.rsplit(":", 1)[1]),
                          lambda label: _h5_shape(h5, label.rsplit(":", 1)[1]))
    elif path.exists():
        raise DataError(f"{path}: not a folder or an .h5/.hdf5 file; give a folder of <id>.npy / <id>.npz files "
                        "or one HDF5 file keyed by id")
    else:
        raise DataError(f"{path}: no such file or folder; give a folder of <id>.npy files or one .h5 file")


@contextmanager
def _open_h5(path: Path) -> Iterator[Any]:
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise DataError("reading .h5 files needs h5py: pip install h5py") from None
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise DataError(f"{path}: not a readable HDF5 file ({err}); check the file or convert it to .npy files") from None
    with handle:
        yield handle


def _h5_array(h5: Any, key: str) -> np.ndarray:
    import h5py

    item = h5[key]
    if not isinstance(item, h5py.Dataset):
        raise DataError("is an HDF5 group, not an array; store one dataset per video id at the top level")
    try:
        return np.asarray(item[()])
    except (OSError, ValueError, TypeError) as err:
        raise DataError(f"unreadable HDF5 dataset ({error_text(err)})") from None


def _h5_shape(h5: Any, key: str) -> tuple[int, ...] | None:
    shape = getattr(h5[key], "shape", None)  # a group has none
    return None if shape is None else tuple(int(n) for n in shape)


# ----------------------------------------------------------------- checking one array
def as_steps(array: np.ndarray, width: int) -> np.ndarray:
    """One video's features as float32 (T, D) steps; a (D,) vector becomes one step.

    Raises:
        DataError: not a numeric array, not 1-d or 2-d, empty, not ``width`` wide, or NaN / inf.
    """
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiub":
        raise DataError(f"not a numeric array (dtype {getattr(array, 'dtype', type(array).__name__)})")
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise DataError(f"shape {tuple(array.shape)} is neither (T, D) nor (D,)")
    if array.size == 0:
        raise DataError(f"empty array (shape {tuple(array.shape)})")
    if array.shape[1] != width:
        raise DataError(f"{array.shape[1]}-d features, the store holds {width}-d ones; "
                        "import features of another width into another --out")
    steps = array.astype(np.float32, copy=False)
    bad = int(np.size(steps) - np.count_nonzero(np.isfinite(steps)))
    if bad:
        raise DataError(f"{bad} NaN / inf values; fix or drop this file")
    return steps


# ----------------------------------------------------------------- the store
def common_shape(shapes: Sequence[tuple[int, ...] | None]) -> tuple[int, int] | None:
    """(steps, width): the most common width among usable 1-d / 2-d shapes, and the most common
    number of steps among those of that width (1 for vectors; first seen wins a tie); None when none is usable."""
    usable = [s for s in shapes if s is not None and len(s) in (1, 2) and s[-1] > 0 and (len(s) == 1 or s[0] > 0)]
    if not usable:
        return None
    width = Counter(s[-1] for s in usable).most_common(1)[0][0]
    steps = Counter(s[0] if len(s) == 2 else 1 for s in usable if s[-1] == width).most_common(1)[0][0]
    return steps, width


def _open_store(out: Path, name: str | None, modality: Modality, default_name: str) -> tuple[FeatureStore, str]:
    """The existing store at ``out`` and its feature set's name, when it holds these imported features.

    Raises:
        DataError: the store holds extracted features, or imported ones of another name or modality.
    """
    store = FeatureStore(out)
    have_name, have_modality = imported_name(store.config), imported_modality(store.config)
    if have_name is None:
        raise DataError(f"{out}: holds features extracted by fusion ({store.config.frame_encoder}); import into "
                        "a new --out folder")
    if (name is not None and name != have_name) or have_modality != modality:
        raise DataError(f"{out}: holds imported {have_modality} features {have_name!r}, not {modality} features "
                        f"{name or default_name!r}; use a new --out, or --name {have_name}")
    return store, have_name


def _create_store(out: Path, name: str, modality: Modality, steps: int, width: int, source: Path) -> FeatureStore:
    store = FeatureStore(out, imported_config(name, modality, steps))
    encoders = {modality: {"name": name, "imported": True, "source": str(source.resolve()), "steps": steps}}
    dims = {m: (width if m == modality else None) for m in MODALITIES}
    store.set_encoders(encoders, dims)
    return store


def default_name(source: str | Path) -> str:
    """The feature set's name when ``--name`` is not given: SOURCE's stem without a ``features_`` prefix."""
    stem = Path(source).stem
    stem = stem[len("features_"):] if stem.startswith("features_") and len(stem) > len("features_") else stem
    cleaned = "".join(c if c.isalnum() or c in "_.+-" else "_" for c in stem).lstrip("_.+-")
    return cleaned[:64] or "features"


def match_report(store_ids: Sequence[str], manifest_ids: Sequence[str], manifest: str | Path) -> str:
    """One line: how many of a manifest's ids have imported features, and what matched nothing."""
    have, want = set(store_ids), list(dict.fromkeys(manifest_ids))
    hit = [i for i in want if i in have]
    lacking = [i for i in want if i not in have]
    extra = sorted(have - set(want))
    line = f"{manifest}: {len(hit)} of {len(want)} manifest ids have features"
    if lacking:
        line += f"; {len(lacking)} have none (e.g. {lacking[0]!r})"
    if extra:
        line += f"; {len(extra)} stored ids are not in the manifest (e.g. {extra[0]!r})"
    if want and not hit and extra:
        line += ": the file names must be the manifest's ids"
    return line


def import_features(
    source: str | Path,
    out: str | Path,
    *,
    name: str | None = None,
    modality: Modality = "frames",
    manifest_ids: Sequence[str] | None = None,
    manifest: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> ImportSummary:
    """Import pre-extracted features into a feature store (resumable).

    Args:
        source: a folder of ``<id>.npy`` / ``<id>.npz`` files, or one ``.h5`` / ``.hdf5`` file
            with one top-level dataset per id; arrays float (T, D) or (D,).
        out: the store folder (created if new; an existing store of the same features is resumed).
        name: the feature set's name; None = the store's, else SOURCE's stem without ``features_``.
        modality: which input the arrays are: ``"frames"`` or ``"audio"``.
        manifest_ids / manifest: the ids to match against (and the manifest's path, for the report).
        overwrite: re-import ids already in the store.
        progress: show a tqdm bar.

    Returns:
        What was imported, skipped and failed (failures are also in ``failures.jsonl``).

    Raises:
        DataError: SOURCE unusable, ``out`` holds other features, no readable array at all.
    """
    start = time.perf_counter()
    if modality not in MODALITIES:
        raise DataError(f"--modality {modality!r}: use one of {', '.join(MODALITIES)}")
    out_path, source_path = Path(out), Path(source)
    fallback = default_name(source_path) if name is None else check_name(name)
    with open_source(source_path) as src:
        if (out_path / "store.json").is_file():
            store, name = _open_store(out_path, name, modality, fallback)
            width = int((store.info.get("dims") or {}).get(modality) or 0)
            if not width:
                raise DataError(f"{out_path}: store.json records no feature width (a first import was killed "
                                "before it began); delete the folder and import again")
        else:
            common = common_shape([src.shape(label) for _, label in src.items])
            if common is None:
                raise DataError(f"{source_path}: no readable non-empty 1-d or 2-d array among {len(src.items)} "
                                "items; give (T, D) or (D,) float arrays")
            name, width = fallback, common[1]
            store = _create_store(out_path, name, modality, common[0], width, source_path)
        summary = ImportSummary(store=str(out_path), name=name, modality=modality, width=width)
        _import_items(src, store, summary, modality, overwrite, progress)
    if manifest_ids is not None:
        summary.matched = match_report(store.ids(), manifest_ids, manifest or "manifest")
        logger.info("%s", summary.matched)
    summary.elapsed_s = time.perf_counter() - start
    return summary


def _import_items(src: _Source, store: FeatureStore, summary: ImportSummary, modality: str, overwrite: bool,
                  progress: bool) -> None:
    """Read, check and write every item not yet in the store; record each bad one."""
    done = set() if overwrite else set(store.ids())
    todo = [(vid, label) for vid, label in src.items if vid not in done]
    summary.skipped = len(src.items) - len(todo)
    assert summary.width is not None
    for vid, label in tqdm(todo, unit="file", desc=f"import {summary.name}", disable=None if progress else True):
        try:
            steps = as_steps(src.read(label), summary.width)
            record = FeatureRecord(id=vid, frames=steps if modality == "frames" else None,
                                   audio=steps if modality == "audio" else None,
                                   meta={"source": label, "imported": summary.name, "steps": int(len(steps))})
            store.write(record)
        except FusionError as err:
            message = error_text(err)
            summary.failed.append({"file": label, "id": vid, "error": message})
            store.log_failure(label, vid, message)
            logger.info("skipped %s: %s", label, message)
            continue
        summary.done += 1
