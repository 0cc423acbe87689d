"""``fusion tune RUN --lm LM [--manifest M] [--split val] [--alphas A ...] [--betas B ...] [--mode loglinear|linear]``.

Tunes the late-fusion weight alpha of a language model on validation captions (with --betas,
alpha and the audio-noun verifier's weight beta together, the whole decoder): decodes the
split once per grid point, scores it with coco-caption, prints the grid, writes the choice into
the run's config.yaml decode section (lm, lm_weight, lm_mode, and audio_weight with --betas;
what evaluate, caption and ablate then use) and every point's scores to RUN/tune/lm_<mode>.json
or --out. --dry-run only reports the choice.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from fusion.commands.evaluate import add_setting_argument
from fusion.decoding.registry import setting
from fusion.tuning import DEFAULT_ALPHAS, GUARDS, format_grid


def register(subparsers: Any) -> None:
    """Add the ``tune`` sub-command."""
    parser = subparsers.add_parser("tune", help="tune the language-model weight alpha on validation data",
                                   description=__doc__.split("\n\n")[1])
    parser.add_argument("run_path", metavar="RUN", help="captioner run folder or checkpoint")
    parser.add_argument("--lm", required=True, help="LM: `fusion lm train` folder, Hugging Face folder or hub id")
    parser.add_argument("--manifest", metavar="M", help="manifest to tune on (default: the run's)")
    parser.add_argument("--split", default="val", help="split to decode (default val; never tune on test)")
    parser.add_argument("--alphas", type=float, nargs="+", default=list(DEFAULT_ALPHAS), metavar="A",
                        help=f"weights to try; 0 (no LM) is always added (default {' '.join(map(str, DEFAULT_ALPHAS))})")
    parser.add_argument("--betas", type=float, nargs="+", metavar="B",
                        help="verifier weights to try with every alpha, chosen together (default: keep the run's)")
    for name in ("audio_penalty", "audio_absent_penalty"):  # fixed while the grid is decoded (default: the run's)
        add_setting_argument(parser, setting(name))
    parser.add_argument("--guard", choices=GUARDS, metavar="RATE",
                        help="on the audio-visual benchmark: never choose a point whose RATE (false_sound_rate) exceeds "
                        "the run's decoder before tuning, without the LM")
    parser.add_argument("--mode", default="loglinear", choices=setting("lm_mode").choices,
                        help="log-linear (shallow) fusion or linear interpolation of probabilities")
    parser.add_argument("--metric", default="METEOR", help="coco metric to maximise (default METEOR)")
    parser.add_argument("--features", metavar="STORE", help="feature store folder (default: beside the manifest)")
    parser.add_argument("--beam", dest="beam_size", type=int, metavar="K", help="beam size (default: the run's)")
    parser.add_argument("--batch-size", type=int, metavar="B", help="videos decoded together")
    parser.add_argument("--out", metavar="FILE", help="result JSON (default RUN/tune/lm_<mode>.json)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--dry-run", action="store_true",
                        help="report the choice without writing it into the run's config.yaml")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Tune and print the choice."""
    from fusion.errors import ConfigError
    from fusion.tuning import tune_lm_weight
    from fusion.zeroshot.config import is_zeroshot_folder

    if is_zeroshot_folder(args.run_path):
        raise ConfigError(f"{args.run_path} is a zero-shot model: choose its mode and weights with "
                          f"`fusion zeroshot tune {args.run_path}` (leave-one-out on real clips with captions)")

    result = tune_lm_weight(args.run_path, args.lm, args.alphas, mode=args.mode, manifest=args.manifest,
                            split=args.split, metric=args.metric, features=args.features, out=args.out,
                            device=args.device, beam_size=args.beam_size, batch_size=args.batch_size,
                            apply=not args.dry_run, betas=args.betas, audio_penalty=args.audio_penalty,
                            audio_absent_penalty=args.audio_absent_penalty, guard=args.guard)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    if result.best_beta is not None:
        print(format_grid(result, (result.metric, result.guard or "false_sound_rate")))
        reference = result.guard_reference
        guarded = f", {result.guard} at most {reference:.4f}" if result.guard and reference is not None else ""
        print(f"chosen alpha {result.best_alpha:g}, beta {result.best_beta:g} ({result.mode}, {result.split}, "
              f"{result.n_videos} videos{guarded}); wrote {result.out}")
    else:
        for alpha, scores in result.scores.items():
            mark = "  <- best" if float(alpha) == result.best_alpha else ""
            print(f"alpha {float(alpha):<6g} {result.metric} {scores[result.metric]:.4f}{mark}")
        print(f"chosen alpha {result.best_alpha:g} ({result.mode}, {result.split}, {result.n_videos} videos); "
              f"wrote {result.out}")
    if result.config:
        written = ", ".join(f"decode.{key}={value:g}" if isinstance(value, float) else f"decode.{key}={value}"
                            for key, value in result.choice.items())  # every field written, penalties included
        print(f"wrote {written} into {result.config}: fusion evaluate / caption / ablate now decode with it")
    else:
        print("not applied (--dry-run); to use it:")
    print(result.command)
    return 0
