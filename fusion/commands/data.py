"""``fusion data``: inspect datasets (``fusion data stats MANIFEST [--json] [--plot FILE]``).

Datasets are built by ``python -m data_prep.<name>`` (msvd, msrvtt, custom, avsynth).
"""

from __future__ import annotations

import argparse
import json

from fusion.datastats import format_stats, manifest_stats, plot_lengths
from fusion.manifest import load_manifest


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fusion data`` and its sub-commands."""
    parser = subparsers.add_parser("data", help="inspect a dataset manifest (stats)",
                                   description="Inspect dataset manifests. Build them with python -m "
                                   "data_prep.msvd / msrvtt / custom / avsynth.")
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    stats = sub.add_parser("stats", help="videos/captions per split, vocabulary, lengths, missing files, audio",
                           description="Statistics of a manifest; audio streams are checked in the files.")
    stats.add_argument("manifest", help="manifest (.jsonl)")
    stats.add_argument("--json", action="store_true", help="print JSON instead of text")
    stats.add_argument("--plot", metavar="FILE", default=None, help="write a caption-length histogram (.png/.pdf/.svg)")
    stats.add_argument("--no-probe", action="store_true", help="do not open the media files (faster)")
    stats.set_defaults(func=run_stats)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def run_stats(args: argparse.Namespace) -> int:
    """Run ``fusion data stats``."""
    entries = load_manifest(args.manifest)
    stats = manifest_stats(entries, check_files=not args.no_probe, progress=not args.json)
    if args.plot:
        plot_lengths(stats, args.plot, title=f"caption lengths: {args.manifest}")
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(format_stats(stats, args.manifest))
        if args.plot:
            print(f"  plot: {args.plot}")
    return 0
