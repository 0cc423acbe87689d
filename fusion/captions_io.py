"""Caption files: read predictions and references from JSON, JSON Lines, CSV or ``id<TAB>caption`` text.

``read_captions`` gives every caption per id (references may repeat an id);
``read_predictions`` insists on one caption per id. Every malformed file is a one-line
:class:`fusion.errors.DataError` naming the file, the record and the expected format.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fusion.errors import DataError

logger = logging.getLogger(__name__)

ID_KEYS = ("id", "video_id", "image_id", "vid")
CAPTION_KEYS = ("caption", "sentence", "text", "captions")


def describe_ids(ids: Sequence[str], limit: int = 5) -> str:
    """``"N id(s): 'a', 'b', ..."`` naming at most ``limit`` of ``ids`` (for error messages)."""
    shown = ", ".join(repr(i) for i in list(ids)[:limit])
    return f"{len(ids)} id(s): {shown}{', ...' if len(ids) > limit else ''}"


def _pick(record: Mapping[str, Any], keys: Sequence[str], path: Any, where: str) -> Any:
    for key in keys:
        if key in record:
            return record[key]
    raise DataError(f"{path}: {where} has no {'/'.join(keys)} field; give each record an id and a caption")


def _add(out: dict[str, list[str]], vid: Any, caption: Any, path: Any, where: str) -> None:
    captions = caption if isinstance(caption, list) else [caption]
    if not all(isinstance(c, str) for c in captions):
        raise DataError(f"{path}: {where}: captions must be strings, got {caption!r}")
    out.setdefault(str(vid), []).extend(captions)


def _read_json(path: Any, text: str) -> dict[str, list[str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err}); give JSON, JSON Lines, CSV or id<TAB>caption text") from err
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]  # COCO annotation file
    out: dict[str, list[str]] = {}
    if isinstance(data, dict):  # {id: caption | [captions]}
        for vid, caption in data.items():
            _add(out, vid, caption, path, f"id {vid!r}")
    elif isinstance(data, list):  # [{"id": .., "caption": ..}, ...] (COCO results)
        for n, rec in enumerate(data):
            if not isinstance(rec, dict):
                raise DataError(f"{path}: item {n} is not an object; give {{\"id\": ..., \"caption\": ...}}")
            _add(out, _pick(rec, ID_KEYS, path, f"item {n}"), _pick(rec, CAPTION_KEYS, path, f"item {n}"), path,
                 f"item {n}")
    else:
        raise DataError(f"{path}: expected an object {{id: caption}} or a list of records")
    return out


def _read_jsonl(path: Any, text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{n}: not valid JSON ({err}); one {{\"id\", \"caption\"}} object per line") from err
        if not isinstance(rec, dict):
            raise DataError(f"{path}:{n}: expected an object with id and caption")
        _add(out, _pick(rec, ID_KEYS, path, f"line {n}"), _pick(rec, CAPTION_KEYS, path, f"line {n}"), path, f"line {n}")
    return out


def _read_csv(path: Any, text: str) -> dict[str, list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    id_key = next((k for k in ID_KEYS if k in header), None)
    cap_key = next((k for k in CAPTION_KEYS if k in header), None)
    if id_key is None or cap_key is None:
        raise DataError(f"{path}: CSV header {header} needs an id column ({'/'.join(ID_KEYS)}) "
                        f"and a caption column ({'/'.join(CAPTION_KEYS)})")
    out: dict[str, list[str]] = {}
    for row in reader:
        _add(out, row[id_key], row[cap_key] or "", path, f"row {reader.line_num}")
    return out


def _read_tsv(path: Any, text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise DataError(f"{path}:{n}: no tab; write `id<TAB>caption` lines (or use .json/.jsonl/.csv)")
        vid, caption = line.split("\t", 1)
        _add(out, vid.strip(), caption.strip(), path, f"line {n}")
    return out


def read_captions(path: Any) -> dict[str, list[str]]:
    """Captions per id from JSON, JSON Lines, CSV or ``id<TAB>caption`` text (by extension).

    JSON: ``{id: caption or [captions]}``, a list of ``{"id"|"video_id"|"image_id", "caption"}``
    records (COCO results), or a COCO annotation file. JSON Lines: one such record per line.
    CSV: a header with an id and a caption column. Anything else: ``id<TAB>caption`` lines,
    e.g. the S2VT release's ``sents_test_lc_nopunc.txt``. An id may repeat (several references).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file; give a captions file (JSON, JSON Lines, CSV or id<TAB>caption text)")
    text = p.read_text(encoding="utf-8-sig")
    suffix = p.suffix.lower()
    reader = {".json": _read_json, ".jsonl": _read_jsonl, ".csv": _read_csv}.get(suffix, _read_tsv)
    captions = reader(p, text)
    if not captions:
        raise DataError(f"{p}: no captions found; check the file format")
    return captions


def read_predictions(path: Any) -> dict[str, str]:
    """One caption per id (see :func:`read_captions`); DataError naming ids with several."""
    captions = read_captions(path)
    several = [i for i, c in captions.items() if len(c) != 1]
    if several:
        raise DataError(f"{path}: predictions need one caption per id, {describe_ids(several)} have several")
    return {i: c[0] for i, c in captions.items()}
