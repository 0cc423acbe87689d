"""``fusion extract INPUTS... --out STORE``: videos -> a feature store (resumable, shardable).

Under ``torchrun --nproc_per_node N -m fusion extract ...`` the N ranks share the inputs and
fill the one store; rank 0 prints the one summary.
"""

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
        "several --shard processes may fill one store at once, and under torchrun the ranks share "
        "the inputs (rank 0 prints the summary). Exit status 1 if any file failed.",
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
    parser.add_argument("--workers", type=int, metavar="K",
                        help="decode media in K worker processes (default: decode_workers background threads)")
    parser.add_argument("--device", default="cpu",
                        help="torch device for the encoders (cpu, cuda; under torchrun cuda is each rank's GPU)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Collect inputs, extract, print the summary. Returns 1 if any file failed."""
    from fusion.features import ExtractConfig, collect_inputs, extract_job, parse_shard

    overrides = list(args.overrides) + ([f"decode_processes={args.workers}"] if args.workers is not None else [])
    config = load_config(ExtractConfig, args.config, overrides)
    shard = parse_shard(args.shard)
    inputs = collect_inputs(args.inputs)
    summary = extract_job(inputs, args.out, config, shard=shard, overwrite=args.overwrite, progress=True,
                          device=args.device)
    if summary is None:  # another rank of a torchrun job: rank 0 prints the job's summary
        return 0
    if args.json:
        print(json.dumps(summary.to_json()))
    else:
        rate = summary.done / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
        repaired = f", {summary.repaired} corrupt record{'s' * (summary.repaired != 1)} re-extracted"
        print(
            f"{summary.store}: {summary.done} extracted, {summary.skipped} already there"
            f"{repaired if summary.repaired else ''}, "
            f"{len(summary.failed)} failed ({summary.elapsed_s:.1f} s, {rate:.2f} clips/s)"
        )
        for failure in summary.failed:
            error = failure["error"]  # a MediaError's text already starts with the file
            print(f"failed: {error if error.startswith(failure['file']) else failure['file'] + ': ' + error}",
                  file=sys.stderr)
    return 1 if summary.failed else 0
