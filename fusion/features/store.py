"""The on-disk feature store: one file per video, safe to kill, resume and share.

Layout of a store folder::

    store.json       format version, the ExtractConfig's feature keys, encoder names and
                     versions, feature dims (written atomically; every writer writes the
                     same content, so concurrent shard processes may all write it)
    records/<safe-id>.npz   one record per video, written to a temp file then os.replace'd:
                     a kill leaves either the whole record or none of it
    failures.jsonl   one line per file that could not be extracted: file, id, error, time
    checksums.jsonl  one line per record written: id, size in bytes, SHA-256 of the file
                     (appended after the record is in place; the last line of an id wins)

The index is the ``records/`` folder itself: file names are reversible escapes of the ids
(percent-encoding), so ``ids()`` is one directory listing. It is always exact, even while
other processes are writing, and nothing can go stale after a kill. ``checksums.jsonl``
only vouches for the bytes: a record whose size or hash differs from its line (a truncated
copy, a bad disk) is corrupt, :meth:`FeatureStore.verify` says so and ``fusion extract``
re-extracts it. The checksum covers the file's bytes, whatever the record holds.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import numpy as np

from fusion.config import from_dict
from fusion.errors import ConfigError, DataError
from fusion.features.checksums import CHECKSUMS_FILE, RecordChecksums
from fusion.features.config import ExtractConfig, FeatureRecord, config_difference
from fusion.io import atomic_write_bytes, atomic_write_json

logger = logging.getLogger(__name__)

FORMAT_NAME = "fusion.features"
# 2: posteriors per (modality, label space) ("posteriors.audio.imagenet", "steps.audio.imagenet").
# 1: SoundNet's heads and the frame CNN's by name (LEGACY_ARRAYS); still read.
FORMAT_VERSION = 2
POOLED_PREFIX, STEPS_PREFIX = "posteriors.", "steps."  # npz keys: "posteriors.audio.places2"
LEGACY_ARRAYS = {"audio_objects": "audio/imagenet", "audio_places": "audio/places2", "frame_objects": "frames/imagenet"}
RECORD_SUFFIX = ".npz"
MAX_SAFE_ID_CHARS = 200  # file names stay under the 255-byte limit of common file systems
_OWN_NAMES = {"store.json", "records", "failures.jsonl", CHECKSUMS_FILE}


class MissingRecordError(DataError, KeyError):
    """An id that is not in the store. Also a KeyError, so the store behaves like a mapping."""

    __str__ = Exception.__str__  # KeyError would quote the whole message


def safe_id(video_id: str) -> str:
    """The record file stem for ``video_id``: percent-encoded, reversible with :func:`unquote`.

    Raises:
        DataError: empty id, or an id too long for a file name once escaped.
    """
    if not video_id:
        raise DataError("empty video id; give every input a non-empty id")
    name = quote(video_id, safe="-_.")
    if name.startswith("."):  # leading dots are hidden files and our temp files
        name = "%2E" + name[1:]
    if len(name) > MAX_SAFE_ID_CHARS:
        raise DataError(f"video id {video_id[:60]!r}... is too long for a file name; use shorter ids")
    return name


class CorruptRecordError(DataError):
    """A record file that is truncated, altered or unreadable; ``fusion extract`` repairs it."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = path, reason
        store = path.parent.parent
        super().__init__(
            f"{path}: corrupt feature record ({reason}); re-run `fusion extract` with the same inputs "
            f"and --out {store}: it re-extracts corrupt records"
        )


def _record_to_bytes(record: FeatureRecord) -> bytes:
    arrays: dict[str, np.ndarray] = {"id": np.array(record.id)}
    for name in FeatureRecord.ARRAYS:
        value = getattr(record, name)
        if value is not None:
            arrays[name] = np.ascontiguousarray(value, dtype=np.float32)
    for prefix, posteriors in ((POOLED_PREFIX, record.posteriors), (STEPS_PREFIX, record.posteriors_per_step)):
        for key, value in posteriors.items():
            arrays[prefix + key.replace("/", ".")] = np.ascontiguousarray(value, dtype=np.float32)
    arrays["meta"] = np.array(json.dumps(record.meta, sort_keys=True))
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # uncompressed: float features barely compress, and loads stay fast
    return buf.getvalue()


def _record_from_bytes(path: Path, data: bytes) -> FeatureRecord:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(str(arrays.pop("meta")))
        video_id = str(arrays.pop("id"))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise CorruptRecordError(path, f"unreadable ({type(err).__name__}: {err})") from None
    pooled = {LEGACY_ARRAYS[k]: arrays.pop(k) for k in list(arrays) if k in LEGACY_ARRAYS}  # format 1 records
    per_step = {}
    for key in list(arrays):
        for prefix, target in ((POOLED_PREFIX, pooled), (STEPS_PREFIX, per_step)):
            if key.startswith(prefix):
                target[key[len(prefix):].replace(".", "/", 1)] = arrays.pop(key)
    return FeatureRecord(id=video_id, meta=meta, posteriors=pooled, posteriors_per_step=per_step,
                         **{k: arrays.get(k) for k in FeatureRecord.ARRAYS})


def current_dims(dims: dict[str, int | None] | None) -> dict[str, int | None] | None:
    """Feature dims of ``store.json`` under today's keys (format 1 named SoundNet's heads: ``audio_objects``)."""
    if dims is None:
        return None
    return {LEGACY_ARRAYS.get(k, k): v for k, v in dims.items()}


class FeatureStore:
    """A folder of feature records, keyed by video id; random access for training.

    Args:
        path: the store folder. Created when ``config`` is given and it does not exist.
        config: the extraction config. None opens an existing store with its saved config.
            A store made with a different config raises DataError, unless ``overwrite``.
        overwrite: replace the store's config with ``config`` and delete records made with
            the old one (they would otherwise mix two kinds of features).
        cache: keep every record read in memory (epochs after the first read no files).

    Raises:
        DataError: not a store, a config that differs from the store's, a newer format.
    """

    def __init__(
        self,
        path: str | Path,
        config: ExtractConfig | None = None,
        *,
        overwrite: bool = False,
        cache: bool = False,
    ) -> None:
        self.path = Path(path)
        self.records_dir = self.path / "records"
        self.failures_path = self.path / "failures.jsonl"
        self._info_path = self.path / "store.json"
        self._cache: dict[str, FeatureRecord] | None = {} if cache else None
        self.checksums_path = self.path / CHECKSUMS_FILE
        self.checksums = RecordChecksums(self.checksums_path)
        if self._info_path.is_file():
            self.info = self._read_info()
            self._open_existing(config, overwrite)
        elif config is None:
            raise DataError(
                f"{self.path}: not a feature store (no store.json); make one with "
                f"`fusion extract VIDEOS --out {self.path}`"
            )
        else:
            self._create(config)
        self.records_dir.mkdir(parents=True, exist_ok=True)

    # -- store.json --------------------------------------------------------------------------
    def _read_info(self) -> dict[str, Any]:
        try:
            info = json.loads(self._info_path.read_text())
        except (OSError, ValueError) as err:
            raise DataError(f"{self._info_path}: unreadable ({err}); delete the store or use another --out") from None
        if not isinstance(info, dict) or info.get("format") != FORMAT_NAME:
            raise DataError(f"{self._info_path}: not a fusion feature store; use another --out")
        if int(info.get("format_version", 0)) > FORMAT_VERSION:
            raise DataError(
                f"{self._info_path}: store format {info.get('format_version')} is newer than this "
                f"fusion reads ({FORMAT_VERSION}); upgrade fusion"
            )
        return info

    def _open_existing(self, config: ExtractConfig | None, overwrite: bool) -> None:
        stored = self.info.get("config", {})
        if config is None:
            try:
                self.config = from_dict(ExtractConfig, stored)
            except ConfigError as err:
                raise DataError(f"{self._info_path}: bad saved config ({err}); re-extract into a new store") from None
            return
        diff = config_difference(stored, config)
        self.config = config
        if diff is None:
            return
        key, old, new = diff
        if not overwrite:
            raise DataError(
                f"{self.path} was extracted with {key}={old!r}, this run asks {key}={new!r}; "
                f"use a new --out folder, or --overwrite to re-extract this store"
            )
        removed = 0
        for entry in os.scandir(self.records_dir) if self.records_dir.is_dir() else ():
            if entry.name.endswith(RECORD_SUFFIX) and not entry.name.startswith("."):
                os.unlink(entry.path)
                removed += 1
        logger.warning("%s: config changed (%s: %r -> %r); removed %d old records", self.path, key, old, new, removed)
        self.info = self._fresh_info(config)
        atomic_write_json(self._info_path, self.info)

    def _create(self, config: ExtractConfig) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise DataError(f"{self.path}: exists and is not a folder; choose another --out")
        if self.path.is_dir():
            foreign = [p.name for p in self.path.iterdir() if p.name not in _OWN_NAMES and not p.name.startswith(".")]
            if foreign:
                raise DataError(
                    f"{self.path}: folder exists and is not a feature store (holds {foreign[0]!r}); "
                    "choose a new or empty --out folder"
                )
        self.config = config
        self.info = self._fresh_info(config)
        atomic_write_json(self._info_path, self.info)

    @staticmethod
    def _fresh_info(config: ExtractConfig) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "config": config.feature_dict(),
            "config_fingerprint": config.fingerprint(),
            "encoders": None,
            "dims": None,
        }

    def set_encoders(self, encoders: dict[str, Any], dims: dict[str, int | None]) -> None:
        """Record encoder names/versions and feature dims in ``store.json`` (idempotent).

        Args:
            encoders: e.g. ``{"frames": {"name": ..., "weights": ...}, "audio": {...}}``.
            dims: e.g. ``{"frames": 1280, "audio": 256, "audio/imagenet": 1000, ...}``.

        Raises:
            DataError: the store already holds features of other encoders or dims.
        """
        stored = {"encoders": self.info.get("encoders"), "dims": current_dims(self.info.get("dims"))}
        for key, value in (("encoders", encoders), ("dims", dims)):
            old = stored[key]
            if old is not None and old != value:
                raise DataError(
                    f"{self.path}: made with {key} {old}, these encoders give {value}; "
                    "use a new --out folder, or --overwrite"
                )
        if stored == {"encoders": encoders, "dims": dims} and self.info.get("format_version") == FORMAT_VERSION:
            return
        self.info = {**self.info, "format_version": FORMAT_VERSION, "encoders": encoders, "dims": dims}
        atomic_write_json(self._info_path, self.info)

    # -- records -----------------------------------------------------------------------------
    def record_path(self, video_id: str) -> Path:
        """The file that holds (or will hold) the record of ``video_id``."""
        return self.records_dir / (safe_id(video_id) + RECORD_SUFFIX)

    def ids(self) -> list[str]:
        """All finished record ids, sorted (one directory listing)."""
        names = [
            e.name
            for e in os.scandir(self.records_dir)
            if e.name.endswith(RECORD_SUFFIX) and not e.name.startswith(".")
        ]
        return sorted(unquote(n[: -len(RECORD_SUFFIX)]) for n in names)

    def __contains__(self, video_id: object) -> bool:
        return isinstance(video_id, str) and bool(video_id) and self.record_path(video_id).is_file()

    def __len__(self) -> int:
        return len(self.ids())

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids())

    def __getitem__(self, video_id: str) -> FeatureRecord:
        if self._cache is not None and video_id in self._cache:
            return self._cache[video_id]
        path = self.record_path(video_id)
        if not path.is_file():
            raise MissingRecordError(
                f"{video_id!r} is not in feature store {self.path}; add it with `fusion extract ... --out {self.path}`"
            )
        data = path.read_bytes()
        problem = self.checksums.check(video_id, len(data), lambda: data)
        if problem:
            raise CorruptRecordError(path, problem)
        record = _record_from_bytes(path, data)
        want = self.info.get("config_fingerprint")
        got = record.meta.get("config_fingerprint")
        if want is not None and got is not None and got != want:
            raise DataError(f"{path}: record made with another config; re-run fusion extract with --overwrite")
        if self._cache is not None:
            self._cache[video_id] = record
        return record

    def get(self, video_id: str, default: FeatureRecord | None = None) -> FeatureRecord | None:
        """``store[video_id]``, or ``default`` when the id is not in the store."""
        try:
            return self[video_id]
        except MissingRecordError:
            return default

    def write(self, record: FeatureRecord) -> None:
        """Write one record atomically (temp file + os.replace), replacing any old one.

        Raises:
            DataError: arrays of the wrong rank (frames/audio must be (T, D)).
        """
        for name in ("frames", "audio"):
            value = getattr(record, name)
            if value is not None and np.ndim(value) != 2:
                raise DataError(f"record {record.id!r}: {name} must be (T, D), got shape {np.shape(value)}")
        record.meta = {**record.meta, "config_fingerprint": self.info.get("config_fingerprint")}
        data = _record_to_bytes(record)
        atomic_write_bytes(self.record_path(record.id), data)
        self.checksums.append(record.id, data)
        if self._cache is not None:
            self._cache.pop(record.id, None)

    # -- checksums ---------------------------------------------------------------------------
    def verify(self, video_id: str, *, full: bool = True) -> str | None:
        """Check one record against ``checksums.jsonl``; returns what is wrong, or None if intact.

        Args:
            video_id: an id in the store.
            full: hash the whole file (else compare its size only, one ``stat``). A record
                without a checksum line (an older store) is loaded instead, when ``full``.
        """
        path = self.record_path(video_id)
        try:
            size = path.stat().st_size
            problem = self.checksums.check(video_id, size, path.read_bytes if full else None)
            if full and problem is None and not self.checksums.known(video_id):
                _record_from_bytes(path, path.read_bytes())
        except FileNotFoundError:
            return "missing"
        except CorruptRecordError as err:
            return err.reason
        return problem

    def remove_stale_temp_files(self, max_age_s: float = 600.0) -> int:
        """Delete temp files a killed writer left in ``records/`` (older than ``max_age_s``).

        A live writer's temp file exists for milliseconds, so an age limit keeps this safe
        while other processes write to the same store. Returns how many were removed.
        """
        removed, now = 0, time.time()
        for entry in os.scandir(self.records_dir):
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                try:
                    if now - entry.stat().st_mtime > max_age_s:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    continue  # its writer finished or another process cleaned it
        if removed:
            logger.info("%s: removed %d temp files of killed runs", self.path, removed)
        return removed

    # -- failures ----------------------------------------------------------------------------
    def log_failure(self, file: str, video_id: str, error: str) -> None:
        """Append one line to ``failures.jsonl`` (one write call, safe with concurrent writers)."""
        line = json.dumps({"file": file, "id": video_id, "error": error, "time": time.time()}, ensure_ascii=False)
        with open(self.failures_path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def failures(self) -> list[dict[str, Any]]:
        """Every failure logged so far, oldest first (a torn last line is skipped)."""
        if not self.failures_path.is_file():
            return []
        out = []
        for line in self.failures_path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r}, records={len(self)})"
