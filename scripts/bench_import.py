"""Import speed and a full evaluation on imported features, as ratios to reading the files alone.

Baseline, measured in the same run: ``np.load`` of every ``.npy`` of SOURCE (the least any
import or evaluation must do). Then:

- ``import``: ``fusion import-features SOURCE`` into a fresh store (read, check, write
  each record atomically), over the same files;
- ``evaluate``: ``fusion evaluate RUN --split test`` on that store (open the store, read the
  split's records, beam search, coco-caption metrics with one METEOR JVM), against reading
  the split's files alone.

Each figure is the median of ``--repeats`` runs (the evaluation runs once: it takes minutes).
Writes ``--out`` (.json and .md)::

    python -m scripts.bench_import --source ../shared/data/msrvtt/features_vgg16_ae128 \\
        --manifest data/msrvtt_vgg16_ae128/manifest.jsonl --run runs/vgg_s2vt
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fusion.errors import script_main
from scripts.benchio import machine, write_report


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall seconds of ``repeats`` calls of ``fn`` and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def read_all(files: list[Path]) -> int:
    """Load every file (the baseline); returns the number of floats read."""
    return sum(int(np.load(f, allow_pickle=False).size) for f in files)


def bench_import(source: Path, repeats: int) -> dict[str, Any]:
    """Seconds to import SOURCE into a fresh store vs to read its files."""
    from fusion.features.importer import import_features

    files = sorted(source.glob("*.npy"))
    read_s, _ = timed(lambda: read_all(files), repeats)
    with tempfile.TemporaryDirectory() as tmp:
        def fresh_import() -> Any:
            shutil.rmtree(Path(tmp) / "store", ignore_errors=True)
            return import_features(source, Path(tmp) / "store", progress=False)

        import_s, summary = timed(fresh_import, repeats)
    return {"files": len(files), "read_s": read_s, "import_s": import_s, "ratio": import_s / read_s,
            "imported": summary.done, "failed": len(summary.failed)}


def bench_evaluate(source: Path, manifest: Path, run: Path, beam: int) -> dict[str, Any]:
    """Seconds of one ``fusion evaluate`` of the test split on a store of SOURCE vs reading the split's files."""
    from fusion.features.importer import import_features
    from fusion.manifest import load_manifest, split_entries
    from fusion.pipeline import evaluate_run

    test = split_entries(load_manifest(manifest), "test")
    files = [source / f"{e.id}.npy" for e in test]
    read_s, _ = timed(lambda: read_all(files), 3)
    with tempfile.TemporaryDirectory() as tmp:
        import_features(source, Path(tmp) / "store", progress=False)
        eval_s, metrics = timed(lambda: evaluate_run(run, manifest=manifest, split="test", features=Path(tmp) / "store",
                                                     out_dir=Path(tmp) / "eval", progress=False, beam_size=beam), 1)
    return {"clips": len(test), "read_s": read_s, "evaluate_s": eval_s, "ratio": eval_s / read_s,
            "CIDEr": metrics["CIDEr"], "METEOR": metrics["METEOR"]}


def markdown(result: dict[str, Any]) -> str:
    imp, ev = result["import"], result["evaluate"]
    return "\n".join([
        "Import of pre-extracted features and a full evaluation on them, against reading the files alone "
        "(np.load of each .npy), measured in the same run. Produced by:", "", f"    {result['command']}", "",
        "| work | files | reading the files | the work | ratio |", "|---|---|---|---|---|",
        f"| fusion import-features (fresh store) | {imp['files']} | {imp['read_s']:.3f} s | {imp['import_s']:.2f} s "
        f"| {imp['ratio']:.1f}x |",
        f"| fusion evaluate --split test (beam {result['beam']}) | {ev['clips']} | {ev['read_s']:.3f} s | "
        f"{ev['evaluate_s']:.1f} s | {ev['ratio']:.0f}x |", "",
        f"Import: median of {result['repeats']} runs ({imp['imported']} imported, {imp['failed']} failed). "
        f"Evaluation: one run (CIDEr {ev['CIDEr']:.3f}, METEOR {ev['METEOR']:.3f}); it is dominated by the beam "
        "search and the coco-caption scorers, not by reading features. "
        f"Machine: {result['machine']['cpu_count']} CPUs, load average {result['machine']['load_avg_1min_at_end']} "
        "at the end (a shared machine: absolute times vary, the ratios less).", ""])


@script_main("bench_import")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.bench_import", description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, help="folder of <id>.npy feature files")
    p.add_argument("--manifest", required=True, help="manifest with a test split over those ids")
    p.add_argument("--run", required=True, help="a run trained on these features")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="results/bench_import.json")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    result = {"command": "python -m scripts.bench_import " + " ".join(sys.argv[1:] if argv is None else argv),
              "beam": args.beam, "repeats": args.repeats,
              "import": bench_import(Path(args.source), args.repeats),
              "evaluate": bench_evaluate(Path(args.source), Path(args.manifest), Path(args.run), args.beam)}
    result["machine"] = machine()
    write_report(Path(args.out), result, markdown(result), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
