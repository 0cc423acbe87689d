"""Benchmark: ``fusion caption`` on a 10-s clip, cold (a fresh process) and warm (the Python
API with the pipeline loaded once).

The clip is a real H.264/AAC file written with av (320x240, 25 fps, a moving square and a
tone). The model is ``--model RUN`` (default ``runs/demo`` when it exists); without one, a
checkpoint of an S2VT of the benchmark's size (configs/avsynth/base.yaml) with random
decoder weights is written to a temp folder: the encoders are the real pretrained ones, and
the time of a decoding step does not depend on the decoder's weights.

    python -m scripts.bench_caption [--model RUN] [--repeat 5] [--threads 2] [--out results]

Writes ``results/bench_caption.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fusion.io import atomic_write_json, atomic_write_text
from fusion.paths import REPO_ROOT

CLIP_SECONDS, FPS, SIZE = 10.0, 25, (320, 240)


def make_clip(path: Path) -> Path:
    """A 10-s 320x240 25-fps clip: a red square moving right over grey, a 440 Hz tone."""
    from fusion.media import write_video

    n = int(CLIP_SECONDS * FPS)
    frames = np.full((n, SIZE[1], SIZE[0], 3), 128, dtype=np.uint8)  # (T, H, W, 3)
    for t in range(n):
        x = int(t / n * (SIZE[0] - 40))
        frames[t, 100:140, x : x + 40] = (230, 25, 35)
    sr = 44100
    audio = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(CLIP_SECONDS * sr)) / sr)).astype(np.float32)
    write_video(path, frames, FPS, audio, sr)
    return path


def make_run(folder: Path) -> Path:
    """A checkpoint of a benchmark-sized S2VT (random decoder, real encoders named)."""
    from fusion.checkpoint import checkpoint_meta, save_checkpoint
    from fusion.experiment import load_experiment
    from fusion.models.s2vt import S2VT
    from fusion.text import Vocabulary

    cfg = load_experiment(REPO_ROOT / "configs" / "avsynth" / "audio_early.yaml")
    from fusion.benchmark import SHAPE_WORDS, SOUND_WORDS

    vocab = Vocabulary.build([" ".join(SHAPE_WORDS) + " " + " ".join(SOUND_WORDS) + " a the moves left right"])
    torch.manual_seed(0)
    model = S2VT(cfg.model, len(vocab), frame_dim=1280, audio_dim=256)
    dims = {"vocab_size": len(vocab), "frame_dim": 1280, "audio_dim": 256}
    save_checkpoint(folder, 1, model, checkpoint_meta(cfg, vocab, dims), None, best={"metric": "none", "value": 0})
    return folder


def cold(model: Path, clip: Path, threads: int) -> tuple[float, str]:
    """Wall time of ``python -m fusion caption CLIP --model RUN`` in a fresh process."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fusion", "caption", str(clip), "--model", str(model),
                           "--threads", str(threads)],
                          capture_output=True, text=True, cwd=REPO_ROOT, env=env, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"fusion caption failed: {proc.stderr.strip()}")
    return elapsed, proc.stdout.strip()


def warm(model: Path, clip: Path, repeat: int) -> dict:
    """Load the pipeline once, then time ``caption([clip])`` ``repeat`` times."""
    from fusion.pipeline import CaptionPipeline

    start = time.perf_counter()
    pipe = CaptionPipeline(model)
    load_s = time.perf_counter() - start
    pipe.caption([clip])  # first call: allocator and kernel warm-up
    times, decode_times = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        record = pipe.extractor.extract(clip)
        mid = time.perf_counter()
        pipe.decoder.decode([record])
        end = time.perf_counter()
        times.append(end - start)
        decode_times.append(end - mid)
    return {"load_s": round(load_s, 3), "warm_s": round(statistics.median(times), 3),
            "warm_min_s": round(min(times), 3), "decode_s": round(statistics.median(decode_times), 4),
            "extract_s": round(statistics.median(times) - statistics.median(decode_times), 3),
            "beam_size": pipe.options.beam_size, "frames_per_clip": pipe.run.extract_config.frames_per_clip}


def bench_args(doc: str, argv: list[str] | None) -> argparse.Namespace:
    """The options every caption-latency benchmark takes (``--model --repeat --threads --out``)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--model", help="run folder (default runs/demo, else a benchmark-sized random decoder)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch CPU threads to measure with")
    p.add_argument("--out", default="results")
    return p.parse_args(argv)


def rows_per_thread_count(args: argparse.Namespace, measure_row: Callable[[Path, Path, int, Path], dict]) -> list[dict]:
    """One row per ``--threads`` value: ``measure_row(model, clip, threads, tmp)`` on a generated 10-s clip
    with the ``--model`` run (default ``runs/demo``, else a benchmark-sized random run), printed as JSON."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip10s.mp4")
        model = Path(args.model) if args.model else REPO_ROOT / "runs" / "demo"
        source = str(args.model or "runs/demo")
        if args.model is None and not model.is_dir():
            model, source = make_run(Path(tmp) / "run"), "random S2VT of configs/avsynth/audio_early.yaml size"
        for threads in args.threads:
            torch.set_num_threads(threads)
            row = {"model": source, "clip_s": CLIP_SECONDS, "threads": threads,
                   **measure_row(model.resolve(), clip, threads, Path(tmp))}
            print(json.dumps(row))
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = bench_args(__doc__, argv)

    def measure_row(model: Path, clip: Path, threads: int, tmp: Path) -> dict:
        cold_s, caption = cold(model, clip, threads)
        return {"cold_s": round(cold_s, 3), "caption": caption.split(": ", 1)[-1], **warm(model, clip, args.repeat)}

    rows = rows_per_thread_count(args, measure_row)
    load = os.getloadavg()[0]
    out = Path(args.out)
    atomic_write_json(out / "bench_caption.json", {"load_avg_1min_at_end": round(load, 2), "cpu_count": os.cpu_count(),
                                                   "results": rows})
    lines = ["# fusion caption on a 10-s clip", "",
             f"Model: {rows[0]['model']}; beam {rows[0]['beam_size']}; {rows[0]['frames_per_clip']} frames per clip; "
             f"{os.cpu_count()} CPUs, 1-min load average {load:.1f} at the end.", "",
             "| threads | cold process (s) | warm API (s) | of which features (s) | of which beam search (s) "
             "| pipeline load (s) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['threads']} | {r['cold_s']:.2f} | {r['warm_s']:.2f} | {r['extract_s']:.2f} | {r['decode_s']:.3f} "
              f"| {r['load_s']:.2f} |" for r in rows]
    atomic_write_text(out / "bench_caption.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
