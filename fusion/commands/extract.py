"""``fusion extract INPUTS... --out STORE``: videos -> a feature store (resumable, shardable)."""

from __future__ import annotations

import argparse
import json
import sys

from fusion.config import load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``extract`` sub-command."""
    parser = subparsers.add_parser(
        "extract",
        help="extract frame-CNN and SoundNet features of videos into a feature store",
        description="Extract one feature record per video (frame-CNN features, SoundNet features "
        "and posteriors, or absent audio) into a store folder. Re-running skips finished videos; "
        "several --shard processes may fill one store at once. Exit status 1 if any file failed.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="media files, folders (recursive) or manifest .jsonl")
    parser.add_argument("--out", required=True, metavar="STORE", help="feature store folder (created if new)")
    parser.add_argument("--config", metavar="FILE", help="YAML with ExtractConfig keys (frames_per_clip, ...)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, e.g. --set frames_per_clip=16 (repeatable)",
    )
    parser.add_argument("--shard", default="0/1", metavar="I/N", help="do only shard I of N (I from 0; default 0/1)")
    parser.add_argument("--overwrite", action="store_true", help="re-extract finished videos (and adopt a new config)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Collect inputs, extract, print the summary. Returns 1 if any file failed."""
    from fusion.features import ExtractConfig, collect_inputs, extract_to_store, parse_shard

    config = load_config(ExtractConfig, args.config, args.overrides)
    shard = parse_shard(args.shard)
    inputs = collect_inputs(args.inputs)
    summary = extract_to_store(inputs, args.out, config, shard=shard, overwrite=args.overwrite, progress=True)
    if args.json:
        print(json.dumps(summary.to_json()))
    else:
        rate = summary.done / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
        print(
            f"{summary.store}: {summary.done} extracted, {summary.skipped} already there, "
            f"{len(summary.failed)} failed ({summary.elapsed_s:.1f} s, {rate:.2f} clips/s)"
        )
        for failure in summary.failed:
            print(f"failed: {failure['file']}: {failure['error']}", file=sys.stderr)
    return 1 if summary.failed else 0
