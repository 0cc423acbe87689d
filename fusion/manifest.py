"""The manifest: one JSON Lines format for every dataset downstream of ``data_prep``.

One video per line::

    {"id": "vid1", "video": "clips/vid1.avi", "split": "train",
     "captions": ["a man is playing a guitar", ...], "meta": {...}}

``video`` is relative to the manifest's folder or absolute; :func:`load_manifest` returns
absolute paths. ``captions`` may be empty (videos to caption without references). ``meta``
is free-form per dataset (see ``data_prep``). Loading is strict: any error names the line
number and the field, and says how to fix it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusion.errors import ManifestError
from fusion.io import atomic_write_text

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
FIELDS: tuple[str, ...] = ("id", "video", "split", "captions", "meta")
REQUIRED_FIELDS: tuple[str, ...] = ("id", "video", "split", "captions")


@dataclass
class ManifestEntry:
    """One video of a dataset.

    Attributes:
        id: Unique id within the manifest (e.g. the MSVD clip name).
        video: Path of the media file; absolute after :func:`load_manifest`.
        split: ``"train"``, ``"val"`` or ``"test"``.
        captions: Reference captions (possibly empty).
        meta: Dataset-specific facts (JSON-serialisable).
    """

    id: str
    video: str
    split: str
    captions: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def _fail(path: Path, line_no: int, fld: str | None, message: str) -> ManifestError:
    where = f"{path}:{line_no}" + (f" field '{fld}'" if fld else "")
    return ManifestError(f"{where}: {message}")


def _validate_record(obj: Any, path: Path, line_no: int) -> ManifestEntry:
    """Check one decoded JSON line and build the entry (video path still as written)."""
    if not isinstance(obj, dict):
        raise _fail(path, line_no, None, f"expected a JSON object, got {type(obj).__name__}; "
                    "write one {\"id\", \"video\", \"split\", \"captions\", \"meta\"} object per line")
    for key in obj:
        if key not in FIELDS:
            raise _fail(path, line_no, key, f"unknown field; allowed fields are {', '.join(FIELDS)} "
                        "(put dataset-specific facts under 'meta')")
    for key in REQUIRED_FIELDS:
        if key not in obj:
            raise _fail(path, line_no, key, "missing required field; add it to the line")
    vid, video, split, captions = obj["id"], obj["video"], obj["split"], obj["captions"]
    meta = obj.get("meta", {})
    if not isinstance(vid, str) or not vid.strip():
        raise _fail(path, line_no, "id", f"must be a non-empty string, got {vid!r}")
    if not isinstance(video, str) or not video.strip():
        raise _fail(path, line_no, "video", f"must be a non-empty path string, got {video!r}")
    if split not in SPLITS:
        raise _fail(path, line_no, "split", f"must be one of {', '.join(SPLITS)}, got {split!r}")
    if not isinstance(captions, list):
        raise _fail(path, line_no, "captions", f"must be a list of strings, got {type(captions).__name__}")
    for i, cap in enumerate(captions):
        if not isinstance(cap, str) or not cap.strip():
            raise _fail(path, line_no, f"captions[{i}]", f"must be a non-empty string, got {cap!r}")
    if not isinstance(meta, dict):
        raise _fail(path, line_no, "meta", f"must be a JSON object, got {type(meta).__name__}")
    return ManifestEntry(id=vid, video=video, split=split, captions=list(captions), meta=meta)


def load_manifest(path: str | os.PathLike[str]) -> list[ManifestEntry]:
    """Read and validate a JSON Lines manifest.

    Blank lines are skipped. Relative ``video`` paths are resolved against the manifest's
    folder, so the returned entries hold absolute paths. The files need not exist (text-only
    uses); ``fusion data stats`` reports missing ones.

    Args:
        path: The ``.jsonl`` manifest.

    Returns:
        The entries in file order.

    Raises:
        ManifestError: The file is missing or empty, or a line is not valid JSON, lacks a
            field, has a wrong type, an unknown split, or repeats an id (names line + field).
    """
    path = Path(path)
    if path.is_dir():
        inside = sorted(path.glob("*.jsonl"))
        hint = f"give the manifest file, e.g. {inside[0]}" if inside else (
            "give a manifest .jsonl file (python -m data_prep.<dataset> writes one)")
        raise ManifestError(f"{path}: is a folder, not a manifest; {hint}")
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found; build one with python -m data_prep.<dataset> --out {path}")
    base = path.resolve().parent
    entries: list[ManifestEntry] = []
    first_line: dict[str, int] = {}
    with path.open("r", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise _fail(path, line_no, None, f"invalid JSON ({err.msg} at column {err.colno}); "
                            "each line must be one complete JSON object") from None
            entry = _validate_record(obj, path, line_no)
            if entry.id in first_line:
                raise _fail(path, line_no, "id", f"duplicate id {entry.id!r} (first on line "
                            f"{first_line[entry.id]}); ids must be unique")
            first_line[entry.id] = line_no
            video = Path(entry.video).expanduser()
            entry.video = str(video if video.is_absolute() else (base / video))
            entries.append(entry)
    if not entries:
        raise ManifestError(f"{path}: manifest has no entries; it must hold one JSON object per line")
    return entries


def _relative_video(video: str, base: Path) -> str:
    """``video`` relative to ``base`` when it lies inside it, else absolute."""
    path = Path(video)
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.resolve().relative_to(base).as_posix()
    except ValueError:
        return str(path)


def entry_to_dict(entry: ManifestEntry) -> dict[str, Any]:
    """The JSON object of one manifest line (``video`` as stored in the entry)."""
    return {"id": entry.id, "video": entry.video, "split": entry.split,
            "captions": list(entry.captions), "meta": entry.meta}


def write_manifest(entries: Iterable[ManifestEntry], path: str | os.PathLike[str]) -> None:
    """Write entries as JSON Lines, atomically.

    Videos inside the manifest's folder are written relative to it (the folder can be
    moved as a whole); others stay absolute. Output is byte-stable for equal input.

    Args:
        entries: Entries to write, in order.
        path: Destination ``.jsonl``.

    Raises:
        ManifestError: An entry is invalid (same rules as :func:`load_manifest`; the
            line number is the entry's position, from 1).
    """
    path = Path(path)
    base = path.resolve().parent
    lines: list[str] = []
    seen: set[str] = set()
    for line_no, entry in enumerate(entries, start=1):
        obj = entry_to_dict(entry)
        obj["video"] = _relative_video(entry.video, base) if isinstance(entry.video, str) else entry.video
        checked = _validate_record(obj, path, line_no)
        if checked.id in seen:
            raise _fail(path, line_no, "id", f"duplicate id {checked.id!r}; ids must be unique")
        seen.add(checked.id)
        lines.append(json.dumps(obj, ensure_ascii=False, sort_keys=False))
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    logger.info("wrote %d manifest entries to %s", len(lines), path)


def split_entries(entries: Iterable[ManifestEntry], split: str) -> list[ManifestEntry]:
    """The entries of one split, in order.

    Raises:
        ManifestError: ``split`` is not one of :data:`SPLITS`.
    """
    if split not in SPLITS:
        raise ManifestError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return [e for e in entries if e.split == split]


def references(entries: Iterable[ManifestEntry]) -> dict[str, list[str]]:
    """``{id: captions}`` for evaluation."""
    return {e.id: list(e.captions) for e in entries}
