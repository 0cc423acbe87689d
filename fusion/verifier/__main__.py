"""``python -m fusion.verifier train --manifest M --features STORE --out FILE``

Trains the verifier's learned evidence on paired data and writes one ``.safetensors`` file
(plus ``FILE.report.json``). ``python -m fusion.verifier evidence --verifier FILE
--features STORE [ID ...]`` prints the evidence of stored clips as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from fusion.errors import FusionError


def _train(args: argparse.Namespace) -> int:
    from fusion.features import FeatureStore
    from fusion.manifest import load_manifest
    from fusion.verifier.table import NounTable
    from fusion.verifier.training import train_verifier, write_report

    entries = load_manifest(args.manifest)
    store = FeatureStore(args.features)
    table = NounTable.load(args.table)
    verifier, report = train_verifier(entries, store, table, args.label_threshold, args.min_positives)
    report.update({"manifest": str(args.manifest), "features": str(args.features)})
    verifier.save(args.out, extra={"manifest": str(args.manifest)})
    write_report(Path(f"{args.out}.report.json"), report)
    summary = {"out": str(args.out), "nouns": report["nouns"], "train_clips": report["train_clips"],
               "val_clips": report["val_clips"]}
    print(json.dumps(summary, indent=None if args.json else 2))
    return 0


def _evidence(args: argparse.Namespace) -> int:
    from fusion.features import FeatureStore
    from fusion.verifier.core import AudioNounVerifier

    verifier = AudioNounVerifier.load(args.verifier) if args.verifier else AudioNounVerifier()
    store = FeatureStore(args.features)
    out = {}
    for vid in args.ids or store.ids():
        ev = verifier.evidence(store[vid])
        out[vid] = None if ev is None else dict(sorted(ev.items(), key=lambda kv: -abs(kv[1]))[: args.top])
    print(json.dumps(out, indent=2))
    return 0


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    """Add ``train`` and ``evidence`` to ``parser`` (shared by ``fusion verifier`` and ``python -m``)."""
    sub = parser.add_subparsers(dest="verifier_command", required=True, metavar="{train,evidence}")
    train = sub.add_parser("train", help="train the per-noun audio classifiers on paired data")
    train.add_argument("--manifest", type=Path, required=True, help="manifest with train/val splits and captions")
    train.add_argument("--features", type=Path, required=True, help="feature store of the manifest's videos")
    train.add_argument("--out", type=Path, required=True, help="verifier file to write (.safetensors)")
    train.add_argument("--table", type=Path, default=None, help="audible-noun table (default: committed one)")
    train.add_argument("--label-threshold", type=float, default=0.2, help="share of captions naming a noun")
    train.add_argument("--min-positives", type=int, default=3, help="fewer positives: zero-shot only")
    train.add_argument("--json", action="store_true", help="one-line JSON summary")
    train.set_defaults(func=_train)
    evid = sub.add_parser("evidence", help="print the audio evidence of stored clips")
    evid.add_argument("--verifier", type=Path, default=None, help="trained verifier (default: zero-shot only)")
    evid.add_argument("--features", type=Path, required=True, help="feature store")
    evid.add_argument("--top", type=int, default=8, help="strongest nouns per clip")
    evid.add_argument("ids", nargs="*", help="clip ids (default: all)")
    evid.set_defaults(func=_evidence)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; user errors print one line and return 2."""
    parser = argparse.ArgumentParser(prog="python -m fusion.verifier", description="audio-noun verifier")
    add_subcommands(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except FusionError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
