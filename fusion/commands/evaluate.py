"""``fusion evaluate RUN_OR_CHECKPOINT [--manifest M] [--split test] [--beam K] [--json] ...``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from fusion.evaluation import METRICS


def add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    """Decode-time options shared by ``evaluate`` and ``caption`` (None = the run's setting)."""
    g = parser.add_argument_group("decoding (defaults: the run's decode config)")
    g.add_argument("--beam", dest="beam_size", type=int, metavar="K", help="beam size")
    g.add_argument("--max-len", type=int, metavar="N", help="most words per caption")
    g.add_argument("--min-len", type=int, metavar="N", help="fewest words per caption")
    g.add_argument("--length-weight", type=float, metavar="W", help="weight of the per-token length bonus")
    g.add_argument("--no-repeat-ngram", dest="no_repeat_ngram_size", type=int, metavar="N",
                   help="ban repeated n-grams of this size")
    g.add_argument("--lm", metavar="PATH", help="language model for late fusion (`fusion lm train` folder or HF model)")
    g.add_argument("--lm-weight", type=float, metavar="ALPHA", help="weight alpha of the language model")
    g.add_argument("--lm-mode", choices=("loglinear", "linear"),
                   help="late fusion form: log-linear (shallow fusion, default) or linear interpolation")
    g.add_argument("--audio-weight", type=float, metavar="BETA", help="weight beta of the audio-noun verifier")
    g.add_argument("--verifier", metavar="FILE", help="trained audio-noun verifier (default: zero-shot evidence)")
    g.add_argument("--batch-size", type=int, metavar="B", help="videos decoded together (default 64)")
    g.add_argument("--device", default="cpu", help="torch device (default cpu)")
    g.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: torch's; 1 is fastest for one video on a busy machine)")


def decode_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """DecodeOptions overrides from parsed arguments (None = keep the run's)."""
    names = ("beam_size", "max_len", "min_len", "length_weight", "no_repeat_ngram_size", "lm", "lm_weight",
             "lm_mode", "audio_weight", "verifier", "batch_size", "nbest")
    return {name: getattr(args, name, None) for name in names}


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's intra-op CPU threads when ``--threads`` is given."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` sub-command."""
    p = subparsers.add_parser(
        "evaluate",
        help="caption a manifest split with a trained run and score it (BLEU, METEOR, ROUGE-L, CIDEr)",
        description="Decode a manifest split with a trained run (features extracted and cached as for "
        "training), score it with coco-caption (SPICE left out: it cannot run offline) and, on the "
        "audio-visual benchmark, sound/visual accuracy. Writes predictions.json, per_video.json, "
        "nbest.jsonl and metrics.json to RUN/eval/<split>/ (or --out).",
    )
    p.add_argument("run_path", metavar="RUN_OR_CHECKPOINT", help="run folder, checkpoint folder or model.safetensors")
    p.add_argument("--manifest", metavar="M", help="manifest to evaluate on (default: the run's)")
    p.add_argument("--split", default="test", help="split to decode (default test)")
    p.add_argument("--features", metavar="STORE", help="feature store folder (default: beside the manifest)")
    p.add_argument("--out", metavar="DIR", help="output folder (default RUN/eval/<split>)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    add_decode_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the metrics."""
    from fusion.pipeline import evaluate_run

    apply_threads(args)
    metrics = evaluate_run(args.run_path, manifest=args.manifest, split=args.split, out_dir=args.out,
                           features=args.features, device=args.device, **decode_overrides(args))
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    for name in METRICS:
        print(f"{name:18s} {metrics[name]:.4f}")
    for name in ("sound_accuracy", "visual_accuracy", "false_sound_rate"):
        if metrics.get(name) is not None:
            print(f"{name:18s} {metrics[name]:.4f}")
    print(f"{'videos':18s} {metrics['n_videos']} ({metrics['n_audio_absent']} without audio)")
    d = metrics["diagnostics"]
    print(f"{'diagnostics':18s} vocab {d['vocab_used']}, novel {d['novel_share']:.2f}, "
          f"unique {d['unique_share']:.2f}, mean length {d['mean_length']:.1f}")
    print(f"{'weights':18s} {metrics['weights']}")
    print(f"wrote {metrics['out_dir']}")
    for note in metrics.get("notes", []):
        print(f"note: {note}")
    return 0
