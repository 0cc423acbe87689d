"""The caption guards on a trained run: its test metrics with the guards off and on (the default).

Decodes the split twice with the run's own settings, once with ``no_sound_without_audio``,
``no_repeat_bigram`` and ``no_dangling_end`` switched off (as decoding was before they existed)
and once with the defaults, and writes both metric sets, how many captions changed, and how
many captions of each decoding break a guard's rule, to ``results/caption_guards.{json,md}``.

    python -m scripts.caption_guards --run runs/demo [--split test] [--out results/caption_guards.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from fusion.decoding.guards import DANGLING_END_WORDS, FUNCTION_WORDS, SOUND_CLAIM_WORDS
from scripts.benchio import machine, write_report

SHOWN = ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "sound_accuracy", "visual_accuracy", "false_sound_rate")
OFF = {"no_sound_without_audio": False, "no_repeat_bigram": False, "no_dangling_end": False}


def broken_rules(predictions: dict[str, str], audio_absent: set[str]) -> dict[str, int]:
    """How many captions break each guard's rule (a sound word without audio, a repeated content pair, a dangling end)."""
    counts = {"sound_word_without_audio": 0, "repeated_content_pair": 0, "dangling_end": 0}
    for vid, caption in predictions.items():
        words = caption.split()
        pairs = [p for p in zip(words, words[1:]) if not (p[0] in FUNCTION_WORDS and p[1] in FUNCTION_WORDS)]
        counts["sound_word_without_audio"] += vid in audio_absent and bool(set(words) & SOUND_CLAIM_WORDS)
        counts["repeated_content_pair"] += len(pairs) != len(set(pairs))
        counts["dangling_end"] += bool(words) and words[-1] in DANGLING_END_WORDS
    return counts


def _evaluate(run: str, split: str, overrides: dict[str, Any], out: Path) -> tuple[dict[str, Any], set[str]]:
    """The split's metrics under ``overrides``, and the ids of its videos without an audio stream."""
    from fusion.pipeline import evaluate_split, prepare_split

    prepared = prepare_split(run, split, overrides=overrides, require_references=True, progress=False)
    metrics = evaluate_split(prepared, out_dir=out, progress=False)
    metrics["predictions"] = json.loads((out / "predictions.json").read_text())
    return metrics, {e.id for e, r in zip(prepared.entries, prepared.records) if r.audio is None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a trained run folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", default="results/caption_guards.json")
    parser.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    args = parser.parse_args(argv)
    start, result = time.perf_counter(), {"run": args.run, "split": args.split}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in (("guards_off", OFF), ("guards_on", {})):
            metrics, absent = _evaluate(args.run, args.split, overrides, Path(tmp) / name)
            result[name] = {"metrics": {m: metrics.get(m) for m in SHOWN}, "predictions": metrics["predictions"],
                            "n_videos": metrics["n_videos"], "n_audio_absent": metrics["n_audio_absent"]}
    off, on = result["guards_off"]["predictions"], result["guards_on"]["predictions"]
    for name in ("guards_off", "guards_on"):
        result[name]["broken_rules"] = broken_rules(result[name]["predictions"], absent)
    result["changed_captions"] = sum(off[v] != on[v] for v in off)
    result["seconds"], result["machine"] = round(time.perf_counter() - start, 1), machine()
    lines = [f"# Caption guards on `{args.run}` ({args.split}: {result['guards_on']['n_videos']} videos, "
             f"{result['guards_on']['n_audio_absent']} without audio)", "",
             "| decoding | " + " | ".join(SHOWN) + " | sound word without audio | repeated content pair | dangling end |",
             "|---" * (len(SHOWN) + 4) + "|"]
    for name in ("guards_off", "guards_on"):
        row, broken = result[name]["metrics"], result[name]["broken_rules"]
        cells = [f"{row[m]:.4f}" if isinstance(row[m], float) else "-" for m in SHOWN]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {broken['sound_word_without_audio']} | "
                     f"{broken['repeated_content_pair']} | {broken['dangling_end']} |")
    lines += ["", f"{result['changed_captions']} captions changed. `python -m scripts.caption_guards --run {args.run} "
              f"--split {args.split}`; {result['seconds']} s, load {result['machine']['load_avg_1min_at_end']}."]
    write_report(Path(args.out), result, "\n".join(lines) + "\n", args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
