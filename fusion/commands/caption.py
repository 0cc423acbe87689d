"""``fusion caption VIDEO... --model RUN_OR_CHECKPOINT [--beam K] [--nbest N] [--json] [--explain]``.

``fusion caption --features STORE --id ID [--id ID2 ...] --model RUN`` captions stored feature
records instead: the way to caption with a run trained on imported features, which fusion
cannot compute from a file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

from fusion.commands.evaluate import add_decode_arguments, apply_threads, decode_overrides

if TYPE_CHECKING:
    from fusion.pipeline import CaptionResult

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``caption`` sub-command."""
    parser = subparsers.add_parser(
        "caption",
        help="caption video files with a trained run",
        description="Caption raw video files: features are extracted on the fly with the encoders the "
        "checkpoint names, then the batched beam search fuses the caption model with the optional "
        "language model (--lm) and audio-noun verifier (--audio-weight). A file that cannot be read "
        "gets one error line; the others are captioned; the exit status is then 1.",
    )
    parser.add_argument("videos", nargs="*", metavar="VIDEO", help="video files")
    parser.add_argument("--features", metavar="STORE", default=None,
                        help="caption records of this feature store instead of files (with --id; a trained run)")
    parser.add_argument("--id", dest="ids", action="append", default=[], metavar="ID",
                        help="a record of --features STORE to caption (repeatable)")
    parser.add_argument("--model", metavar="RUN_OR_CHECKPOINT",
                        help="a zero-shot model folder (`fusion zeroshot build --out runs/zeroshot`), a run folder "
                             "or a checkpoint")
    parser.add_argument("--nbest", type=int, default=None, metavar="N", help="captions per video (<= beam size)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per video (JSON Lines)")
    parser.add_argument("--explain", action="store_true",
                   help="show the per-scorer scores of the runner-up captions and the audio evidence for nouns")
    parser.add_argument("--mode", choices=("consensus", "fused"), default=None,
                        help="zero-shot model only: pick the consensus caption of the nearest corpus clips "
                             "(consensus) or compose one word by word with the caption LM (fused); default the model's")
    parser.add_argument("--neighbours", type=int, default=None, metavar="K",
                        help="zero-shot model, consensus mode: how many corpus clips vote (default the model's)")
    add_decode_arguments(parser)
    parser.set_defaults(func=run)


def _print_text(result: CaptionResult, explain: bool, explanation: dict[str, Any] | None) -> None:
    print(f"{result.path}: {result.caption}")
    ranked = list(enumerate(result.hypotheses, start=1))
    for rank, hyp in ranked if explain else ranked[1:]:  # --explain: the winner's breakdown too
        parts = ", ".join(f"{name} {value:+.3f}" for name, value in hyp.weighted_scores().items())
        print(f"  {rank}. {hyp.words}  (score {hyp.score:.3f}; {parts})")
    if explain and explanation is not None:
        if explanation.get("kind") == "zeroshot":
            from fusion.zeroshot.explain import format_explanation
        else:
            from fusion.verifier import format_explanation

        print("  " + format_explanation(explanation).replace("\n", "\n  "))
    if result.ood is not None and result.ood.get("warning"):
        print(f"  {result.ood['warning']}")  # one line: the clip is unlike the training data
    elif result.ood is not None:
        distances = ", ".join(f"{m} {d:.2f} (threshold {result.ood['threshold'][m]:.2f})"
                              for m, d in result.ood["distance"].items() if d is not None)
        print(f"  distance from the training data: {distances}")


def check_inputs(args: argparse.Namespace) -> None:
    """Exactly one of VIDEO files or ``--features STORE --id ID``.

    Raises:
        ConfigError: neither, both, or one half of ``--features`` / ``--id``.
    """
    from fusion.errors import ConfigError

    if args.features and args.videos:
        raise ConfigError("give either VIDEO files or --features STORE --id ID, not both")
    if args.features and not args.ids:
        raise ConfigError(f"--features {args.features}: name the records to caption with --id ID")
    if args.ids and not args.features:
        raise ConfigError("--id needs --features STORE (the feature store holding the records)")
    if not args.features and not args.videos:
        raise ConfigError("nothing to caption: give VIDEO files, or --features STORE --id ID")


def stored_or_files(pipeline: Any, args: argparse.Namespace, options: Any) -> list[CaptionResult]:
    """The results of ``--features STORE --id ID`` (a trained run's pipeline) or of the VIDEO files.

    Raises:
        ConfigError: ``--features`` with a zero-shot model, which reads no feature store.
    """
    from fusion.errors import ConfigError

    if not args.features:
        return pipeline.caption(args.videos, options=options)
    if not hasattr(pipeline, "caption_stored"):
        raise ConfigError(f"--features: {args.model} is a zero-shot model, it captions files only; "
                          "give --model a trained run")
    return pipeline.caption_stored(args.features, args.ids, options=options)


def run(args: argparse.Namespace) -> int:
    """Caption every file; one error line per unreadable file; exit 1 if any failed."""
    from fusion.errors import ConfigError
    from fusion.runcard import describe_training
    from fusion.zeroshot.config import is_zeroshot_folder
    from fusion.zeroshot.pipeline import open_pipeline

    apply_threads(args)
    if not getattr(args, "verbose", 0):  # FFmpeg's own log lines would repeat the one error line per file
        logging.getLogger("libav").setLevel(logging.CRITICAL)
    check_inputs(args)
    zeroshot_only = {k: v for k in ("mode", "neighbours") if (v := getattr(args, k, None)) is not None}
    if zeroshot_only and args.model is not None and not is_zeroshot_folder(args.model):
        raise ConfigError(f"--{next(iter(zeroshot_only))} applies to a zero-shot model only; {args.model} is not one "
                          "(no zeroshot.json): drop the option, or give --model a `fusion zeroshot build` folder")
    pipeline = open_pipeline(args.model, device=args.device, **decode_overrides(args), **zeroshot_only)
    options = pipeline.options
    if args.explain and args.nbest is None:  # runner-ups to compare with, as many as the beam holds
        options = dataclasses.replace(options, nbest=min(3, options.beam_size))
    failed = captioned = 0
    for result in stored_or_files(pipeline, args, options):
        captioned += result.error is None
        if result.error is not None:
            failed += 1
            print(f"fusion caption: error: {result.error}", file=sys.stderr)
            if args.json:
                print(json.dumps(result.to_dict()))
            continue
        # text output lists the runner-ups with their weighted scores itself
        explanation = pipeline.explain(result, max_runners_up=4 if args.json else 0) if args.explain else None
        if args.json:
            out = result.to_dict()
            if args.explain:
                out["explanation"] = explanation
            if pipeline.knowledge.card is not None:
                out["trained_on"] = describe_training(pipeline.knowledge.card)
            print(json.dumps(out))
        else:
            _print_text(result, args.explain, explanation)
    if not args.json and pipeline.knowledge.card is not None and captioned:  # not when every file failed
        card = pipeline.knowledge.card
        lead = "" if (card or {}).get("summary") else "the model was trained on "  # a zero-shot card says what it learned from
        print(f"({lead}{describe_training(card)})")
    return 1 if failed else 0
