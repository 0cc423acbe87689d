"""MSVD (YouTube2Text, Chen & Dolan, ACL 2011) -> manifest.

``python -m data_prep.msvd --out MANIFEST [--source DIR]``; from Python
:func:`build_msvd` or :func:`main`. Two caption sources are understood:

* the S2VT release (Venugopalan et al., 2015): ``captions/sents_{train,val,test}_lc_nopunc.txt``
  (``vidN<TAB>sentence``) + ``captions/youtube_video_to_id_mapping.txt`` (``clipname vidN``);
  the file names give the split (1,200 / 100 / 670 videos);
* the original ``MSR Video Description Corpus.csv`` (English rows; clip name
  ``VideoID_Start_End``) with the standard split lists ``splits/{train,val,test}_list.txt``;
  its captions are normalised like the S2VT release (``--keep-raw`` keeps them as written).

Clips are looked up as ``<clip name>.<ext>`` in ``--clips`` (default ``DIR/clips`` or
``DIR/YouTubeClips``). Ids are the clip names. Missing clips are counted, listed in
``<manifest>.missing.txt`` and still written to the manifest (text-only uses need no video).
MSVD has no audio at all, so no entry claims one.
"""

from __future__ import annotations

import argparse
import csv
import logging
import re
import sys
from collections import defaultdict
from pathlib import Path

from data_prep._common import PrepSummary, write_with_missing
from fusion.errors import DataError, script_main
from fusion.manifest import SPLITS, ManifestEntry
from fusion.paths import data_dir
from fusion.text import normalize

logger = logging.getLogger(__name__)

CSV_NAME = "MSR Video Description Corpus.csv"
VIDEO_EXTENSIONS = (".avi", ".mp4", ".webm", ".mkv", ".mov")
_VID_NUM = re.compile(r"^vid(\d+)$")


def _find(source: Path, name: str) -> Path | None:
    for cand in (source / "captions" / name, source / name):
        if cand.is_file():
            return cand
    return None


def read_s2vt_release(source: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Captions per clip name and split per clip name from the S2VT release files.

    Raises:
        DataError: A file is missing or a line is malformed (names file and line).
    """
    mapping_path = _find(source, "youtube_video_to_id_mapping.txt")
    if mapping_path is None:
        raise DataError(f"{source}: youtube_video_to_id_mapping.txt not found (looked in captions/ and the "
                        "folder itself); pass --source pointing at the MSVD folder")
    vid_to_clip: dict[str, str] = {}
    for n, line in enumerate(mapping_path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            parts = line.split()
            if len(parts) != 2:
                raise DataError(f"{mapping_path}:{n}: expected '<clipname> vidN', got {line!r}")
            vid_to_clip[parts[1]] = parts[0]
    captions: dict[str, list[str]] = defaultdict(list)
    split_of: dict[str, str] = {}
    for split in SPLITS:
        path = _find(source, f"sents_{split}_lc_nopunc.txt")
        if path is None:
            raise DataError(f"{source}: sents_{split}_lc_nopunc.txt not found; the S2VT release has one per split")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            vid, sep, sentence = line.partition("\t")
            if not sep or vid not in vid_to_clip or not sentence.strip():
                raise DataError(f"{path}:{n}: expected 'vidN<TAB>sentence' with vidN in the mapping, got {line!r}")
            clip = vid_to_clip[vid]
            captions[clip].append(sentence.strip())
            split_of[clip] = split
    clip_to_num = {c: int(m.group(1)) if (m := _VID_NUM.match(v)) else 0 for v, c in vid_to_clip.items()}
    order = sorted(captions, key=lambda c: (clip_to_num[c], c))  # vid1, vid2, ... as released
    return {c: captions[c] for c in order}, split_of


def read_split_lists(splits_dir: Path) -> dict[str, str]:
    """Split per clip name from ``{train,val,test}_list.txt``.

    Raises:
        DataError: A list is missing or a clip appears in two splits.
    """
    split_of: dict[str, str] = {}
    for split in SPLITS:
        path = splits_dir / f"{split}_list.txt"
        if not path.is_file():
            raise DataError(f"{path}: split list not found; pass --splits DIR holding train/val/test_list.txt")
        for clip in path.read_text(encoding="utf-8").split():
            if clip in split_of and split_of[clip] != split:
                raise DataError(f"{path}: clip {clip} is also in the {split_of[clip]} list; splits must be disjoint")
            split_of[clip] = split
    return split_of


def read_corpus_csv(csv_path: Path, keep_raw: bool = False) -> dict[str, list[str]]:
    """English captions per clip name from ``MSR Video Description Corpus.csv``.

    Raises:
        DataError: The CSV lacks the expected columns.
    """
    captions: dict[str, list[str]] = defaultdict(list)
    with csv_path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"VideoID", "Start", "End", "Language", "Description"}
        if not need <= set(reader.fieldnames or []):
            raise DataError(f"{csv_path}: expected columns {sorted(need)}, got {reader.fieldnames}; "
                            "is this MSR Video Description Corpus.csv?")
        for row in reader:
            if (row["Language"] or "").strip() != "English" or not (row["Description"] or "").strip():
                continue
            clip = f"{row['VideoID']}_{row['Start']}_{row['End']}"
            text = row["Description"].strip() if keep_raw else normalize(row["Description"])
            if text:
                captions[clip].append(text)
    return dict(captions)


def index_clips(clips_dir: Path | None) -> dict[str, Path]:
    """Clip name -> file for every video file in ``clips_dir`` (empty when absent)."""
    if clips_dir is None or not clips_dir.is_dir():
        return {}
    return {p.stem: p for p in sorted(clips_dir.iterdir()) if p.suffix.lower() in VIDEO_EXTENSIONS}


def build_msvd(out: str | Path, source: str | Path | None = None, clips_dir: str | Path | None = None,
               captions_csv: str | Path | None = None, splits_dir: str | Path | None = None,
               missing_list: str | Path | None = None, keep_raw: bool = False) -> PrepSummary:
    """Write the MSVD manifest.

    Args:
        out: Manifest path (``.jsonl``).
        source: MSVD folder (default ``$FUSION_DATA_DIR/msvd``).
        clips_dir: Clip folder (default ``source/clips`` or ``source/YouTubeClips``).
        captions_csv: Use the original corpus CSV instead of the S2VT release (default:
            ``source/MSR Video Description Corpus.csv`` when the release is absent).
        splits_dir: Split lists (default ``source/splits``); required with the CSV.
        missing_list: Where to list missing clips (default ``<out>.missing.txt``).
        keep_raw: With the CSV, keep captions as written instead of S2VT-normalised.

    Returns:
        Counts of what was written.

    Raises:
        DataError: The source files are missing or malformed.
    """
    source = Path(source) if source is not None else data_dir() / "msvd"
    out = Path(out)
    if not source.is_dir():
        raise DataError(f"{source}: MSVD folder not found; pass --source DIR (S2VT captions/ or {CSV_NAME!r})")
    splits_dir = Path(splits_dir) if splits_dir else source / "splits"
    csv_path = Path(captions_csv) if captions_csv else None
    if csv_path is None and _find(source, "sents_train_lc_nopunc.txt") is None and (source / CSV_NAME).is_file():
        csv_path = source / CSV_NAME
    if csv_path is not None:
        split_of = read_split_lists(splits_dir)
        all_caps = read_corpus_csv(csv_path, keep_raw)
        captions = {c: all_caps[c] for c in split_of if c in all_caps}
        dropped = len(split_of) - len(captions)
        if dropped:
            logger.warning("%d clips of the split lists have no English caption in %s", dropped, csv_path)
        origin = "msr_video_description_corpus_csv"
    else:
        captions, split_of = read_s2vt_release(source)
        if splits_dir.is_dir():
            listed = read_split_lists(splits_dir)
            disagree = sum(listed.get(c) != s for c, s in split_of.items())
            if disagree:
                logger.warning("%d clips are in a different split in %s than in the S2VT release; "
                               "using the release", disagree, splits_dir)
        origin = "s2vt_release"
    if clips_dir is None:
        clips_dir = next((d for d in (source / "clips", source / "YouTubeClips") if d.is_dir()), source / "clips")
    clips_dir = Path(clips_dir)
    files = index_clips(clips_dir)
    entries: list[ManifestEntry] = []
    missing: list[str] = []
    for split in SPLITS:
        for clip, caps in captions.items():
            if split_of[clip] != split:
                continue
            path = files.get(clip)
            if path is None:
                missing.append(clip)
                path = clips_dir / f"{clip}.avi"
            entries.append(ManifestEntry(clip, str(path.resolve()), split, caps,
                                         {"dataset": "msvd", "captions_from": origin, "has_audio_stream": False}))
    summary = write_with_missing(entries, missing, out, missing_list, layout=origin)
    logger.info("MSVD: %d videos %s, %d captions, %d clips present, %d missing (listed in %s)",
                len(entries), summary.videos, summary.captions, summary.present, summary.missing,
                summary.missing_list)
    return summary


@script_main("data_prep.msvd")
def main(argv: list[str] | None = None) -> int:
    """``python -m data_prep.msvd``; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m data_prep.msvd", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="manifest to write (.jsonl)")
    p.add_argument("--source", default=None, help="MSVD folder (default $FUSION_DATA_DIR/msvd)")
    p.add_argument("--clips", default=None, help="clip folder (default SOURCE/clips or SOURCE/YouTubeClips)")
    p.add_argument("--captions-csv", default=None, help=f"use the original {CSV_NAME!r}")
    p.add_argument("--splits", default=None, help="folder of train/val/test_list.txt (default SOURCE/splits)")
    p.add_argument("--missing-list", default=None, help="file listing missing clips (default OUT.missing.txt)")
    p.add_argument("--keep-raw", action="store_true", help="CSV captions as written (default: S2VT-normalised)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    s = build_msvd(args.out, args.source, args.clips, args.captions_csv, args.splits, args.missing_list,
                   args.keep_raw)
    total = sum(s.videos.values())
    splits = " / ".join(f"{s.videos[k]} {k}" for k in SPLITS)
    print(f"wrote {s.manifest}: {total} videos ({splits}), {s.captions} captions; "
          f"{s.present} clips present, {s.missing} missing (listed in {s.missing_list})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
