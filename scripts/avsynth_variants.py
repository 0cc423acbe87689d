"""Train and evaluate the three benchmark variants (video only, audio early, audio stream).

Each variant is ``configs/avsynth/<variant>.yaml`` (they differ only in ``model.audio_mode``,
so they share one training budget), trained with ``fusion.training.train`` and evaluated on
the test split with beam 5 (``fusion.pipeline.evaluate_run``: coco-caption metrics and the
benchmark's sound / visual accuracy). Writes ``results/avsynth_variants.{json,md}`` with the
table and the acceptance checks of issue 4.

    python -m data_prep.avsynth --out data/avsynth --seed 0 --size default
    python -m scripts.avsynth_variants --manifest data/avsynth/manifest.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fusion.io import atomic_write_json, atomic_write_text
from fusion.paths import REPO_ROOT

VARIANTS = ("video_only", "audio_early", "audio_stream")
COLUMNS = ("METEOR", "CIDEr", "Bleu_4", "ROUGE_L", "sound_accuracy", "visual_accuracy", "false_sound_rate")


def run_variant(name: str, manifest: Path, out_root: Path, overrides: list[str], beam: int) -> dict[str, Any]:
    """Train (or resume / reuse) one variant and evaluate it on the test split."""
    from fusion.experiment import load_experiment
    from fusion.pipeline import evaluate_run
    from fusion.stages import prepare_training
    from fusion.training import train

    cfg = load_experiment(REPO_ROOT / "configs" / "avsynth" / f"{name}.yaml", overrides)
    prepare_training(cfg, out_root / name, manifest=manifest)  # check the run folder, extract missing features
    result = train(cfg, out_root / name)
    metrics = evaluate_run(out_root / name, split="test", beam_size=beam)
    row = {k: metrics.get(k) for k in COLUMNS}
    row.update(variant=name, audio_mode=cfg.model.audio_mode, steps=result.steps, epochs=result.epochs,
               best_step=(result.best or {}).get("step"), train_s=result.train_seconds, n_videos=metrics.get("n_videos"),
               run_dir=str(out_root / name))
    print(f"{name}: " + ", ".join(f"{k}={row[k]:.3f}" for k in COLUMNS if isinstance(row[k], float)), flush=True)
    return row


def acceptance(rows: dict[str, dict[str, Any]]) -> list[tuple[str, bool]]:
    """Issue 4's checks on the benchmark, as (description, passed)."""
    video = rows.get("video_only")
    checks: list[tuple[str, bool]] = []
    for name in ("audio_early", "audio_stream"):
        audio = rows.get(name)
        if audio is None or video is None:
            continue
        gain = audio["METEOR"] - video["METEOR"]
        checks.append((f"{name} METEOR - video_only METEOR = {gain:+.3f} >= +0.05", gain >= 0.05))
        checks.append((f"{name} sound_accuracy {audio['sound_accuracy']:.3f} >= 0.80", audio["sound_accuracy"] >= 0.80))
        checks.append((f"{name} visual_accuracy {audio['visual_accuracy']:.3f} >= 0.80", audio["visual_accuracy"] >= 0.80))
    if video is not None:
        checks.append((f"video_only sound_accuracy {video['sound_accuracy']:.3f} <= 0.25", video["sound_accuracy"] <= 0.25))
        checks.append((f"video_only visual_accuracy {video['visual_accuracy']:.3f} >= 0.80", video["visual_accuracy"] >= 0.80))
    return checks


def markdown(rows: dict[str, dict[str, Any]], checks: list[tuple[str, bool]], command: str) -> str:
    head = "| variant | " + " | ".join(COLUMNS) + " | steps | train s |"
    lines = [f"Benchmark test split, beam 5 ({next(iter(rows.values()))['n_videos']} clips). Produced by:", "",
             *(f"    {c}" for c in command.split("\n")), "", head, "|" + "---|" * (len(COLUMNS) + 3)]
    for name, r in rows.items():
        cells = [f"{r[k]:.3f}" if isinstance(r[k], float) else "n/a" for k in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['steps']} | {r['train_s']:.0f} |")
    lines += ["", "Acceptance (issue 4):", ""] + [f"- [{'x' if ok else ' '}] {text}" for text, ok in checks]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.avsynth_variants", description=__doc__.splitlines()[0])
    p.add_argument("--manifest", default="data/avsynth/manifest.jsonl", help="benchmark manifest")
    p.add_argument("--out-root", default="runs/avsynth", help="one run folder per variant inside")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override for every variant (same budget), e.g. --set train.max_epochs=10")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--results", default="results/avsynth_variants", help="output path without extension")
    args = p.parse_args(argv)
    manifest, out_root = Path(args.manifest).resolve(), Path(args.out_root)
    rows = {name: run_variant(name, manifest, out_root, args.overrides, args.beam) for name in args.variants}
    checks = acceptance(rows)
    command = "python -m scripts.avsynth_variants --manifest " + args.manifest + "".join(
        f" --{dest.replace('_', '-')} {getattr(args, dest)}" for dest in ("out_root", "results")
        if getattr(args, dest) != p.get_default(dest)) + "".join(f" --set {o}" for o in args.overrides)
    info_path = manifest.parent / "benchmark.json"
    if info_path.is_file():  # how the benchmark itself was made
        info = json.loads(info_path.read_text())
        command = (f"python -m data_prep.avsynth --out {Path(args.manifest).parent} --seed {info.get('seed')} "
                   f"--size {info.get('size')}\n{command}")
    out = Path(args.results)
    atomic_write_json(out.with_suffix(".json"), {"manifest": str(manifest), "beam": args.beam, "overrides": args.overrides,
                                                 "rows": rows, "acceptance": [{"check": c, "passed": ok} for c, ok in checks]})
    text = markdown(rows, checks, command)
    atomic_write_text(out.with_suffix(".md"), text)
    print(text)
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
