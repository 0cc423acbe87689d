"""The real caption text corpus: MSVD + MSR-VTT train and val captions, minus the development clips.

``python -m data_prep.caption_corpus --out data/corpus`` reads the caption files under
``FUSION_DATA_DIR`` (or ``--data DIR``):

* MSVD: ``msvd/captions/sents_{train,val}_lc_nopunc.txt`` (the S2VT release) with
  ``youtube_video_to_id_mapping.txt``;
* MSR-VTT: ``msrvtt/annotations/train_val_annotation.zip`` (``train_val_videodatainfo.json``);

and writes, atomically:

* ``train.txt`` / ``val.txt``: ``<dataset>:<clip><TAB><caption>`` lines (lower case, punctuation
  removed: :func:`fusion.text.normalize`), the train and val splits of both datasets;
* ``manifest.json``: sources, counts per dataset and split, and the excluded clips.

Excluded are every clip that has media in the data folder (``msvd/clips/*.avi`` mapped to
``vidN`` through the mapping; ``msrvtt/clips/videoN.mp4``): they are the development clips the
zero-shot captioner is measured on. Test-split captions are never read into the corpus (the
MSVD test file is not opened; MSR-VTT's test annotations live in a separate zip that is not
opened either, and a ``test`` split inside the train/val file would be dropped and counted).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusion.errors import DataError, script_main
from fusion.io import atomic_write_text
from fusion.paths import data_dir
from fusion.text import normalize

logger = logging.getLogger(__name__)

CORPUS_FORMAT = "fusion.caption_corpus/1"
SPLITS = ("train", "val")
MSVD_CAPTIONS = Path("msvd/captions")
MSRVTT_ZIP = Path("msrvtt/annotations/train_val_annotation.zip")


@dataclass
class Corpus:
    """Captions per split as ``(key, caption)`` pairs, plus what was left out.

    Attributes:
        lines: split -> [(``dataset:clip``, normalised caption)].
        excluded: dataset -> sorted clip ids whose captions were left out (development clips).
        dropped: reason -> number of captions dropped for it.
    """

    lines: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: {s: [] for s in SPLITS})
    excluded: dict[str, list[str]] = field(default_factory=dict)
    dropped: Counter = field(default_factory=Counter)

    def add(self, dataset: str, clip: str, split: str, caption: str, dev: set[str]) -> None:
        """Keep one caption unless its clip is a development clip or its split is not train/val."""
        if clip in dev:
            self.dropped[f"{dataset} development clip"] += 1
        elif split not in SPLITS:
            self.dropped[f"{dataset} {split} split"] += 1
        elif text := normalize(caption):
            self.lines[split].append((f"{dataset}:{clip}", text))
        else:
            self.dropped[f"{dataset} empty caption"] += 1


def msvd_dev_clips(root: Path) -> dict[str, str]:
    """``vidN`` -> clip name of every MSVD clip with media in ``root/msvd/clips``."""
    mapping = root / MSVD_CAPTIONS / "youtube_video_to_id_mapping.txt"
    if not mapping.is_file():
        raise DataError(f"{mapping}: MSVD mapping not found; run `python -m data_prep.fetch` or set FUSION_DATA_DIR")
    names = {p.stem for p in (root / "msvd" / "clips").glob("*.avi")}
    out = {}
    for line in mapping.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in names:
            out[parts[1]] = parts[0]
    missing = names - set(out.values())
    if missing:
        logger.warning("MSVD clips without a vidN in the mapping (not excluded): %s", sorted(missing))
    return out


def read_msvd(root: Path, corpus: Corpus) -> None:
    """Add MSVD train + val captions (the test file is never opened)."""
    dev = msvd_dev_clips(root)
    corpus.excluded["msvd"] = sorted(f"{vid} ({name})" for vid, name in dev.items())
    for split in SPLITS:
        path = root / MSVD_CAPTIONS / f"sents_{split}_lc_nopunc.txt"
        if not path.is_file():
            raise DataError(f"{path}: MSVD captions not found; run `python -m data_prep.fetch` or set FUSION_DATA_DIR")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            vid, sep, sentence = line.partition("\t")
            if not sep:
                if line.strip():
                    raise DataError(f"{path}:{n}: expected 'vidN<TAB>sentence', got {line!r}")
                continue
            corpus.add("msvd", vid, split, sentence, set(dev))


def read_msrvtt(root: Path, corpus: Corpus) -> None:
    """Add MSR-VTT train + validate captions from the train/val zip (test annotations are never opened)."""
    from data_prep.msrvtt import AnnotationFile, read_annotations

    path = root / MSRVTT_ZIP
    if not path.is_file():
        raise DataError(f"{path}: MSR-VTT annotations not found; run `python -m data_prep.fetch` or set FUSION_DATA_DIR")
    import zipfile

    with zipfile.ZipFile(path) as zf:
        members = [m for m in zf.namelist() if m.endswith("videodatainfo.json") and "test" not in Path(m).name]
    if not members:
        raise DataError(f"{path}: holds no train_val_videodatainfo.json; fetch the MSR-VTT annotations again")
    split_of, captions, _ = read_annotations([AnnotationFile(path, members[0])])
    dev = {p.stem for p in (root / "msrvtt" / "clips").glob("*.mp4")}
    corpus.excluded["msrvtt"] = sorted(dev, key=lambda v: int(v[5:]) if v[5:].isdigit() else 0)
    for video, lines in captions.items():
        for caption in lines:
            corpus.add("msrvtt", video, split_of[video], caption, dev)


def build_corpus(root: str | Path | None = None) -> Corpus:
    """Read both datasets' train + val captions under ``root`` (default :func:`fusion.paths.data_dir`)."""
    root = Path(root) if root is not None else data_dir()
    corpus = Corpus()
    read_msvd(root, corpus)
    read_msrvtt(root, corpus)
    return corpus


def write_corpus(corpus: Corpus, out: str | Path) -> dict[str, Any]:
    """Write ``train.txt``, ``val.txt`` and ``manifest.json`` into ``out``; return the manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, dict[str, int]] = {}
    for split, lines in corpus.lines.items():
        atomic_write_text(out / f"{split}.txt", "".join(f"{key}\t{text}\n" for key, text in lines))
        for key, _ in lines:
            dataset = key.split(":", 1)[0]
            counts.setdefault(dataset, {s: 0 for s in SPLITS})[split] += 1
    manifest = {
        "format": CORPUS_FORMAT,
        "sources": {"msvd": [str(MSVD_CAPTIONS / f"sents_{s}_lc_nopunc.txt") for s in SPLITS],
                    "msrvtt": [str(MSRVTT_ZIP)]},
        "rule": "train + val captions of MSVD and MSR-VTT; clips with media in the data folder (the development "
                "clips) excluded; test-split captions never read",
        "captions": counts,
        "total": {s: len(corpus.lines[s]) for s in SPLITS},
        "clips": {s: len({k for k, _ in corpus.lines[s]}) for s in SPLITS},
        "excluded_clips": corpus.excluded,
        "dropped_captions": dict(sorted(corpus.dropped.items())),
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return manifest


@script_main("data_prep.caption_corpus")
def main(argv: list[str] | None = None) -> int:
    """``python -m data_prep.caption_corpus --out DIR [--data DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m data_prep.caption_corpus", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="data/corpus", help="output folder (default data/corpus)")
    parser.add_argument("--data", default=None, help="the real data folder (default $FUSION_DATA_DIR)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    manifest = write_corpus(build_corpus(args.data), args.out)
    print(f"wrote {args.out}: {manifest['total']['train']} train + {manifest['total']['val']} val captions; "
          f"excluded {sum(len(v) for v in manifest['excluded_clips'].values())} development clips "
          f"({', '.join(f'{k} {v}' for k, v in manifest['dropped_captions'].items())} captions dropped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
