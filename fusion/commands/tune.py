"""``fusion tune RUN --lm LM [--manifest M] [--split val] [--alphas A ...] [--mode loglinear|linear]``.

Tunes the late-fusion weight alpha of a language model on validation captions: decodes the
split once per alpha, scores it with coco-caption and writes the choice (and every alpha's
scores) to ``RUN/tune/lm_<mode>.json`` or ``--out``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from fusion.tuning import DEFAULT_ALPHAS


def register(subparsers: Any) -> None:
    """Add the ``tune`` sub-command."""
    p = subparsers.add_parser("tune", help="tune the language-model weight alpha on validation data",
                              description=__doc__.split("\n\n")[1])
    p.add_argument("run_path", metavar="RUN", help="captioner run folder or checkpoint")
    p.add_argument("--lm", required=True, help="LM: `fusion lm train` folder, Hugging Face folder or hub id")
    p.add_argument("--manifest", metavar="M", help="manifest to tune on (default: the run's)")
    p.add_argument("--split", default="val", help="split to decode (default val; never tune on test)")
    p.add_argument("--alphas", type=float, nargs="+", default=list(DEFAULT_ALPHAS), metavar="A",
                   help=f"weights to try; 0 (no LM) is always added (default {' '.join(map(str, DEFAULT_ALPHAS))})")
    p.add_argument("--mode", default="loglinear", choices=("loglinear", "linear"),
                   help="log-linear (shallow) fusion or linear interpolation of probabilities")
    p.add_argument("--metric", default="METEOR", help="coco metric to maximise (default METEOR)")
    p.add_argument("--features", metavar="STORE", help="feature store folder (default: beside the manifest)")
    p.add_argument("--beam", dest="beam_size", type=int, metavar="K", help="beam size (default: the run's)")
    p.add_argument("--batch-size", type=int, metavar="B", help="videos decoded together")
    p.add_argument("--out", metavar="FILE", help="result JSON (default RUN/tune/lm_<mode>.json)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Tune and print the choice."""
    from fusion.tuning import tune_lm_weight

    result = tune_lm_weight(args.run_path, args.lm, args.alphas, mode=args.mode, manifest=args.manifest,
                            split=args.split, metric=args.metric, features=args.features, out=args.out,
                            device=args.device, beam_size=args.beam_size, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    for alpha, scores in result.scores.items():
        mark = "  <- best" if float(alpha) == result.best_alpha else ""
        print(f"alpha {float(alpha):<6g} {result.metric} {scores[result.metric]:.4f}{mark}")
    print(f"chosen alpha {result.best_alpha:g} ({result.mode}, {result.split}, {result.n_videos} videos); wrote {result.out}")
    print(result.command)
    return 0
