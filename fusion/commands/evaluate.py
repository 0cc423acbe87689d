"""``fusion evaluate RUN_OR_CHECKPOINT [--manifest M] [--split test] [--beam K] [--json] ...``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from fusion.decoding.registry import scorer_settings
from fusion.decoding.spec import Setting
from fusion.evaluation import METRICS


def add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    """Decode options shared by ``evaluate``, ``caption`` and ``ablate``: each sets the DecodeConfig
    field of its ``dest`` (None = the run's ``config.yaml`` decode section, else the default)."""
    group = parser.add_argument_group("decoding (defaults: the run's config.yaml decode section)")
    group.add_argument("--beam", dest="beam_size", type=int, metavar="K", help="beam size")
    group.add_argument("--max-len", type=int, metavar="N", help="most words per caption")
    group.add_argument("--min-len", type=int, metavar="N", help="fewest words per caption")
    group.add_argument("--no-repeat-ngram", dest="no_repeat_ngram_size", type=int, metavar="N",
                       help="ban repeated n-grams of this size (default 5; 0 = off)")
    group.add_argument("--allow-immediate-repeat", dest="no_immediate_repeat", action="store_false", default=None,
                       help="let a word follow itself (banned by default)")
    group.add_argument("--no-immediate-repeat", dest="no_immediate_repeat", action="store_true", default=None,
                       help="ban a word following itself (for a run whose config turns it off)")
    group.add_argument("--allow-sound-without-audio", dest="no_sound_without_audio", action="store_false",
                       default=None, help="let a clip without an audio stream get words that say something is heard")
    group.add_argument("--allow-repeated-bigrams", dest="no_repeat_bigram", action="store_false", default=None,
                       help="let a caption repeat a word pair (default: only pairs of function words, 'to the')")
    group.add_argument("--allow-dangling-end", dest="no_dangling_end", action="store_false", default=None,
                       help="let a caption end on an article, preposition or conjunction")
    for setting in scorer_settings():  # every registered scorer's settings (fusion/decoding/registry.py)
        add_setting_argument(group, setting)
    group.add_argument("--batch-size", type=int, metavar="B", help="videos decoded together (default 64)")
    group.add_argument("--device", default="cpu", help="torch device (default cpu)")
    group.add_argument("--threads", type=int, metavar="N",
                       help="torch CPU threads (default: torch's; 1 is fastest for one video on a busy machine)")


def add_setting_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup, setting: Setting) -> None:
    """The option of one scorer setting (``--audio-weight BETA``), its ``dest`` the DecodeConfig field."""
    if setting.type is bool:
        parser.add_argument(setting.flag, dest=setting.name, action=argparse.BooleanOptionalAction, default=None,
                            help=setting.help)
        return
    kind = float if setting.type is float else int if setting.type is int else None
    parser.add_argument(setting.flag, dest=setting.name, type=kind, metavar=None if setting.choices else setting.metavar,
                        choices=setting.choices or None, help=setting.help)


def decode_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The command line's DecodeConfig overrides: every field the parser has (None = keep the run's)."""
    from fusion.decoding.config import decode_fields

    return {name: getattr(args, name) for name in decode_fields() if getattr(args, name, None) is not None}


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's intra-op CPU threads when ``--threads`` is given."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` sub-command."""
    parser = subparsers.add_parser(
        "evaluate",
        help="caption a manifest split with a trained run and score it (BLEU, METEOR, ROUGE-L, CIDEr)",
        description="Decode a manifest split with a trained run (features extracted and cached as for "
        "training, before decoding), score it with coco-caption (SPICE left out: it cannot run offline) and, on the "
        "audio-visual benchmark, sound/visual accuracy. Writes predictions.json, per_video.json, "
        "nbest.jsonl and metrics.json (with the effective decode configuration) to RUN/eval/<split>/ "
        "(or --out). Decode settings: defaults < the run's config.yaml decode section < these options.",
    )
    parser.add_argument("run_path", metavar="RUN_OR_CHECKPOINT", help="run folder, checkpoint folder or model.safetensors")
    parser.add_argument("--manifest", metavar="M", help="manifest to evaluate on (default: the run's)")
    parser.add_argument("--split", default="test", help="split to decode (default test)")
    parser.add_argument("--features", metavar="STORE", help="feature store folder (default: beside the manifest)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default RUN/eval/<split>)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument("--strict", action="store_true",
                        help="stop when a video cannot be read (default: skip it, count it in metrics.json's skipped)")
    add_decode_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the metrics."""
    from fusion.pipeline import evaluate_run

    apply_threads(args)
    # load the run and resolve the decode options (fail fast), then extract missing features (visible), decode
    metrics = evaluate_run(args.run_path, manifest=args.manifest, split=args.split, out_dir=args.out,
                           features=args.features, device=args.device, strict=args.strict, **decode_overrides(args))
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    for name in METRICS:
        print(f"{name:18s} {metrics[name]:.4f}")
    for name in ("sound_accuracy", "visual_accuracy", "false_sound_rate"):
        if metrics.get(name) is not None:
            print(f"{name:18s} {metrics[name]:.4f}")
    print(f"{'videos':18s} {metrics['n_videos']} ({metrics['n_audio_absent']} without audio)")
    if metrics.get("n_skipped"):
        print(f"{'skipped':18s} {metrics['n_skipped']} unreadable (metrics.json: skipped; --strict stops instead)")
    if metrics.get("n_unfamiliar") is not None:
        print(f"{'unfamiliar':18s} {metrics['n_unfamiliar']} (unlike the training data; per_video.json: each clip's ood)")
    diagnostics = metrics["diagnostics"]
    print(f"{'diagnostics':18s} vocab {diagnostics['vocab_used']}, novel {diagnostics['novel_share']:.2f}, "
          f"unique {diagnostics['unique_share']:.2f}, mean length {diagnostics['mean_length']:.1f}")
    print(f"{'weights':18s} {metrics['weights']}")
    decode = metrics["decode"]
    lm = f", lm {decode['lm']} ({decode['lm_mode']}, alpha {decode['lm_weight']:g})" if decode["lm"] else ""
    print(f"{'decode':18s} beam {decode['beam_size']}, max_len {decode['max_len']}, "
          f"audio_weight {decode['audio_weight']:g}{lm}")
    print(f"wrote {metrics['out_dir']}")
    for note in metrics.get("notes", []):
        print(f"note: {note}")
    return 0
