"""``fusion score PREDICTIONS REFERENCES [--json]``: coco-caption metrics for any captions."""

from __future__ import annotations

import argparse
import json

from fusion.captions_io import read_captions, read_predictions
from fusion.evaluation import METRICS, coco_metrics


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``score`` sub-command."""
    p = subparsers.add_parser(
        "score",
        help="BLEU-1..4, METEOR, ROUGE-L, CIDEr of predicted captions against references",
        description="Score predicted captions against references with coco-caption (pycocoevalcap: "
        "PTB tokenizer, BLEU-1..4, METEOR, ROUGE-L, CIDEr; SPICE is left out, it cannot run offline). "
        "Files: JSON ({id: caption} or [{\"id\", \"caption\"}]), JSON Lines, CSV (id and caption "
        "columns) or `id<TAB>caption` text; references may repeat an id.",
    )
    p.add_argument("predictions", help="one caption per id")
    p.add_argument("references", help="one or more reference captions per id")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--per-video", metavar="FILE", help="also write per-video scores (JSON) to FILE")
    p.add_argument("--ignore-missing", action="store_true",
                   help="score only the predicted ids when the references have more")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Read both files, score, print."""
    from fusion.io import atomic_write_json

    predictions = read_predictions(args.predictions)
    references = read_captions(args.references)
    if args.ignore_missing:
        references = {i: refs for i, refs in references.items() if i in predictions}
    result = coco_metrics(predictions, references)
    if args.per_video:
        atomic_write_json(args.per_video, result.per_video)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        for name in METRICS:
            print(f"{name:8s} {result.metrics[name]:.4f}")
        print(f"videos   {result.n_videos}")
        for note in result.notes:
            print(f"note: {note}")
    return 0
