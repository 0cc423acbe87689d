"""Benchmark: warm ``fusion caption`` of a 10-s clip with the zero-shot model, on 2 CPU threads.

The model is ``--model`` (default ``runs/zeroshot``: build it with ``fusion zeroshot build``).
The clip is a 10-s H.264/AAC file written with av (``scripts.bench_caption.make_clip``). Warm:
the pipeline is loaded once, then ``extract`` + ``decode`` are timed ``--repeat`` times. The
baseline measured in the same run is the blind LM (the same model with the visual and audio
evidence off): the ratio is what the concept scorers cost.

    python -m scripts.bench_zeroshot_caption [--model runs/zeroshot] [--repeat 5] [--threads 1 2] [--out results]

Also prints and writes the per-stage breakdown of the warm extraction (file decoding, frame
preprocessing, frame CNN, each audio encoder, the rest) from the extractor's stage timings.

Writes ``results/bench_zeroshot_caption.json`` and ``.md``.
"""

from __future__ import annotations

import os
import sys
import statistics
import time
from pathlib import Path

from fusion.io import atomic_write_json, atomic_write_text
from fusion.paths import REPO_ROOT
from scripts.bench_caption import bench_args, make_clip


def stage_seconds(before: dict[str, float], after: dict[str, float], extract_s: float) -> dict[str, float]:
    """Seconds of each extractor stage in one call (the difference of its summed timings), and
    ``other`` (resampling, record assembly: the extract time no stage accounts for)."""
    stages = {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}
    stages["other"] = max(extract_s - sum(stages.values()), 0.0)
    return stages


def warm(model: Path, clip: Path, repeat: int) -> dict:
    """Load once; median seconds of extract + decode (fused), and of the blind LM's decode."""
    from fusion.zeroshot.pipeline import ZeroShotPipeline

    start = time.perf_counter()
    pipe = ZeroShotPipeline(model)
    load_s = time.perf_counter() - start
    blind = pipe.options.replace(visual_weight=0.0, audio_weight=0.0)
    caption = pipe.caption([clip])[0].caption  # first call: allocator and kernel warm-up
    pipe.decode([pipe.extractor.extract(clip)], blind)
    total, decode, decode_blind = [], [], []
    stages: dict[str, list[float]] = {}
    for _ in range(repeat):
        before = dict(pipe.extractor.timings)
        t0 = time.perf_counter()
        record = pipe.extractor.extract(clip)
        t1 = time.perf_counter()
        for stage, seconds in stage_seconds(before, pipe.extractor.timings, t1 - t0).items():
            stages.setdefault(stage, []).append(seconds)
        pipe.decode([record])
        t2 = time.perf_counter()
        pipe.decode([record], blind)
        t3 = time.perf_counter()
        total.append(t2 - t0)
        decode.append(t2 - t1)
        decode_blind.append(t3 - t2)
    med = statistics.median
    return {"caption": caption, "load_s": round(load_s, 3), "warm_s": round(med(total), 3),
            "warm_min_s": round(min(total), 3), "extract_s": round(med(total) - med(decode), 3),
            "decode_s": round(med(decode), 4), "decode_blind_lm_s": round(med(decode_blind), 4),
            "decode_ratio_vs_blind": round(med(decode) / max(med(decode_blind), 1e-9), 2),
            "stages_s": {k: round(med(v), 3) for k, v in stages.items()},
            "beam_size": pipe.options.beam_size, "frames_per_clip": pipe.extractor.config.frames_per_clip}


def main(argv: list[str] | None = None) -> int:
    import tempfile

    import torch

    args = bench_args(__doc__, argv)
    model = Path(args.model) if args.model else REPO_ROOT / "runs" / "zeroshot"
    if not (model / "zeroshot.json").is_file():
        raise SystemExit(f"{model}: no zero-shot model; build one with `fusion zeroshot build --out {model}`")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip10s.mp4")
        for threads in args.threads:
            torch.set_num_threads(threads)
            row = {"model": str(args.model or "runs/zeroshot"), "clip_s": 10.0, "threads": threads,
                   **warm(model.resolve(), clip, args.repeat)}
            print(row)
            rows.append(row)
    load = os.getloadavg()[0]
    out = Path(args.out)
    command = "python -m scripts.bench_zeroshot_caption " + " ".join(sys.argv[1:] if argv is None else argv)
    atomic_write_json(out / "bench_zeroshot_caption.json", {"command": command.strip(), "cpu_count": os.cpu_count(),
                                                            "load_avg_1min_at_end": round(load, 2), "results": rows})
    lines = ["# Warm zero-shot caption of a 10-s clip", "", f"Command: `{command.strip()}`; {os.cpu_count()} CPUs, "
             f"1-min load average {load:.1f} at the end; beam {rows[0]['beam_size']}, "
             f"{rows[0]['frames_per_clip']} frames per clip.", "",
             "| threads | warm caption (s) | features (s) | fused beam search (s) | blind LM beam search (s) | ratio | load (s) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['threads']} | {r['warm_s']:.2f} | {r['extract_s']:.2f} | {r['decode_s']:.3f} | "
              f"{r['decode_blind_lm_s']:.3f} | {r['decode_ratio_vs_blind']:.2f} | {r['load_s']:.1f} |" for r in rows]
    names = sorted({k for r in rows for k in r["stages_s"]})
    lines += ["", "Per stage (median seconds of one warm caption; `decode` = reading the file and sampling frames, "
              "`preprocess` = resizing them, `frame_cnn` / `soundnet8` / `yamnet` = the networks, `other` = "
              "resampling and the rest; then the fused beam search):", "",
              "| threads | " + " | ".join(names) + " | beam search |", "|---" * (len(names) + 2) + "|"]
    lines += [f"| {r['threads']} | " + " | ".join(f"{r['stages_s'].get(k, 0.0):.3f}" for k in names)
              + f" | {r['decode_s']:.3f} |" for r in rows]
    atomic_write_text(out / "bench_zeroshot_caption.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
