"""``fusion import-features SOURCE --out STORE [--name NAME] [--modality frames|audio] [--manifest M]``.

Features someone else extracted (a folder of ``<id>.npy`` / ``<id>.npz`` files or one HDF5
file) become a feature store that ``fusion train`` / ``evaluate`` / ``tune`` / ``ablate`` read
like any other; bad files get one line each and are skipped, a re-run resumes.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``import-features`` sub-command."""
    parser = subparsers.add_parser(
        "import-features",
        help="import pre-extracted features (.npy/.npz folder or .h5 file) into a feature store",
        description="Import features computed outside fusion into a feature store: SOURCE is a folder of "
        "<id>.npy / <id>.npz files or one .h5 / .hdf5 file with one dataset per id, each array (T, D) or (D,). "
        "Files that are unreadable, not numeric arrays, empty, of another width or hold NaN / inf are skipped "
        "with one line each (and recorded in STORE/failures.jsonl); re-running resumes. Exit status 1 if any "
        "file failed.",
    )
    parser.add_argument("source", metavar="SOURCE", help="folder of <id>.npy / <id>.npz files, or one .h5 / .hdf5 file")
    parser.add_argument("--out", required=True, metavar="STORE", help="feature store folder (created if new)")
    parser.add_argument("--name", default=None,
                        help="name of the feature set, e.g. vgg16_ae128 (default: the store's, else SOURCE's "
                        "name without a 'features_' prefix)")
    parser.add_argument("--modality", choices=("frames", "audio"), default="frames",
                        help="which input of the captioner the arrays are (default: frames)")
    parser.add_argument("--manifest", metavar="M", default=None,
                        help="report how many of this manifest's ids have features")
    parser.add_argument("--overwrite", action="store_true", help="re-import ids already in the store")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Import, print the summary (and the manifest match), one line per failed file. Returns 1 if any failed."""
    from fusion.features.importer import import_features
    from fusion.manifest import load_manifest

    ids = [e.id for e in load_manifest(args.manifest)] if args.manifest else None
    summary = import_features(args.source, args.out, name=args.name, modality=args.modality, manifest_ids=ids,
                              manifest=args.manifest, overwrite=args.overwrite, progress=not args.json)
    if args.json:
        print(json.dumps(summary.to_json()))
    else:
        print(f"{summary.store}: {summary.done} imported, {summary.skipped} already there, {len(summary.failed)} "
              f"failed ({summary.name}, {summary.width}-d {summary.modality}; {summary.elapsed_s:.1f} s)")
        if summary.matched:
            print(summary.matched)
    for failure in summary.failed:
        print(f"fusion import-features: skipped {failure['file']}: {failure['error']}", file=sys.stderr)
    return 1 if summary.failed else 0
