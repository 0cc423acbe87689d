"""Captions of real clips by a run trained on other data, before and after the safeguards.

``python -m scripts.ood_real_clips RUN --out results/ood_demo [--split test]`` captions every
real clip under ``FUSION_DATA_DIR`` (``msvd/clips``, ``msrvtt/clips``) with the run twice:

* **before**: the input cap off and the decoding repetition constraints off (how runs decoded
  before them);
* **after**: the defaults (the input cap, no word twice in a row, no repeated 4-gram).

It prints and writes (``summary.json``, ``captions.md``) the longest run of one word per
caption, how many real clips the training profile flags, how many of the run's ``--split``
clips it flags (their features must be in the run's store: ``fusion evaluate`` extracts
them), and the verifier's verdicts on the audible nouns of the real clips' captions.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def longest_run(words: str) -> int:
    """The most times one word follows itself in a row in a caption."""
    return max((len(list(group)) for _, group in itertools.groupby(words.split())), default=0)


def _uncap(model: Any) -> None:
    for norm in (getattr(model, "frame_norm", None), getattr(model, "audio_norm", None)):
        if norm is not None and hasattr(norm, "max_rms"):
            norm.max_rms.fill_(float("inf"))


def main(argv: list[str] | None = None) -> int:
    """Caption the real clips before / after; write the summary."""
    import torch

    from fusion.checkpoint import load_run
    from fusion.decoding.decoder import CaptionDecoder
    from fusion.features import FeatureStore
    from fusion.io import atomic_write_json, atomic_write_text
    from fusion.manifest import load_manifest, split_entries
    from fusion.ood import annotate
    from fusion.paths import data_dir
    from fusion.pipeline import CaptionPipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run folder")
    parser.add_argument("--out", required=True, help="results folder")
    parser.add_argument("--split", default="test", help="the run's split whose clips should pass (default test)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    clips = sorted((data_dir() / "msvd" / "clips").glob("*.avi")) + sorted((data_dir() / "msrvtt" / "clips").glob("*.mp4"))
    if not clips:
        raise SystemExit(f"no real clips under {data_dir()}; set FUSION_DATA_DIR")

    pipeline = CaptionPipeline(args.run)  # computes the run card and profile of an older run
    knowledge = pipeline.knowledge
    results = pipeline.caption(clips)
    records = [r.record for r in results]
    after = [r.caption for r in results]
    verdicts = []
    for result in results:
        report = pipeline.explain(result, max_runners_up=0)
        verdicts.append([(n["word"], n["verdict"]) for n in report["nouns"]])
    for record in records:  # before: the verifier did not know the clip was unfamiliar
        if record is not None:
            record.meta.pop("ood", None)
    before_run = load_run(args.run)
    _uncap(before_run.model)
    before_config = dataclasses.replace(pipeline.options, no_repeat_ngram_size=0, no_immediate_repeat=False)
    before = [h[0].words for h in CaptionDecoder(before_run, before_config).decode(records)]

    run = pipeline.run
    manifest = run.config.data.manifest
    flagged_split, n_split = None, 0
    if manifest and run.config.data.features and Path(run.config.data.features).is_dir():
        store = FeatureStore(run.config.data.features)
        entries = [e for e in split_entries(load_manifest(manifest), args.split) if e.id in store]
        n_split = len(entries)
        reports = [annotate(knowledge.profile, store[e.id]) for e in entries]
        flagged_split = sum(bool(r and r.flagged) for r in reports) if knowledge.profile else None

    rows = [{"clip": c.name, "audio": r.audio_present, "before": b, "after": a, "longest_run_before": longest_run(b),
             "longest_run_after": longest_run(a), "flagged": bool(r.ood and r.ood["flagged"]),
             "distance": r.ood["distance"] if r.ood else None, "nouns": v}
            for c, r, b, a, v in zip(clips, results, before, after, verdicts)]
    summary = {
        "run": Path(args.run).name, "trained_on": {k: v for k, v in (knowledge.card or {}).items() if k != "manifest"},
        "profile_note": knowledge.note, "real_clips": len(rows),
        "real_flagged": sum(r["flagged"] for r in rows),
        "longest_run_before": max(r["longest_run_before"] for r in rows),
        "longest_run_after": max(r["longest_run_after"] for r in rows),
        "captions_with_a_word_3x_in_a_row_before": sum(r["longest_run_before"] > 2 for r in rows),
        "captions_with_a_word_3x_in_a_row_after": sum(r["longest_run_after"] > 2 for r in rows),
        "supported_by_the_sound_after": sum(v == "supported by the sound" for r in rows for _, v in r["nouns"]),
        f"{args.split}_clips": n_split, f"{args.split}_flagged": flagged_split, "clips": rows,
    }
    out = Path(args.out)
    atomic_write_json(out / "summary.json", summary)
    lines = ["| clip | audio | flagged | before | after |", "|---|---|---|---|---|"]
    lines += [f"| {r['clip']} | {'yes' if r['audio'] else 'no'} | {'yes' if r['flagged'] else 'no'} | {r['before']} | "
              f"{r['after']} |" for r in rows]
    atomic_write_text(out / "captions.md", "\n".join(lines) + "\n")
    for key in ("real_clips", "real_flagged", "longest_run_before", "longest_run_after",
                "captions_with_a_word_3x_in_a_row_before", "captions_with_a_word_3x_in_a_row_after",
                "supported_by_the_sound_after", f"{args.split}_clips", f"{args.split}_flagged"):
        print(f"{key:42s} {summary[key]}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
