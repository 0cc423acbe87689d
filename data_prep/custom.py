"""A user's own (video, caption) pairs -> manifest.

``python -m data_prep.custom PAIRS --out MANIFEST``; from Python :func:`build_custom` or
:func:`main`. ``PAIRS`` is either

* a CSV with a header holding ``video`` and ``caption`` columns (optional ``split`` and
  ``id``), one row per caption; rows of the same video are merged; an empty caption
  gives a video without references; or
* a JSON list of objects ``{"video": ..., "caption": str}`` or ``{"video": ...,
  "captions": [str, ...]}`` (optional ``split``, ``id``), or a JSON object
  ``{video: [captions]}``.

Relative video paths are resolved against ``--video-root`` (default: the PAIRS file's
folder). Ids default to the file name without extension (parent folders are added when
two names clash). Videos without a split go to ``--split`` (default ``train``), or, with
``--val-fraction`` / ``--test-fraction``, to a seeded random split.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusion.errors import DataError, script_main
from fusion.manifest import SPLITS, ManifestEntry, write_manifest

logger = logging.getLogger(__name__)


@dataclass
class _Video:
    video: str
    id: str | None = None
    split: str | None = None
    captions: list[str] = field(default_factory=list)


def _add(videos: dict[str, _Video], where: str, video: Any, captions: list[Any], split: Any, vid: Any) -> None:
    if not isinstance(video, str) or not video.strip():
        raise DataError(f"{where}: 'video' must be a non-empty path, got {video!r}")
    if split not in (None, "") and split not in SPLITS:
        raise DataError(f"{where}: 'split' must be one of {', '.join(SPLITS)}, got {split!r}")
    item = videos.setdefault(video, _Video(video))
    for cap in captions:
        if not isinstance(cap, str):
            raise DataError(f"{where}: captions must be strings, got {cap!r}")
        if cap.strip():
            item.captions.append(cap.strip())
    for attr, value in (("split", split), ("id", vid)):
        if value not in (None, ""):
            if getattr(item, attr) not in (None, value):
                raise DataError(f"{where}: {attr} {value!r} contradicts {getattr(item, attr)!r} given earlier for {video}")
            setattr(item, attr, value)


def read_pairs(path: Path) -> list[_Video]:
    """Read a CSV or JSON pairs file (see the module docstring).

    Raises:
        DataError: Unreadable file, missing column, wrong types (names row/index and field).
    """
    if not path.is_file():
        raise DataError(f"{path}: pairs file not found; give a CSV (video,caption) or JSON file")
    videos: dict[str, _Video] = {}
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if not {"video", "caption"} <= set(reader.fieldnames or []):
                raise DataError(f"{path}: the CSV header must name 'video' and 'caption' columns, got {reader.fieldnames}")
            for row_no, row in enumerate(reader, start=2):
                _add(videos, f"{path}:{row_no}", row["video"], [row["caption"] or ""], row.get("split"), row.get("id"))
        return list(videos.values())
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: invalid JSON ({err.msg} at line {err.lineno})") from None
    if isinstance(data, dict):
        for video, caps in data.items():
            _add(videos, f"{path}: key {video!r}", video, caps if isinstance(caps, list) else [caps], None, None)
    elif isinstance(data, list):
        for i, obj in enumerate(data):
            where = f"{path}: item [{i}]"
            if not isinstance(obj, dict) or "video" not in obj:
                raise DataError(f"{where}: expected an object with a 'video' field")
            caps = obj.get("captions", [obj["caption"]] if "caption" in obj else [])
            if not isinstance(caps, list):
                raise DataError(f"{where}: 'captions' must be a list of strings")
            _add(videos, where, obj["video"], caps, obj.get("split"), obj.get("id"))
    else:
        raise DataError(f"{path}: expected a JSON list of {{video, caption}} objects or a {{video: [captions]}} object")
    return list(videos.values())


def _ids(videos: list[_Video], paths: list[Path]) -> list[str]:
    """Given ids, else file stems; clashing stems get their parent folders prefixed."""
    stems = [v.id or p.stem for v, p in zip(videos, paths)]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    ids = [s if (v.id or counts[s] == 1) else "_".join(q for q in Path(v.video).with_suffix("").parts[-2:] if q != "/")
           for s, v in zip(stems, videos)]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"two videos get the id {dup!r}; give an 'id' column/field to tell them apart")
    return ids


def build_custom(pairs: str | Path, out: str | Path, video_root: str | Path | None = None,
                 default_split: str = "train", val_fraction: float = 0.0, test_fraction: float = 0.0,
                 seed: int = 0) -> list[ManifestEntry]:
    """Write a manifest from a user's pairs file.

    Returns:
        The written entries (absolute video paths).

    Raises:
        DataError: Bad file, bad split options, or clashing ids.
    """
    pairs = Path(pairs)
    if default_split not in SPLITS:
        raise DataError(f"--split must be one of {', '.join(SPLITS)}, got {default_split!r}")
    if not (0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction < 1):
        raise DataError(f"--val-fraction + --test-fraction must be in [0, 1), got {val_fraction} + {test_fraction}")
    videos = read_pairs(pairs)
    if not videos:
        raise DataError(f"{pairs}: no (video, caption) pairs found")
    root = Path(video_root) if video_root else pairs.resolve().parent
    paths = [Path(v.video) if Path(v.video).is_absolute() else root / v.video for v in videos]
    ids = _ids(videos, paths)
    unsplit = [i for i, v in enumerate(videos) if v.split is None]
    if val_fraction or test_fraction:
        order = np.random.default_rng(seed).permutation(len(unsplit))
        n_val, n_test = round(val_fraction * len(unsplit)), round(test_fraction * len(unsplit))
        for rank, k in enumerate(order):
            videos[unsplit[int(k)]].split = "val" if rank < n_val else "test" if rank < n_val + n_test else default_split
    entries = [ManifestEntry(i, str(p.resolve()), v.split or default_split, v.captions, {"dataset": "custom"})
               for i, p, v in zip(ids, paths, videos)]
    missing = sum(not Path(e.video).is_file() for e in entries)
    write_manifest(entries, out)
    logger.info("custom: %d videos, %d captions, %d missing on disk -> %s",
                len(entries), sum(len(e.captions) for e in entries), missing, out)
    return entries


@script_main("data_prep.custom")
def main(argv: list[str] | None = None) -> int:
    """``python -m data_prep.custom``; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m data_prep.custom", description=__doc__.splitlines()[0])
    p.add_argument("pairs", help="CSV (video,caption[,split,id]) or JSON pairs file")
    p.add_argument("--out", required=True, help="manifest to write (.jsonl)")
    p.add_argument("--video-root", default=None, help="folder relative video paths start from (default: PAIRS's)")
    p.add_argument("--split", default="train", choices=SPLITS, help="split of videos without one (default train)")
    p.add_argument("--val-fraction", type=float, default=0.0, help="random share of unsplit videos for val")
    p.add_argument("--test-fraction", type=float, default=0.0, help="random share of unsplit videos for test")
    p.add_argument("--seed", type=int, default=0, help="seed of the random split")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    entries = build_custom(args.pairs, args.out, args.video_root, args.split, args.val_fraction,
                           args.test_fraction, args.seed)
    counts = " / ".join(f"{sum(e.split == s for e in entries)} {s}" for s in SPLITS)
    missing = sum(not Path(e.video).is_file() for e in entries)
    print(f"wrote {args.out}: {len(entries)} videos ({counts}), "
          f"{sum(len(e.captions) for e in entries)} captions; {missing} videos missing on disk")
    return 0


if __name__ == "__main__":
    sys.exit(main())
