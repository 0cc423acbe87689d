"""``fusion ablate RUN --out DIR [--manifest M] [--video-only-run RUN2] [--json]``."""

from __future__ import annotations

import argparse
import json

from fusion.commands.evaluate import add_decode_arguments, decode_overrides


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``ablate`` sub-command."""
    from fusion.ablation import CONDITIONS

    parser = subparsers.add_parser(
        "ablate",
        help="evaluate a run under ablation conditions (audio absent/zero/shuffled/noise, verifier/LM off)",
        description="Evaluate one test set under named conditions and compare each with `full`: corpus-level "
        "metrics per condition, and for METEOR, CIDEr and sound accuracy the mean over videos of the per-video "
        "difference with the paired bootstrap 95% interval of that same mean. Features the store lacks are "
        f"extracted first. Conditions: {', '.join(CONDITIONS)}. Writes ablation.json, ablation.md, "
        "ablation.png, predictions.json and per_video.json to --out.",
    )
    parser.add_argument("run_path", metavar="RUN", help="run folder or checkpoint to ablate")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder for the report")
    parser.add_argument("--manifest", metavar="M", help="manifest to evaluate on (default: the run's)")
    parser.add_argument("--features", metavar="STORE", help="feature store folder (default: beside the manifest)")
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    parser.add_argument("--video-only-run", metavar="RUN2", help="a run trained without audio (adds video_only_model)")
    parser.add_argument("--conditions", nargs="+", metavar="NAME", choices=CONDITIONS, help="subset of conditions")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of shuffling, noise and bootstrap (default 0)")
    parser.add_argument("--rescore", action="store_true",
                        help="no decoding: recompute the comparisons of the report already in --out from its saved "
                        "per-video scores (e.g. a report written by an older fusion)")
    parser.add_argument("--json", action="store_true", help="print ablation.json")
    add_decode_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the ablation and print the table (or the JSON)."""
    from fusion.ablation import CONDITIONS, AblationConfig, rescore_report, run_ablation
    from fusion.ablation_report import render_markdown

    if args.rescore:
        report = rescore_report(args.out)
    else:
        config = AblationConfig(conditions=tuple(args.conditions or CONDITIONS), split=args.split,
                                bootstrap_samples=args.bootstrap, seed=args.seed)
        report = run_ablation(args.run_path, args.out, config=config, manifest=args.manifest, features=args.features,
                              video_only_run=args.video_only_run, device=args.device, **decode_overrides(args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render_markdown(report))
        print(f"wrote {args.out}/ablation.json, ablation.md, ablation.png")
    return 0
