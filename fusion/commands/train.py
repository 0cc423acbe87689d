"""``fusion train CONFIG [--set key=value ...] [--out RUN_DIR] [--manifest M] [--features STORE]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    parser = subparsers.add_parser(
        "train",
        help="train an S2VT captioner from a YAML config (resumes a killed run)",
        description="Train an S2VT captioner: teacher forcing, Adam, validation with METEOR/CIDEr "
        "for model selection and early stopping, checkpoints (best kept) in RUN_DIR. RUN_DIR's config is "
        "checked first (another run's folder is refused at once), then the features the store lacks are "
        "extracted (the log says which and where). Re-running the same command on the same "
        "RUN_DIR continues a killed run exactly.",
    )
    parser.add_argument("config", metavar="CONFIG", help="experiment YAML (see configs/)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.max_epochs=5 --set model.hidden_size=256 (repeatable)",
    )
    parser.add_argument("--out", metavar="RUN_DIR", help="run folder (default: runs/<config name>)")
    parser.add_argument("--manifest", metavar="M", help="train on this manifest instead of the config's data.manifest")
    parser.add_argument("--features", metavar="STORE", help="feature store folder (default: beside the manifest)")
    parser.add_argument("--strict", action="store_true",
                        help="stop when a video cannot be read (default: train without it, saying how many)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the config, train, print where the best checkpoint is."""
    from fusion.experiment import load_experiment
    from fusion.stages import prepare_training
    from fusion.training import train

    config = load_experiment(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    # check the run folder (a mismatched --out fails here), then extract missing features, visibly
    prepare_training(config, out, manifest=args.manifest, features=args.features, progress=not args.no_progress,
                     strict=args.strict)
    result = train(config, out, progress=not args.no_progress, strict=args.strict)
    best = result.best or {}
    summary = {
        "run_dir": str(result.run_dir),
        "steps": result.steps,
        "epochs": result.epochs,
        "stop_reason": result.stop_reason,
        "best_metric": best.get("metric"),
        "best_value": best.get("value"),
        "best_step": best.get("step"),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{result.run_dir}: {result.steps} steps, {result.epochs} epochs ({result.stop_reason}); "
            f"best {best.get('metric')}={best.get('value')} at step {best.get('step')}"
        )
    return 0
