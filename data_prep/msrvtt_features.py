"""MSR-VTT clips that have pre-extracted features -> a manifest split by id, and an LM corpus.

``python -m data_prep.msrvtt_features --source ANNOTATIONS --features DIR_OR_STORE --out MANIFEST
[--lm-corpus FILE [--lm-captions-per-clip N]] [--test-percent 20] [--val-percent 10] [--exclude MANIFEST ...]``

The clips are the ids that have features (``<id>.npy`` / ``<id>.npz`` stems of a folder, or the
records of a feature store); each gets all its MSR-VTT captions (20 per clip) and its category.
The split is a function of the id alone, so a clip lands in the same split whatever else is
there: the first 8 hex digits of ``sha1(id)`` modulo 100 give a bucket; buckets below
``test_percent`` are test, the next ``val_percent`` are val, the rest train (MSR-VTT's own split
is ignored: every clip of the released 850-clip feature set is from its train split).

The LM corpus (``--lm-corpus``) is one caption per line: every MSR-VTT train / validate caption
(the official test split is never read) except those of this manifest's test clips and of every
clip in the ``--exclude`` manifests (clips you will evaluate on later), so a language model
trained on it has never seen a test caption; ``--lm-captions-per-clip N`` keeps the first N of
each clip's captions (a smaller corpus for a CPU budget).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from data_prep.msrvtt import read_msrvtt
from fusion.errors import DataError, script_main
from fusion.io import atomic_write_text
from fusion.manifest import ManifestEntry, load_manifest, write_manifest

logger = logging.getLogger(__name__)

FEATURE_SUFFIXES = (".npy", ".npz")


def split_of_id(video_id: str, test_percent: int = 20, val_percent: int = 10) -> str:
    """``"test"``, ``"val"`` or ``"train"`` from ``sha1(id)``: stable, independent of the other ids."""
    bucket = int(hashlib.sha1(video_id.encode("utf-8")).hexdigest()[:8], 16) % 100
    if bucket < test_percent:
        return "test"
    return "val" if bucket < test_percent + val_percent else "train"


def feature_ids(features: str | Path) -> list[str]:
    """The ids that have features: a store's record ids, or the stems of a folder's .npy / .npz files.

    Raises:
        DataError: neither a store nor a folder with feature files.
    """
    path = Path(features)
    if (path / "store.json").is_file():
        from fusion.features import FeatureStore

        return FeatureStore(path).ids()
    if not path.is_dir():
        raise DataError(f"{path}: not a folder; pass --features with the <id>.npy folder or a feature store")
    ids = sorted({p.stem for p in path.iterdir() if p.suffix in FEATURE_SUFFIXES})
    if not ids:
        raise DataError(f"{path}: no .npy / .npz files; pass --features with the <id>.npy folder or a feature store")
    return ids


def build_entries(ids: Sequence[str], captions: dict[str, list[str]], meta: dict[str, dict],
                  test_percent: int, val_percent: int) -> tuple[list[ManifestEntry], list[str]]:
    """Manifest entries of the ids MSR-VTT annotates (video path ``<id>.mp4``, unused), and the unknown ids."""
    entries, unknown = [], []
    for vid in ids:
        if vid not in meta:
            unknown.append(vid)
            continue
        entries.append(ManifestEntry(vid, f"{vid}.mp4", split_of_id(vid, test_percent, val_percent),
                                     list(captions.get(vid, [])), dict(meta[vid])))
    return entries, unknown


def lm_corpus(split_of: dict[str, str], captions: dict[str, list[str]], excluded: Iterable[str],
              per_clip: int | None = None) -> list[str]:
    """MSR-VTT train / val captions of clips not in ``excluded``, in annotation order.

    Args:
        per_clip: keep the first this many captions of each clip (None = all 20).
    """
    skip = set(excluded)
    return [c for vid, split in split_of.items() if split in ("train", "val") and vid not in skip
            for c in captions.get(vid, [])[:per_clip]]


def build(source: str | Path, features: str | Path, out: str | Path, *, lm_out: str | Path | None = None,
          test_percent: int = 20, val_percent: int = 10, exclude: Sequence[str | Path] = (),
          lm_per_clip: int | None = None) -> dict:
    """Write the manifest (and the LM corpus); returns counts per split, unknown ids, corpus size.

    Raises:
        DataError: bad annotations, features, percentages or exclude manifests.
    """
    if not (0 < test_percent and 0 <= val_percent and test_percent + val_percent < 100):
        raise DataError(f"--test-percent {test_percent} / --val-percent {val_percent}: need 0 < test, 0 <= val, "
                        "test + val < 100")
    _, split_of, captions, meta = read_msrvtt(source)
    entries, unknown = build_entries(feature_ids(features), captions, meta, test_percent, val_percent)
    if not entries:
        raise DataError(f"{features}: none of its ids is an MSR-VTT video id (e.g. video0); check --features")
    write_manifest(entries, Path(out))
    report = {"manifest": str(out), "clips": dict(Counter(e.split for e in entries)),
              "captions": sum(len(e.captions) for e in entries), "unknown_ids": unknown}
    if lm_out is not None:
        held_out = {e.id for e in entries if e.split == "test"}
        for other in exclude:
            held_out |= {e.id for e in load_manifest(other)}
        corpus = lm_corpus(split_of, captions, held_out, lm_per_clip)
        atomic_write_text(Path(lm_out), "".join(c + "\n" for c in corpus))
        report.update(lm_corpus=str(lm_out), lm_sentences=len(corpus), lm_excluded_clips=len(held_out))
    return report


@script_main("data_prep.msrvtt_features")
def main(argv: list[str] | None = None) -> int:
    """``python -m data_prep.msrvtt_features``; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m data_prep.msrvtt_features", description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, help="folder with the MSR-VTT annotations (JSON or the zip files)")
    p.add_argument("--features", required=True, help="folder of <id>.npy / <id>.npz files, or a feature store")
    p.add_argument("--out", required=True, help="manifest to write (.jsonl)")
    p.add_argument("--lm-corpus", default=None, help="also write the LM corpus (one caption per line) here")
    p.add_argument("--test-percent", type=int, default=20, help="share of ids in the test split (default 20)")
    p.add_argument("--val-percent", type=int, default=10, help="share of ids in the val split (default 10)")
    p.add_argument("--lm-captions-per-clip", type=int, default=None, metavar="N",
                   help="LM corpus: the first N captions of each clip (default all 20; fewer train faster)")
    p.add_argument("--exclude", nargs="*", default=[], metavar="MANIFEST",
                   help="manifests whose clips' captions stay out of the LM corpus too")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    r = build(args.source, args.features, args.out, lm_out=args.lm_corpus, test_percent=args.test_percent,
              val_percent=args.val_percent, exclude=args.exclude, lm_per_clip=args.lm_captions_per_clip)
    splits = " / ".join(f"{r['clips'].get(s, 0)} {s}" for s in ("train", "val", "test"))
    print(f"wrote {r['manifest']}: {sum(r['clips'].values())} clips ({splits}), {r['captions']} captions"
          + (f"; {len(r['unknown_ids'])} ids not in MSR-VTT (e.g. {r['unknown_ids'][0]})" if r["unknown_ids"] else ""))
    if "lm_corpus" in r:
        print(f"wrote {r['lm_corpus']}: {r['lm_sentences']} captions (clips of {r['lm_excluded_clips']} held out)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
