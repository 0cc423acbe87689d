"""Decode real clips many times across threads; exit non-zero if decoding ever stalls.

Usage::

    .venv/bin/python -m scripts.stress_decode [--threads 4] [--seconds 10] [--num-frames 4]
        [--stall-s 30] [--clips DIR ...] [--out results/stress_decode.json]

By default it decodes the real clips in ``$FUSION_DATA_DIR/msrvtt/clips`` and
``msvd/clips`` (``fusion.media.decode``, frames and audio) in ``--threads`` threads for
``--seconds``, with PyAV's Python log callback installed (``av.logging.set_level``, as
torchvision.io does on import): the setting in which freeing a codec with busy frame
threads deadlocks. Few frames per clip (``--num-frames``) make decoding stop long before
each file's end, which is when the codec is freed with frames still in flight.

A watchdog in C (``faulthandler``, it needs no GIL) prints every thread's stack and exits
with status 1 when no decode finished for ``--stall-s`` seconds; a clean run prints the
decode count and exits 0 (with ``--out``, also writing ``<out>`` JSON and ``<out>.md``).
Decode errors count as failures (status 2).
"""

from __future__ import annotations

import argparse
import faulthandler
import sys
import threading
import time
from pathlib import Path

import av

from fusion.media import decode
from fusion.paths import data_dir

CLIP_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov"}


def real_clips(folders: list[Path]) -> list[Path]:
    """Video files in ``folders``, sorted."""
    return sorted(p for folder in folders if folder.is_dir() for p in folder.iterdir() if p.suffix in CLIP_SUFFIXES)


class Stress:
    """Threads decoding ``clips`` round-robin until ``deadline``; a C watchdog ends a stall."""

    def __init__(self, clips: list[Path], num_frames: int, stall_s: float) -> None:
        self.clips, self.num_frames, self.stall_s = clips, num_frames, stall_s
        self.done = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def _work(self, worker: int, deadline: float) -> None:
        """Decode clips starting at offset ``worker`` until ``deadline`` (monotonic seconds)."""
        k = worker
        while time.monotonic() < deadline:
            clip = self.clips[k % len(self.clips)]
            k += 1
            try:
                decode(clip, num_frames=self.num_frames)
            except Exception as err:  # noqa: BLE001 - every failure is reported, none stops the others
                with self.lock:
                    self.errors.append(f"{clip.name}: {err}")
            with self.lock:
                self.done += 1
            faulthandler.dump_traceback_later(self.stall_s, exit=True)  # re-armed: a stall is stall_s without a decode

    def run(self, threads: int, seconds: float) -> float:
        """Run ``threads`` workers for ``seconds``; returns the wall time."""
        start = time.monotonic()
        faulthandler.dump_traceback_later(self.stall_s, exit=True)
        workers = [threading.Thread(target=self._work, args=(i, start + seconds), name=f"decode-{i}")
                   for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        faulthandler.cancel_dump_traceback_later()
        return time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the stress, print one summary line; 0 = no stall, no error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--num-frames", type=int, default=4)
    parser.add_argument("--stall-s", type=float, default=30.0, help="no decode finished for this long = hung")
    parser.add_argument("--clips", type=Path, nargs="*", help="folders of clips (default: the shared real clips)")
    parser.add_argument("--no-python-log", action="store_true", help="leave PyAV's Python log callback off")
    parser.add_argument("--out", type=Path, help="write the summary here (JSON) and beside it (.md)")
    args = parser.parse_args(argv)
    folders = args.clips or [data_dir() / "msrvtt" / "clips", data_dir() / "msvd" / "clips"]
    clips = real_clips(folders)
    if not clips:
        print(f"stress_decode: no clips in {', '.join(map(str, folders))}; set FUSION_DATA_DIR or pass --clips",
              file=sys.stderr)
        return 2
    if not args.no_python_log:
        av.logging.set_level(av.logging.ERROR)  # what `import torchvision.io` does
    stress = Stress(clips, args.num_frames, args.stall_s)
    wall = stress.run(args.threads, args.seconds)
    summary = (f"stress_decode: {stress.done} decodes of {len(clips)} clips in {args.threads} threads, {wall:.1f} s, "
               f"{len(stress.errors)} errors, no stall")
    print(summary)
    if args.out:
        from scripts.benchio import machine, write_report  # imports torch: only when writing a report

        command = (f"python -m scripts.stress_decode --threads {args.threads} --seconds {args.seconds:g} "
                   f"--num-frames {args.num_frames} --stall-s {args.stall_s:g}"
                   + (" --no-python-log" if args.no_python_log else ""))
        result = {"command": command, "decodes": stress.done, "clips": len(clips), "threads": args.threads,
                  "wall_s": round(wall, 1), "errors": stress.errors, "stalled": False,
                  "python_log_callback": not args.no_python_log, "machine": machine()}
        write_report(args.out, result, f"# Decoding stress\n\nCommand: `{command}`\n\n{summary}\n", False)
    for line in stress.errors[:10]:
        print(f"  error: {line}", file=sys.stderr)
    return 2 if stress.errors else 0


if __name__ == "__main__":
    sys.exit(main())
