"""Benchmark `fusion extract`: end-to-end throughput against decode alone + frame CNN alone.

Usage::

    .venv/bin/python -m scripts.bench_extract [--json] [--out results/bench_extract.json]

Two corpora: generated 10-s 320x240 30-fps H.264 clips with an AAC track (textured,
moving pictures so the decoder has real work), and the real MSVD clips in
``$FUSION_DATA_DIR/msvd/clips`` (no audio streams). Pretrained weights. For each corpus,
in one process: decode alone (every clip, sequentially), the frame CNN alone on the same
decoded frames (preprocess + forward as extraction runs it, ``describe_frames`` with one
batch of 32, and the forward alone: channels-last vs NCHW input, small batches vs one of 32),
SoundNet alone on the same audio, then the end-to-end store extraction for each
``--decode-workers`` value (K: K background decode threads; pK: K decode worker processes,
``fusion extract --workers K``, their start-up included). Reports clips/s, frames/s, real-time factor, the per-stage
breakdown, peak RSS, and ratio = end-to-end / (CNN alone + decode alone).
Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusion.features import ExtractConfig, FeatureExtractor, collect_inputs, extract_to_store
from scripts.benchio import write_report
from fusion.paths import REPO_ROOT, data_dir

logger = logging.getLogger("bench_extract")


def make_clips(folder: Path, count: int, seconds: float, size: tuple[int, int] = (320, 240), fps: int = 30) -> list[Path]:
    """``count`` H.264/AAC mp4 clips: a scrolling random texture plus a moving square, tone + noise audio."""
    from fusion.media import write_video

    width, height = size
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        texture = rng.integers(0, 256, (height, width * 2, 3), dtype=np.uint8)
        texture = ((texture.astype(np.uint16) + np.roll(texture, 1, axis=1)) // 2).astype(np.uint8)  # (H, 2W, 3)
        n = int(seconds * fps)
        frames = np.empty((n, height, width, 3), np.uint8)  # (T, H, W, 3)
        for t in range(n):
            shift = (t * 4) % width
            frames[t] = texture[:, shift : shift + width]
            y, x = (t * 3) % (height - 40), (t * 5 + i * 30) % (width - 40)
            frames[t, y : y + 40, x : x + 40] = (255, 64 * (i % 4), 0)
        sr = 22050
        k = np.arange(int(seconds * sr))
        audio = (0.3 * np.sin(2 * np.pi * (220 + 110 * i) * k / sr) + 0.05 * rng.standard_normal(k.size)).astype(np.float32)
        path = folder / f"gen{i:02d}.mp4"
        write_video(path, frames, fps, audio=audio, sample_rate_hz=sr)
        paths.append(path)
    return paths


class Clock:
    """Sums wall and process-CPU seconds per named stage (CPU time is steadier on a busy machine)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def run(self, key: str, fn: Any, *args: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn(*args)
        self.wall[key] = self.wall.get(key, 0.0) + time.perf_counter() - wall
        self.cpu[key] = self.cpu.get(key, 0.0) + time.process_time() - cpu
        return out


def measure_alone(paths: list[Path], extractor: FeatureExtractor) -> tuple[Clock, list[Any]]:
    """Decode alone, then the frame CNN variants and SoundNet alone on the decoded clips."""
    from fusion.encoders.frames import describe_frames
    from fusion.encoders.soundnet import describe_audio
    from fusion.media import decode

    cfg, runner = extractor.config, extractor.frame_runner
    clock = Clock()
    medias = [clock.run("decode", decode, str(path), cfg.frames_per_clip) for path in paths]
    model, bundle = extractor.frame_model, extractor.frame_bundle
    with torch.inference_mode():
        for media in medias:
            if media.frames is not None:
                clock.run("frame_cnn", lambda f: runner.run(runner.prepare(f), cfg.batch_size), media.frames)
                clock.run("describe_frames_batch32", describe_frames, model, bundle, media.frames, 32)
                x = runner.prepare(media.frames)  # (T, 3, 224, 224) channels-last
                clock.run("forward_channels_last", runner.run, x, cfg.batch_size)
                clock.run("forward_nchw", runner.run, x.contiguous(), cfg.batch_size)  # same weights, NCHW input
                clock.run("forward_batch32", runner.run, x, 32)
            if media.audio is not None:
                clock.run("soundnet", describe_audio, extractor.audio_model, media.audio, cfg.audio_layer)
    return clock, medias


def measure_end_to_end(paths: list[Path], extractor: FeatureExtractor, workers: str, store: Path) -> dict[str, Any]:
    """One ``extract_to_store`` run into a fresh store: wall, CPU, peak RSS, stage breakdown.

    ``workers``: "K" = K decode threads, "pK" = K decode worker processes (CPU seconds and peak
    RSS are then the main process's only, and decode does not appear in its breakdown).
    """
    cfg = extractor.config
    if workers.startswith("p"):
        runtime = {"decode_workers": 0, "decode_processes": int(workers[1:])}
    else:
        runtime = {"decode_workers": int(workers), "decode_processes": 0}
    extractor.config = ExtractConfig(**{**cfg.__dict__, **runtime})
    extractor.timings.clear()
    reset_peak_rss()
    cpu0 = time.process_time()
    summary = extract_to_store([(p.stem, str(p)) for p in paths], store, extractor.config, progress=False,
                               extractor=extractor)
    cpu = time.process_time() - cpu0
    extractor.config = cfg
    shutil.rmtree(store)
    assert summary.done == len(paths) and not summary.failed, summary.failed
    return {"seconds": summary.elapsed_s, "cpu_seconds": cpu, "peak_rss_mb": _rss_mb("VmHWM:"),
            "breakdown_s": {k: round(v, 3) for k, v in sorted(extractor.timings.items())}}


def measure_cli(paths: list[Path], work: Path, batch_size: int) -> dict[str, Any]:
    """``fusion extract`` as a user runs it, in a fresh process: wall time including start-up
    and model loading, and that process's peak RSS (the honest memory figure of extraction)."""
    import resource
    import subprocess

    store = work / "cli-store"
    cmd = [sys.executable, "-m", "fusion", "extract", *map(str, paths), "--out", str(store), "--json",
           "--set", f"batch_size={batch_size}"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"fusion extract failed: {proc.stderr.strip()}")
    shutil.rmtree(store)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # max over children so far
    return {"seconds": round(seconds, 3), "clips_per_s": round(len(paths) / seconds, 3),
            "peak_rss_mb": round(peak_kb / 1024, 1), "summary": json.loads(proc.stdout)}


def bench_corpus(name: str, paths: list[Path], extractor: FeatureExtractor, workers_list: list[str],
                 work: Path, repeat: int) -> dict[str, Any]:
    """All measurements of one corpus, in this process: ``repeat`` interleaved rounds of
    (alone stages, end-to-end per decode_workers); each figure is the minimum over rounds,
    the usual defence against other processes on a shared machine."""
    extractor.extract(paths[0])  # warm-up: allocator, oneDNN kernels, file cache
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    runs: dict[str, dict[str, Any]] = {}
    for _ in range(repeat):
        clock, medias = measure_alone(paths, extractor)
        for key in clock.wall:
            wall[key] = min(wall.get(key, float("inf")), clock.wall[key])
            cpu[key] = min(cpu.get(key, float("inf")), clock.cpu[key])
        frames_total = sum(0 if m.frames is None else m.frames.shape[0] for m in medias)
        media_s = sum(m.duration_s for m in medias)
        with_audio = sum(m.audio is not None for m in medias)
        del medias
        for workers in workers_list:
            run = measure_end_to_end(paths, extractor, workers, work / f"{name}-w{workers}")
            if workers not in runs or run["seconds"] < runs[workers]["seconds"]:
                runs[workers] = run
    alone_wall = wall["decode"] + wall["frame_cnn"]
    cli = measure_cli(paths, work, extractor.config.batch_size)
    result: dict[str, Any] = {
        "clips": len(paths), "frames": frames_total, "media_seconds": round(media_s, 2), "with_audio": with_audio,
        "alone_wall_s": {k: round(v, 3) for k, v in wall.items()},
        "alone_cpu_s": {k: round(v, 3) for k, v in cpu.items()},
        "end_to_end": {},
        "cli_fresh_process": {k: v for k, v in cli.items() if k != "summary"},
    }
    for workers, run in runs.items():
        e2e = run["seconds"]
        result["end_to_end"][workers] = {
            "seconds": round(e2e, 3),
            "cpu_seconds": round(run["cpu_seconds"], 3),
            "peak_rss_mb": run["peak_rss_mb"],
            "clips_per_s": round(len(paths) / e2e, 3),
            "frames_per_s": round(frames_total / e2e, 1),
            "real_time_factor": round(media_s / e2e, 2),
            "breakdown_s": run["breakdown_s"],
            "ratio_vs_cnn_plus_decode": round(e2e / alone_wall, 3),
            "cpu_ratio_vs_cnn_plus_decode": round(run["cpu_seconds"] / (cpu["decode"] + cpu["frame_cnn"]), 3),
            "ratio_vs_cnn_plus_decode_plus_soundnet": round(e2e / (alone_wall + wall.get("soundnet", 0.0)), 3),
        }
    return result


def reset_peak_rss() -> None:
    """Reset this process's peak RSS (VmHWM) so a phase's own peak can be read (Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        logger.warning("cannot reset peak RSS; per-phase peaks include earlier phases")


def _rss_mb(field: str = "VmRSS:") -> float:
    """Resident set size (``VmRSS:``) or its peak (``VmHWM:``) of this process, MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_avg_before": [round(x, 2) for x in os.getloadavg()],
    }


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# fusion extract benchmark",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} with {m['torch_threads']} threads; "
        f"load average before {m['load_avg_before']}, after {m['load_avg_after']}. "
        f"Each figure is the minimum over {report['repeat']} interleaved rounds. "
        f"Config: {report['config']['frames_per_clip']} frames/clip at 224 px, {report['config']['frame_encoder']}, "
        f"SoundNet {report['config']['audio_layer']}. RSS after loading the models "
        f"{m['rss_after_model_load_mb']} MB; peak RSS of each end-to-end run in the table.",
        "",
        "| corpus | decode workers (K threads / pK processes) | clips | clips/s | frames/s | x real time | end-to-end s (cpu s) "
        "| decode alone s (cpu) | frame CNN alone s (cpu) | SoundNet alone s | ratio e2e/(CNN+decode) wall (cpu) "
        "| peak RSS MB | breakdown s in the e2e run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["corpora"].items():
        wall, cpu = r["alone_wall_s"], r["alone_cpu_s"]
        for workers, e in r["end_to_end"].items():
            parts = ", ".join(f"{k} {v}" for k, v in e["breakdown_s"].items())
            lines.append(
                f"| {name} | {workers} | {r['clips']} | {e['clips_per_s']} | {e['frames_per_s']} | "
                f"{e['real_time_factor']} | {e['seconds']} ({e['cpu_seconds']}) | {wall['decode']} ({cpu['decode']}) | "
                f"{wall['frame_cnn']} ({cpu['frame_cnn']}) | {wall.get('soundnet', 0.0)} | "
                f"{e['ratio_vs_cnn_plus_decode']} ({e['cpu_ratio_vs_cnn_plus_decode']}) | {e['peak_rss_mb']} | {parts} |"
            )
    lines += ["", "`fusion extract` in a fresh process (start-up and model loading included), wall s / clips/s / "
              "peak RSS MB:", ""]
    for name, r in report["corpora"].items():
        c = r["cli_fresh_process"]
        lines.append(f"- {name}: {c['seconds']} s / {c['clips_per_s']} clips/s / {c['peak_rss_mb']} MB")
    lines += ["", f"Frame CNN variants on the same frames, wall s (cpu s): preprocess + forward as extraction runs it "
              f"(batch {report['batch_size']}); `describe_frames` with one batch of 32; forward alone at batch "
              f"{report['batch_size']} channels-last / NCHW input, and at batch 32.", ""]
    for name, r in report["corpora"].items():
        wall, cpu = r["alone_wall_s"], r["alone_cpu_s"]
        keys = ("frame_cnn", "describe_frames_batch32", "forward_channels_last", "forward_nchw", "forward_batch32")
        lines.append(f"- {name}: " + "; ".join(f"{k} {wall[k]} ({cpu[k]})" for k in keys))
    lines += ["", "Goal: ratio <= 1.2 and >= 1.5 clips/s (32 frames at 224 px, 2 cores)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--out", default=str(REPO_ROOT / "results" / "bench_extract.json"),
                        help="JSON report path (the .md goes beside it)")
    parser.add_argument("--clips", type=int, default=8, help="generated clips (default 8)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of a generated clip")
    parser.add_argument("--frames", type=int, default=32, help="frames per clip")
    parser.add_argument("--decode-workers", default="0,1,p1,p2",
                        help="comma list: K = K decode threads, pK = K decode worker processes")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each figure is the minimum over rounds")
    parser.add_argument("--batch-size", type=int, default=ExtractConfig.batch_size, help="frames per CNN forward")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-real", action="store_true", help="skip the MSVD clips")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info()
    config = ExtractConfig(frames_per_clip=args.frames, batch_size=args.batch_size)
    extractor = FeatureExtractor(config)
    info["rss_after_model_load_mb"] = _rss_mb()
    workers_list = [w.strip() for w in args.decode_workers.split(",")]
    report: dict[str, Any] = {
        "command": " ".join(["python -m scripts.bench_extract", *(argv if argv is not None else sys.argv[1:])]),
        "machine": info, "config": config.feature_dict(), "batch_size": config.batch_size,
        "repeat": args.repeat, "corpora": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench_extract_") as tmp:
        work = Path(tmp)
        (work / "gen").mkdir()
        logger.info("generating %d clips of %.0f s", args.clips, args.seconds)
        generated = make_clips(work / "gen", args.clips, args.seconds)
        report["corpora"]["generated_320x240_10s_audio"] = bench_corpus("gen", generated, extractor, workers_list, work,
                                                                   args.repeat)
        msvd = data_dir() / "msvd" / "clips"
        if not args.no_real and msvd.is_dir():
            real = [Path(p) for _, p in collect_inputs([msvd])]
            report["corpora"]["msvd_real"] = bench_corpus("msvd", real, extractor, workers_list, work, args.repeat)
        elif not args.no_real:
            logger.warning("no MSVD clips at %s; set FUSION_DATA_DIR", msvd)
    info["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    write_report(Path(args.out), report, to_markdown(report), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
