"""MSR-VTT (Xu et al., CVPR 2016) -> manifest.

``python -m data_prep.msrvtt --source DIR --out MANIFEST [--videos DIR]``; from Python
:func:`build_msrvtt` or :func:`main`. MSR-VTT has audio: it is where the audio branch is
measured on real video.

Annotation files (all share the layout ``{"info", "videos": [{"video_id", "split", "id",
"category", "url", "start time", "end time"}], "sentences": [{"video_id", "caption",
"sen_id"}]}``), found in ``DIR`` or any sub-folder:

* 2016 release: ``train_val_videodatainfo.json`` (splits "train" / "validate") and
  ``test_videodatainfo.json`` (split "test"): 6,513 / 497 / 2,990 videos;
* 2017 layout: ``videodatainfo_2017.json`` (train + validate) and
  ``test_videodatainfo_2017.json`` (test; its sentences may be absent, then the test
  videos get no captions).

Videos are ``<video_id>.mp4`` looked up recursively under ``--videos`` (default ``DIR``;
the release unpacks to ``TrainValVideo/`` and ``TestVideo/``). Missing ones are counted and
listed in ``<manifest>.missing.txt``; the manifest is written anyway.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from data_prep._common import PrepSummary, write_with_missing
from fusion.errors import DataError, FusionError
from fusion.manifest import SPLITS, ManifestEntry

logger = logging.getLogger(__name__)

LAYOUTS: dict[str, tuple[str, ...]] = {
    "2016": ("train_val_videodatainfo.json", "test_videodatainfo.json"),
    "2017": ("videodatainfo_2017.json", "test_videodatainfo_2017.json"),
}
SPLIT_NAMES: dict[str, str] = {"train": "train", "validate": "val", "val": "val", "test": "test"}
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi")


def find_annotations(source: Path) -> tuple[str, list[Path]]:
    """The layout and its annotation files under ``source`` (2016 preferred).

    Raises:
        DataError: No layout's files are found.
    """
    for layout, names in LAYOUTS.items():
        found = [next(iter(sorted(source.rglob(n))), None) for n in names]
        if found[0] is not None:
            return layout, [p for p in found if p is not None]
    raise DataError(f"{source}: no MSR-VTT annotations found (looked for "
                    f"{', '.join(n for names in LAYOUTS.values() for n in names)}); pass --source DIR")


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: invalid JSON ({err.msg} at line {err.lineno}); re-download the annotations") from None
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        raise DataError(f"{path}: expected an object with a 'videos' list (MSR-VTT videodatainfo format)")
    return data


def read_annotations(paths: list[Path]) -> tuple[dict[str, str], dict[str, list[str]], dict[str, dict[str, Any]]]:
    """Split, captions and meta per video id, in the files' video order.

    Raises:
        DataError: A video or sentence record lacks a field, or a split is unknown.
    """
    split_of: dict[str, str] = {}
    meta: dict[str, dict[str, Any]] = {}
    captions: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        data = _load_json(path)
        for i, v in enumerate(data["videos"]):
            if not isinstance(v, dict) or "video_id" not in v or "split" not in v:
                raise DataError(f"{path}: videos[{i}] lacks 'video_id' or 'split'")
            if v["split"] not in SPLIT_NAMES:
                raise DataError(f"{path}: videos[{i}] has unknown split {v['split']!r} "
                                f"(expected {', '.join(SPLIT_NAMES)})")
            split_of[v["video_id"]] = SPLIT_NAMES[v["split"]]
            meta[v["video_id"]] = {"dataset": "msrvtt", "category": v.get("category"), "url": v.get("url"),
                                   "start_s": v.get("start time"), "end_s": v.get("end time")}
        for i, s in enumerate(data.get("sentences", [])):
            if not isinstance(s, dict) or "video_id" not in s or not isinstance(s.get("caption"), str):
                raise DataError(f"{path}: sentences[{i}] lacks 'video_id' or a string 'caption'")
            if s["caption"].strip():
                captions[s["video_id"]].append(s["caption"].strip())
    unknown = sorted(set(captions) - set(split_of))
    if unknown:
        raise DataError(f"{paths[0].parent}: sentences name videos missing from 'videos' (e.g. {unknown[0]})")
    return split_of, dict(captions), meta


def build_msrvtt(source: str | Path, out: str | Path, videos_dir: str | Path | None = None,
                 missing_list: str | Path | None = None) -> PrepSummary:
    """Write the MSR-VTT manifest (ids are the ``video_id`` values, e.g. ``video0``).

    Raises:
        DataError: Annotations missing or malformed.
    """
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise DataError(f"{source}: MSR-VTT folder not found; pass --source DIR with the videodatainfo JSON files")
    layout, paths = find_annotations(source)
    split_of, captions, meta = read_annotations(paths)
    videos_root = Path(videos_dir) if videos_dir else source
    files = {p.stem: p for p in sorted(videos_root.rglob("*")) if p.suffix.lower() in VIDEO_EXTENSIONS}
    entries: list[ManifestEntry] = []
    missing: list[str] = []
    for split in SPLITS:
        for vid, s in split_of.items():
            if s != split:
                continue
            path = files.get(vid)
            if path is None:
                missing.append(vid)
                path = videos_root / f"{vid}.mp4"
            entries.append(ManifestEntry(vid, str(path.resolve()), split, captions.get(vid, []), meta[vid]))
    without = sum(not e.captions for e in entries)
    if without:
        logger.warning("%d MSR-VTT videos have no captions (e.g. the 2017 test set); they are kept for captioning",
                       without)
    summary = write_with_missing(entries, missing, out, missing_list, layout=layout)
    logger.info("MSR-VTT (%s layout): %d videos %s, %d captions, %d present, %d missing",
                layout, len(entries), summary.videos, summary.captions, summary.present, summary.missing)
    return summary


def main(argv: list[str] | None = None) -> int:
    """``python -m data_prep.msrvtt``; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m data_prep.msrvtt", description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, help="folder holding the videodatainfo JSON files")
    p.add_argument("--out", required=True, help="manifest to write (.jsonl)")
    p.add_argument("--videos", default=None, help="video folder, searched recursively (default SOURCE)")
    p.add_argument("--missing-list", default=None, help="file listing missing videos (default OUT.missing.txt)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        s = build_msrvtt(args.source, args.out, args.videos, args.missing_list)
    except FusionError as err:
        print(f"data_prep.msrvtt: error: {err}", file=sys.stderr)
        return err.exit_code
    splits = " / ".join(f"{s.videos[k]} {k}" for k in SPLITS)
    print(f"wrote {s.manifest} ({s.layout} layout): {sum(s.videos.values())} videos ({splits}), "
          f"{s.captions} captions; {s.present} videos present, {s.missing} missing (listed in {s.missing_list})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
