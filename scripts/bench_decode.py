"""Benchmark video decoding on the real clips: the hang fix against the decoder it replaced.

Usage::

    .venv/bin/python -m scripts.bench_decode [--rounds 3] [--num-frames 32] [--json]
        [--out results/bench_decode.json]

Decodes every clip in ``$FUSION_DATA_DIR/msrvtt/clips`` and ``msvd/clips``
(``fusion.media.decode``, ``--num-frames`` frames, no audio) with each variant of the
video codec's threading and RGB conversion, one clip after another (1 thread) and in 4
threads, ``--rounds`` times with the variants interleaved; reports the median clips/s and
process CPU seconds per variant and the ratio to ``before`` measured in the same run:

* ``before``: frame threads, the codec freed with frames in flight, one RGB scaler per
  frame (``VideoFrame.to_ndarray``) - the decoder that could deadlock;
* ``after``: frame threads, flushed before the codec is freed, one scaler per file (now);
* ``slice``: slice threads only (nothing in flight between calls), one scaler per file;
* ``single``: one decoding thread, one scaler per file.

PyAV's Python log callback stays off here so that ``before`` cannot hang the benchmark
(``scripts.stress_decode`` shows the hang). Writes ``<out>`` (JSON) and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
from av.video.reformatter import VideoReformatter

from fusion.media import decode, decoder
from fusion.paths import REPO_ROOT, data_dir
from scripts.benchio import machine, write_report
from scripts.stress_decode import real_clips


class _ScalerPerFrame:
    """Stands in for ``VideoReformatter``: a fresh scaler for every frame, as ``to_ndarray`` makes."""

    def reformat(self, frame: av.VideoFrame, **kwargs: Any) -> av.VideoFrame:
        return VideoReformatter().reformat(frame, **kwargs)


def _threads(thread_type: str, count: int = 0, flush: bool = True) -> Callable:
    """A replacement for ``decoder._frame_threaded`` with the given codec threading."""
    @contextlib.contextmanager
    def threaded(stream: av.video.stream.VideoStream) -> Iterator[av.video.stream.VideoStream]:
        stream.thread_type = thread_type
        stream.codec_context.thread_count = count
        try:
            yield stream
        finally:
            if flush:
                stream.codec_context.flush_buffers()
    return threaded


VARIANTS: dict[str, tuple[Callable, type]] = {
    "before": (_threads("AUTO", flush=False), _ScalerPerFrame),
    "after": (decoder._frame_threaded, VideoReformatter),
    "slice": (_threads("SLICE"), VideoReformatter),
    "single": (_threads("NONE", count=1), VideoReformatter),
}


@contextlib.contextmanager
def variant(name: str) -> Iterator[None]:
    """Decode with variant ``name`` inside the block."""
    saved = decoder._frame_threaded, decoder.VideoReformatter
    decoder._frame_threaded, decoder.VideoReformatter = VARIANTS[name]
    try:
        yield
    finally:
        decoder._frame_threaded, decoder.VideoReformatter = saved


def timed_pass(clips: list[Path], num_frames: int, threads: int) -> tuple[float, float]:
    """Decode every clip once in ``threads`` threads; (wall s, process CPU s)."""
    def work(part: list[Path]) -> None:
        for clip in part:
            decode(clip, num_frames=num_frames, audio=False)

    wall, cpu = time.perf_counter(), time.process_time()
    workers = [threading.Thread(target=work, args=(clips[i::threads],)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(clips: list[Path], num_frames: int, rounds: int) -> dict[str, dict[str, Any]]:
    """Median wall/CPU per (variant, thread count), variants interleaved in every round."""
    samples: dict[str, list[tuple[float, float]]] = {}
    for name in VARIANTS:  # warm-up: codecs, page cache
        with variant(name):
            timed_pass(clips[:4], num_frames, 1)
    for _ in range(rounds):
        for name in VARIANTS:
            for threads in (1, 4):
                with variant(name):
                    samples.setdefault(f"{name}/{threads}", []).append(timed_pass(clips, num_frames, threads))
    out = {}
    for key, runs in samples.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        out[key] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "clips_per_s": round(len(clips) / wall, 2)}
    for key, row in out.items():
        base = out[f"before/{key.split('/')[1]}"]
        row["speed_vs_before"] = round(base["wall_s"] / row["wall_s"], 2)
        row["cpu_vs_before"] = round(row["cpu_s"] / base["cpu_s"], 2)
    return out


def markdown(result: dict[str, Any]) -> str:
    """The results table."""
    lines = [f"# Video decoding on the real clips ({result['clips']} clips, {result['num_frames']} frames each, "
             f"median of {result['rounds']} rounds)", "",
             f"Command: `{result['command']}`", "",
             "| variant / threads | clips/s | wall s | CPU s | speed vs before | CPU vs before |",
             "|---|---|---|---|---|---|"]
    for key, row in result["variants"].items():
        lines.append(f"| {key} | {row['clips_per_s']} | {row['wall_s']} | {row['cpu_s']} | "
                     f"{row['speed_vs_before']} | {row['cpu_vs_before']} |")
    lines += ["", f"Machine: {result['machine']}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, measure, write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num-frames", type=int, default=32)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "bench_decode.json")
    parser.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    args = parser.parse_args(argv)
    clips = real_clips([data_dir() / "msrvtt" / "clips", data_dir() / "msvd" / "clips"])
    if not clips:
        raise SystemExit(f"bench_decode: no clips under {data_dir()}/msrvtt/clips or msvd/clips; set FUSION_DATA_DIR")
    av.logging.set_level(None)  # PyAV's Python log callback off: `before` would deadlock with it on
    result = {"command": f"python -m scripts.bench_decode --rounds {args.rounds} --num-frames {args.num_frames}",
              "clips": len(clips), "num_frames": args.num_frames, "rounds": args.rounds,
              "variants": measure(clips, args.num_frames, args.rounds)}
    result["machine"] = machine()
    write_report(args.out, result, markdown(result), args.json)


if __name__ == "__main__":
    main()
