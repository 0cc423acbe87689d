"""The audio-visual benchmark: coloured shapes that move while a real ESC-10 sound plays.

``python -m data_prep.avsynth --out DIR --seed N [--size tiny|small|default] [--esc10 DIR]
[--text-corpus FILE]`` writes ``DIR/manifest.jsonl`` (video paths relative to ``DIR``),
``DIR/videos/*.mp4`` and ``DIR/benchmark.json``; from Python call :func:`generate` or
:func:`main`. Modules: ``grammar`` (captions), ``render`` (pictures), ``sounds`` (ESC-10 and
the synthetic fallback), ``build`` (plan, parallel rendering, manifest, text corpus).
The benchmark's words and judging rules live in :mod:`fusion.benchmark`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from data_prep.avsynth.build import SIZES, TEXT_CORPUS_SIZE, GenerationSummary, generate, plan_benchmark
from fusion.errors import script_main

__all__ = ["generate", "plan_benchmark", "main", "GenerationSummary", "SIZES"]


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``python -m data_prep.avsynth``."""
    p = argparse.ArgumentParser(prog="python -m data_prep.avsynth", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output folder (manifest.jsonl, videos/, benchmark.json)")
    p.add_argument("--seed", type=int, required=True, help="seed of everything (same seed => same output)")
    p.add_argument("--size", choices=list(SIZES), default="default",
                   help="tiny: 6/3/3 clips, small: 300/50/100, default: 600/100/200 (train/val/test)")
    p.add_argument("--esc10", default=None, help="ESC-10 folder (default $FUSION_DATA_DIR/esc10; "
                   "synthesised sounds when absent)")
    p.add_argument("--text-corpus", default=None, metavar="FILE",
                   help="also write a text-only corpus from the same grammar, disjoint from the captions")
    p.add_argument("--text-corpus-size", type=int, default=TEXT_CORPUS_SIZE, help="sentences in the corpus")
    p.add_argument("--workers", type=int, default=2, help="rendering processes (default 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


@script_main("data_prep.avsynth")
def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 with a one-line message on a user error)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    summary = generate(args.out, args.seed, args.size, esc10_dir=args.esc10, text_corpus=args.text_corpus,
                       text_corpus_size=args.text_corpus_size, workers=args.workers,
                       progress=not args.no_progress)
    clips = ", ".join(f"{k} {v}" for k, v in summary.clips.items())
    print(f"wrote {summary.manifest} ({clips}; sounds: {summary.sound_origin}) in {summary.elapsed_s:.1f} s")
    if summary.text_corpus:
        print(f"wrote {summary.text_corpus} ({summary.text_sentences} sentences)")
    return 0
