"""MSR-VTT (Xu et al., CVPR 2016) -> manifest.

``python -m data_prep.msrvtt --source DIR --out MANIFEST [--videos DIR] [--json]``; from
Python :func:`build_msrvtt`, :func:`read_msrvtt` (captions per split, no manifest) or
:func:`main`. MSR-VTT has audio: it is where the audio branch is measured on real video.

Annotation files (all share the layout ``{"info", "videos": [{"video_id", "split", "id",
"category", "url", "start time", "end time"}], "sentences": [{"video_id", "caption",
"sen_id"}]}``), found in ``DIR`` or any sub-folder, as plain JSON or inside the zip files
they are distributed in (plain JSON wins where both exist):

* 2016 release: ``train_val_videodatainfo.json`` (splits "train" / "validate"; distributed
  in ``train_val_annotation.zip`` with ``category.txt``) and ``test_videodatainfo.json``
  (split "test"; ``test_videodatainfo.json.zip``): 10,000 clips, 200,000 captions,
  6,513 / 497 / 2,990 videos;
* 2017 layout: ``videodatainfo_2017.json`` (train + validate) and
  ``test_videodatainfo_2017.json`` (test; its sentences may be absent, then the test
  videos get no captions).

Videos are ``<video_id>.mp4`` (or .webm/.mkv/.avi) looked up recursively under ``--videos``
(default ``DIR``; the release unpacks to ``TrainValVideo/`` and ``TestVideo/``). Missing ones
are counted and listed in ``<manifest>.missing.txt``; the manifest is written anyway. Present
ones are probed: the summary says how many have an audio stream.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import zipfile
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from data_prep._common import PrepSummary, write_with_missing
from fusion.errors import DataError, FusionError, script_main
from fusion.manifest import SPLITS, ManifestEntry

logger = logging.getLogger(__name__)

LAYOUTS: dict[str, tuple[str, ...]] = {
    "2016": ("train_val_videodatainfo.json", "test_videodatainfo.json"),
    "2017": ("videodatainfo_2017.json", "test_videodatainfo_2017.json"),
}
SPLIT_NAMES: dict[str, str] = {"train": "train", "validate": "val", "val": "val", "test": "test"}
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi")


@dataclass(frozen=True)
class AnnotationFile:
    """One annotation JSON: a plain file, or ``member`` of the zip file ``path``."""

    path: Path
    member: str | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    def read_text(self) -> str:
        """The file's text (UTF-8). Raises DataError for an unreadable zip."""
        if self.member is None:
            return self.path.read_text(encoding="utf-8")
        try:
            with zipfile.ZipFile(self.path) as archive:
                return archive.read(self.member).decode("utf-8")
        except (zipfile.BadZipFile, OSError, KeyError) as err:
            raise DataError(f"{self}: cannot read from the zip file ({err}); re-download the annotations") from None


def _zip_members(source: Path) -> dict[str, list[AnnotationFile]]:
    """JSON members of every zip under ``source``, by base name."""
    found: dict[str, list[AnnotationFile]] = defaultdict(list)
    for archive in sorted(source.rglob("*.zip")):
        try:
            with zipfile.ZipFile(archive) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            raise DataError(f"{archive}: not a readable zip file ({err}); re-download it or unzip it by hand") from None
        for name in names:
            if name.endswith(".json") and not name.startswith("__MACOSX/"):
                found[name.rsplit("/", 1)[-1]].append(AnnotationFile(archive, name))
    return found


def find_annotations(source: Path) -> tuple[str, list[AnnotationFile]]:
    """The layout and its annotation files under ``source`` (2016 preferred; plain JSON before zipped).

    Raises:
        DataError: No layout's files are found.
    """
    plain_files: dict[str, Path] = {}
    for path in sorted(source.rglob("*.json")):  # one walk: the first path per file name
        plain_files.setdefault(path.name, path)
    zipped: dict[str, list[AnnotationFile]] | None = None
    for layout, names in LAYOUTS.items():
        found: list[AnnotationFile | None] = []
        for name in names:
            plain = plain_files.get(name)
            if plain is None:
                zipped = _zip_members(source) if zipped is None else zipped
                found.append(zipped[name][0] if zipped.get(name) else None)
            else:
                found.append(AnnotationFile(plain))
        if found[0] is not None:
            return layout, [f for f in found if f is not None]
    raise DataError(f"{source}: no MSR-VTT annotations found (looked for "
                    f"{', '.join(n for names in LAYOUTS.values() for n in names)}, plain or in .zip files); "
                    "pass --source DIR")


def _load_json(source: AnnotationFile) -> dict[str, Any]:
    try:
        data = json.loads(source.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{source}: invalid JSON ({err.msg} at line {err.lineno}); re-download the annotations") from None
    except UnicodeDecodeError:
        raise DataError(f"{source}: not UTF-8 text; re-download the annotations") from None
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        raise DataError(f"{source}: expected an object with a 'videos' list (MSR-VTT videodatainfo format)")
    return data


def read_annotations(paths: list[AnnotationFile] | list[Path]) -> tuple[dict[str, str], dict[str, list[str]],
                                                                         dict[str, dict[str, Any]]]:
    """Split, captions and meta per video id, in the files' video order.

    Raises:
        DataError: A video or sentence record lacks a field, or a split is unknown.
    """
    split_of: dict[str, str] = {}
    meta: dict[str, dict[str, Any]] = {}
    captions: dict[str, list[str]] = defaultdict(list)
    for item in paths:
        path = item if isinstance(item, AnnotationFile) else AnnotationFile(Path(item))
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
        for i, s in enumerate(data.get("sentences", [])):  # the release lists them in sen_id order
            if not isinstance(s, dict) or "video_id" not in s or not isinstance(s.get("caption"), str):
                raise DataError(f"{path}: sentences[{i}] lacks 'video_id' or a string 'caption'")
            if s["caption"].strip():
                captions[s["video_id"]].append(s["caption"].strip())
    unknown = sorted(set(captions) - set(split_of))
    if unknown:
        raise DataError(f"{paths[0]}: sentences name videos missing from 'videos' (e.g. {unknown[0]})")
    return split_of, dict(captions), meta


def read_msrvtt(source: str | Path) -> tuple[str, dict[str, str], dict[str, list[str]], dict[str, dict[str, Any]]]:
    """Layout, split, captions (file order) and meta per video id of the annotations under ``source``.

    Raises:
        DataError: The folder or its annotations are missing or malformed.
    """
    source = Path(source)
    if not source.is_dir():
        raise DataError(f"{source}: MSR-VTT folder not found; pass --source DIR with the videodatainfo JSON "
                        "(or zip) files")
    layout, files = find_annotations(source)
    return (layout, *read_annotations(files))


def count_with_audio(paths: list[Path]) -> int:
    """How many of the media files have an audio stream (header probe); unreadable ones are logged."""
    from fusion.media import probe

    with_audio = 0
    for path in paths:
        try:
            with_audio += probe(path).has_audio_stream
        except FusionError as err:
            logger.warning("%s: cannot probe (%s); counted without audio", path, err)
    return with_audio


def build_msrvtt(source: str | Path, out: str | Path, videos_dir: str | Path | None = None,
                 missing_list: str | Path | None = None, probe_audio: bool = True) -> PrepSummary:
    """Write the MSR-VTT manifest (ids are the ``video_id`` values, e.g. ``video0``).

    Args:
        source: Folder holding the annotation files (plain or zipped).
        out: Manifest to write (.jsonl).
        videos_dir: Folder searched recursively for ``<video_id>.mp4``; default ``source``.
        missing_list: File listing the videos not found; default ``<out>.missing.txt``.
        probe_audio: Probe the present videos for an audio stream (``summary.with_audio``).

    Raises:
        DataError: Annotations missing or malformed.
    """
    out = Path(out)
    layout, split_of, captions, meta = read_msrvtt(source)
    videos_root = Path(videos_dir) if videos_dir else Path(source)
    if videos_dir is not None and not videos_root.is_dir():
        raise DataError(f"{videos_root}: video folder not found; fix --videos")
    files = {p.stem: p for p in sorted(videos_root.rglob("*")) if p.suffix.lower() in VIDEO_EXTENSIONS}
    entries: list[ManifestEntry] = []
    missing: list[str] = []
    present: list[Path] = []
    for split in SPLITS:
        for vid, s in split_of.items():
            if s != split:
                continue
            path = files.get(vid)
            if path is None:
                missing.append(vid)
                path = videos_root / f"{vid}.mp4"
            else:
                present.append(path)
            entries.append(ManifestEntry(vid, str(path.resolve()), split, captions.get(vid, []), meta[vid]))
    without = sum(not e.captions for e in entries)
    if without:
        logger.warning("%d MSR-VTT videos have no captions (e.g. the 2017 test set); they are kept for captioning",
                       without)
    summary = write_with_missing(entries, missing, out, missing_list, layout=layout)
    if probe_audio:
        summary.with_audio = count_with_audio(present)
    logger.info("MSR-VTT (%s layout): %d videos %s, %d captions, %d present (%s with audio), %d missing",
                layout, len(entries), summary.videos, summary.captions, summary.present,
                summary.with_audio, summary.missing)
    return summary


def summary_dict(summary: PrepSummary) -> dict[str, Any]:
    """The summary as JSON-ready values (``clips`` = videos in all splits)."""
    data = asdict(summary)
    data.update(manifest=str(summary.manifest), missing_list=str(summary.missing_list),
                clips=sum(summary.videos.values()))
    return data


@script_main("data_prep.msrvtt")
def main(argv: list[str] | None = None) -> int:
    """``python -m data_prep.msrvtt``; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m data_prep.msrvtt", description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, help="folder holding the videodatainfo JSON files or their zip files")
    p.add_argument("--out", required=True, help="manifest to write (.jsonl)")
    p.add_argument("--videos", default=None, help="video folder, searched recursively (default SOURCE)")
    p.add_argument("--missing-list", default=None, help="file listing missing videos (default OUT.missing.txt)")
    p.add_argument("--no-probe", action="store_true", help="do not probe present videos for an audio stream")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    s = build_msrvtt(args.source, args.out, args.videos, args.missing_list, probe_audio=not args.no_probe)
    if args.json:
        print(json.dumps(summary_dict(s)))
        return 0
    splits = " / ".join(f"{s.videos[k]:,} {k}" for k in SPLITS)
    audio = "" if s.with_audio is None else f" ({s.with_audio} with audio)"
    print(f"wrote {s.manifest} ({s.layout} layout): {sum(s.videos.values()):,} clips ({splits}), "
          f"{s.captions:,} captions; {s.present} clips present{audio}, {s.missing:,} missing "
          f"(listed in {s.missing_list})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
