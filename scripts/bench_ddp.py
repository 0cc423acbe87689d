"""Benchmark distributed training: 1 process against 2 (torchrun, Gloo on the CPU), in one run.

Usage::

    .venv/bin/python -m scripts.bench_ddp [--json] [--steps 40] [--batch-size 32] [--two-threads] [--out results/bench_ddp.json]

A synthetic caption set (frame and audio features, captions of 6-10 words; the captioner at
the demo's size, hidden 256, dropout off) is trained for ``--steps`` steps with the same
global batch three ways, each a fresh ``fusion train`` subprocess: one process with one
torch thread (the baseline), ``torchrun --nproc_per_node 2`` with one thread per process, and
with ``--two-threads`` one process with two threads (the whole machine to one process; on a
busy machine OpenMP's spinning threads make this one very slow). Reports
training samples/s (median over the steps after the first 5), the scaling efficiency
samples/s(2 processes) / (2 x samples/s(1 process, 1 thread)), and the largest per-step
difference between the 1- and 2-process losses. Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from fusion.config import to_dict
from fusion.experiment import ExperimentConfig
from fusion.features import ExtractConfig, FeatureRecord, FeatureStore
from scripts.benchio import write_report
from fusion.manifest import ManifestEntry, write_manifest
from fusion.paths import REPO_ROOT
from fusion.training.metrics_log import MetricsLog

WORDS = "a man woman dog cat plays runs talks on the in with guitar ball street kitchen car water rain".split()
WARMUP_STEPS = 5


def make_data(root: Path, videos: int, frames: int, frame_dim: int, audio_steps: int, audio_dim: int) -> Path:
    """A manifest + feature store of random features and random 6-10-word captions (5 per video)."""
    rng = np.random.default_rng(0)
    store = FeatureStore(root / "store", ExtractConfig(frames_per_clip=frames, random_weights=True))
    entries = []
    for i in range(videos):
        vid = f"v{i:04d}"
        store.write(FeatureRecord(id=vid, frames=rng.normal(size=(frames, frame_dim)).astype(np.float32),
                                  audio=rng.normal(size=(audio_steps, audio_dim)).astype(np.float32)))
        captions = [" ".join(rng.choice(WORDS, size=int(rng.integers(6, 11)))) for _ in range(5)]
        entries.append(ManifestEntry(vid, f"{vid}.mp4", "train" if i < videos - 16 else "val", captions, {}))
    write_manifest(entries, root / "manifest.jsonl")
    return root / "manifest.jsonl"


def write_config(root: Path, frames: int, steps: int, batch_size: int, threads: int) -> Path:
    cfg = ExperimentConfig()
    cfg.data.manifest, cfg.data.features = str(root / "manifest.jsonl"), str(root / "store")
    cfg.extract = ExtractConfig(frames_per_clip=frames, random_weights=True)
    cfg.model.hidden_size, cfg.model.audio_mode = 256, "stream"
    cfg.model.dropout, cfg.model.modality_dropout = 0.0, 0.0
    tc = cfg.train
    tc.batch_size, tc.max_steps, tc.val_metric, tc.device = batch_size, steps, "loss", "cpu"
    tc.num_threads, tc.tensorboard, tc.checkpoint_every_steps, tc.val_every_steps = threads, False, 10_000, 10_000
    path = root / f"exp_t{threads}.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    return path


def train_run(root: Path, name: str, config: Path, processes: int) -> dict[str, Any]:
    """Train in a subprocess; returns wall time, per-step losses and samples/s."""
    out = root / name
    fusion = ["-m", "fusion", "train", str(config), "--out", str(out), "--no-progress", "--json"]
    if processes > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *fusion]
    else:
        cmd = [sys.executable, *fusion]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=REPO_ROOT, capture_output=True, timeout=3600)
    wall = time.perf_counter() - start
    records = [r for r in MetricsLog(out / "metrics.jsonl").read() if r["type"] == "train"]
    speeds = [float(r["samples_per_s"]) for r in records[WARMUP_STEPS:]]
    return {"processes": processes, "wall_s": round(wall, 2), "samples_per_s": round(statistics.median(speeds), 1),
            "losses": [float(r["loss"]) for r in records]}


def markdown(result: dict[str, Any]) -> str:
    s = result["setup"]
    lines = [
        "# Distributed training benchmark (torchrun, Gloo, CPU)",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Machine: {s['machine']}, {s['cpus']} cores, torch {s['torch']}; load average before {s['load_before']}, "
        f"after {s['load_after']}. Synthetic data: {s['train_pairs']} training pairs, T={s['frames']} frames x "
        f"{s['frame_dim']}, A={s['audio_steps']} audio steps x {s['audio_dim']}; S2VT hidden 256, audio_mode stream, "
        f"dropout off; global batch {s['batch_size']}, {s['steps']} steps; samples/s is the median over steps "
        f"{WARMUP_STEPS + 1}..{s['steps']}.",
        "",
        "| run | processes | torch threads / process | samples/s | vs 1 process, 1 thread | wall s (start-up included) |",
        "|---|---|---|---|---|---|",
    ]
    base = result["runs"]["1proc_1thread"]["samples_per_s"]
    for key, label in (("1proc_1thread", "fusion train"), ("2proc_1thread", "torchrun --nproc_per_node 2"),
                       ("1proc_2threads", "fusion train (2 threads)")):
        if key not in result["runs"]:
            continue
        r = result["runs"][key]
        lines.append(f"| {label} | {r['processes']} | {r['threads']} | {r['samples_per_s']} | "
                     f"{r['samples_per_s'] / base:.2f}x | {r['wall_s']} |")
    lines += [
        "",
        f"Scaling efficiency (2 processes / (2 x 1 process), one thread each): **{result['scaling_efficiency']:.2f}**.",
        f"Largest per-step loss difference, 1 vs 2 processes over {s['steps']} steps: "
        f"**{result['max_loss_diff']:.2e}** (same global batch; DDP averages gradients, the loss is normalised by "
        "the global token count).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--videos", type=int, default=144)
    parser.add_argument("--out", default=str(REPO_ROOT / "results" / "bench_ddp.json"))
    parser.add_argument("--two-threads", action="store_true", help="also one process with two torch threads")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    frames, frame_dim, audio_steps, audio_dim = 16, 512, 19, 256
    load_before = [round(x, 2) for x in os.getloadavg()]
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_ddp_") as tmp:
        root = Path(tmp)
        make_data(root, args.videos, frames, frame_dim, audio_steps, audio_dim)
        one = write_config(root, frames, args.steps, args.batch_size, threads=1)
        two = write_config(root, frames, args.steps, args.batch_size, threads=2)
        plan = [("1proc_1thread", "one", one, 1, 1), ("2proc_1thread", "two", one, 2, 1)]
        if args.two_threads:
            plan.append(("1proc_2threads", "one_t2", two, 1, 2))
        for key, name, cfg, procs, threads in plan:
            runs[key] = {**train_run(root, name, cfg, procs), "threads": threads}
    losses_1, losses_2 = runs["1proc_1thread"]["losses"], runs["2proc_1thread"]["losses"]
    result = {
        "command": " ".join(["python -m scripts.bench_ddp", *(argv if argv is not None else sys.argv[1:])]),
        "setup": {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                  "torch": torch.__version__, "load_before": load_before,
                  "load_after": [round(x, 2) for x in os.getloadavg()], "train_pairs": (args.videos - 16) * 5,
                  "frames": frames, "frame_dim": frame_dim, "audio_steps": audio_steps, "audio_dim": audio_dim,
                  "batch_size": args.batch_size, "steps": args.steps},
        "runs": {k: {key: v for key, v in r.items() if key != "losses"} for k, r in runs.items()},
        "scaling_efficiency": runs["2proc_1thread"]["samples_per_s"] / (2 * runs["1proc_1thread"]["samples_per_s"]),
        "max_loss_diff": max(abs(a - b) for a, b in zip(losses_1, losses_2)),
        "steps_compared": min(len(losses_1), len(losses_2)),
    }
    write_report(Path(args.out), result, markdown(result), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
