"""Benchmark: warm ``fusion caption`` of a 10-s clip with the zero-shot model, on 2 CPU threads.

The model is ``--model`` (default ``runs/zeroshot``: build it with ``fusion zeroshot build``).
The clip is a 10-s H.264/AAC file written with av (``scripts.bench_caption.make_clip``). Warm:
the pipeline is loaded once, then per repeat the features are extracted and decoded in both
modes, interleaved: the **consensus** mode (the default: the nearest corpus clips vote on a
real caption), the **fused** mode (beam search, LM + concept scorers) and the blind LM (the
fused mode with the visual and audio evidence off). The ratios are consensus / fused and fused /
blind LM.

Cold: the pipeline's load (LM, concept links, encoders) and the caption index's
(``CaptionIndex.load``: ``neighbours.json.gz`` + ``neighbours.npz``, read on the first consensus
caption), the first read of the process; then the median of ``--repeat`` more index reads (the
file then in the page cache).

    python -m scripts.bench_zeroshot_caption [--model runs/zeroshot] [--repeat 5] [--threads 1 2] [--out results]

Also prints and writes the per-stage breakdown of the warm extraction (file decoding, frame
preprocessing, frame CNN, each audio encoder, the rest) from the extractor's stage timings, and
the machine's load (``uptime``) before and after: other jobs share the cores.

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


def index_load(model: Path, repeat: int) -> tuple[float, float]:
    """Seconds of the first ``CaptionIndex.load`` of the folder in this process, and the median of ``repeat`` more."""
    from fusion.zeroshot.neighbours import CaptionIndex

    times = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        CaptionIndex.load(model)
        times.append(time.perf_counter() - start)
    return times[0], statistics.median(times[1:])


def warm(model: Path, clip: Path, repeat: int, first_index_s: float | None = None) -> dict:
    """Load once; median seconds of extract + decode in the consensus mode, the fused mode and the blind LM."""
    from fusion.zeroshot.pipeline import ZeroShotPipeline

    start = time.perf_counter()
    pipe = ZeroShotPipeline(model)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    _ = pipe.model.index  # what the first consensus caption reads
    index_s = time.perf_counter() - start
    consensus = pipe.options.replace(mode="consensus")
    fused = pipe.options.replace(mode="fused")
    blind = fused.replace(visual_weight=0.0, audio_weight=0.0)
    record = pipe.extractor.extract(clip)  # first call: allocator and kernel warm-up
    captions = {name: pipe.decode([record], opts)[0][0].words
                for name, opts in (("consensus", consensus), ("fused", fused), ("blind_lm", blind))}
    extract, decode = [], {"consensus": [], "fused": [], "blind_lm": []}
    stages: dict[str, list[float]] = {}
    for _ in range(repeat):
        before = dict(pipe.extractor.timings)
        t0 = time.perf_counter()
        record = pipe.extractor.extract(clip)
        t1 = time.perf_counter()
        extract.append(t1 - t0)
        for stage, seconds in stage_seconds(before, pipe.extractor.timings, t1 - t0).items():
            stages.setdefault(stage, []).append(seconds)
        for name, opts in (("consensus", consensus), ("fused", fused), ("blind_lm", blind)):
            t = time.perf_counter()
            pipe.decode([record], opts)
            decode[name].append(time.perf_counter() - t)
    med = statistics.median
    totals = {name: [e + d for e, d in zip(extract, times)] for name, times in decode.items()}
    return {"default_mode": pipe.options.mode, "captions": captions, "neighbours": consensus.neighbours,
            "load_s": round(load_s, 3), "index_load_s": round(index_s, 3),
            **({"index_load_first_in_process_s": round(first_index_s, 3)} if first_index_s is not None else {}),
            "extract_s": round(med(extract), 3),
            "warm_consensus_s": round(med(totals["consensus"]), 3), "warm_fused_s": round(med(totals["fused"]), 3),
            "warm_consensus_min_s": round(min(totals["consensus"]), 3),
            "decode_consensus_s": round(med(decode["consensus"]), 4), "decode_fused_s": round(med(decode["fused"]), 4),
            "decode_blind_lm_s": round(med(decode["blind_lm"]), 4),
            "decode_ratio_consensus_vs_fused": round(med(decode["consensus"]) / max(med(decode["fused"]), 1e-9), 2),
            "warm_ratio_consensus_vs_fused": round(med(totals["consensus"]) / max(med(totals["fused"]), 1e-9), 2),
            "decode_ratio_fused_vs_blind": round(med(decode["fused"]) / max(med(decode["blind_lm"]), 1e-9), 2),
            "stages_s": {k: round(med(v), 3) for k, v in stages.items()},
            "beam_size": fused.beam_size, "frames_per_clip": pipe.extractor.config.frames_per_clip}


def uptime() -> str:
    """``uptime``'s line (who else is loading the machine), or the load averages where it is missing."""
    import subprocess

    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    import tempfile

    import torch

    args = bench_args(__doc__, argv)
    model = Path(args.model) if args.model else REPO_ROOT / "runs" / "zeroshot"
    if not (model / "zeroshot.json").is_file():
        raise SystemExit(f"{model}: no zero-shot model; build one with `fusion zeroshot build --out {model}`")
    load_before, uptime_before = os.getloadavg()[0], uptime()
    first_index_s, index_warm_s = index_load(model.resolve(), args.repeat)  # first: before anything else reads it
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip10s.mp4")
        for i, threads in enumerate(args.threads):
            torch.set_num_threads(threads)
            row = {"model": str(args.model or "runs/zeroshot"), "clip_s": 10.0, "threads": threads,
                   **warm(model.resolve(), clip, args.repeat, first_index_s if i == 0 else None)}
            print(row)
            rows.append(row)
    load, uptime_after = os.getloadavg()[0], uptime()
    out = Path(args.out)
    command = "python -m scripts.bench_zeroshot_caption " + " ".join(sys.argv[1:] if argv is None else argv)
    atomic_write_json(out / "bench_zeroshot_caption.json", {
        "command": command.strip(), "cpu_count": os.cpu_count(), "load_avg_1min_at_start": round(load_before, 2),
        "load_avg_1min_at_end": round(load, 2), "uptime_at_start": uptime_before, "uptime_at_end": uptime_after,
        "index_load_first_s": round(first_index_s, 3), "index_load_again_median_s": round(index_warm_s, 3),
        "results": rows})
    r0 = rows[0]
    lines = ["# Warm zero-shot caption of a 10-s clip: consensus and fused modes", "",
             f"Command: `{command.strip()}`; {os.cpu_count()} CPUs, 1-min load average {load_before:.1f} at the start "
             f"and {load:.1f} at the end (other jobs share the cores: `{uptime_before}` / `{uptime_after}`); default "
             f"mode {r0['default_mode']}, {r0['neighbours']} neighbours; fused: beam {r0['beam_size']}; "
             f"{r0['frames_per_clip']} frames per clip.", "",
             "Captions of the clip (a red square moving over grey, a 440 Hz tone): "
             + "; ".join(f"{k}: *{v}*" for k, v in r0["captions"].items()) + ".", "",
             "| threads | warm caption, consensus (s) | warm caption, fused (s) | ratio | features (s) | consensus decode (s) "
             "| fused beam search (s) | ratio | blind LM beam search (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['threads']} | **{r['warm_consensus_s']:.2f}** | {r['warm_fused_s']:.2f} | "
              f"{r['warm_ratio_consensus_vs_fused']:.2f} | {r['extract_s']:.2f} | {r['decode_consensus_s']:.3f} | "
              f"{r['decode_fused_s']:.3f} | {r['decode_ratio_consensus_vs_fused']:.2f} | {r['decode_blind_lm_s']:.3f} |"
              for r in rows]
    lines += ["", "Load (seconds): the pipeline (caption LM, concept links, encoders; the first row's is the "
              "process's first, imports included, later rows load it again in the same process) and the caption "
              "index (`CaptionIndex.load`: `neighbours.json.gz` + `neighbours.npz`, read by the first consensus "
              f"caption); the index's first read in the process (scipy's import included) took {first_index_s:.2f} s, "
              f"later reads {index_warm_s:.2f} s (median of {args.repeat}).", "",
              "| threads | pipeline load (s) | index load (s) |", "|---|---|---|"]
    lines += [f"| {r['threads']} | {r['load_s']:.2f} | {r['index_load_s']:.2f} |" for r in rows]
    names = sorted({k for r in rows for k in r["stages_s"]})
    lines += ["", "Per stage (median seconds of one warm caption; `decode` = reading the file and sampling frames, "
              "`preprocess` = resizing them, `frame_cnn` / `soundnet8` / `yamnet` = the networks, `other` = "
              "resampling and the rest; then each mode's decoding):", "",
              "| threads | " + " | ".join(names) + " | consensus | fused beam search |", "|---" * (len(names) + 3) + "|"]
    lines += [f"| {r['threads']} | " + " | ".join(f"{r['stages_s'].get(k, 0.0):.3f}" for k in names)
              + f" | {r['decode_consensus_s']:.3f} | {r['decode_fused_s']:.3f} |" for r in rows]
    atomic_write_text(out / "bench_zeroshot_caption.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
