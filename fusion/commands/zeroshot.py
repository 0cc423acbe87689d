"""``fusion zeroshot build --out runs/zeroshot``: the captioner that needs no video training."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``zeroshot`` sub-command."""
    parser = subparsers.add_parser(
        "zeroshot",
        help="build the zero-shot captioner (real caption text + ImageNet / SoundNet / AudioSet, no video training)",
        description="Build a captioner for real video without paired training data, from the MSVD + MSR-VTT "
        "train/val captions (minus the development clips) and what the frame CNN sees and the sound says, through "
        "the concept links. Default mode: the consensus caption of the corpus clips whose captions name what the "
        "clip shows and sounds like; fused mode: an LSTM caption LM fused in the beam search with that evidence. "
        "The real clips in the data folder calibrate its unfamiliarity warnings and choose its mode and weights "
        "(leave-one-out).",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    build = sub.add_parser("build", help="build a zero-shot model folder")
    build.add_argument("--out", default="runs/zeroshot", help="model folder to write (default runs/zeroshot)")
    build.add_argument("--data", default=None, help="the real data folder (default $FUSION_DATA_DIR)")
    build.add_argument("--corpus", default=None,
                       help="a caption corpus folder (python -m data_prep.caption_corpus); default: built into OUT/corpus")
    build.add_argument("--lm-config", default="configs/zeroshot/lm.yaml", help="LMConfig YAML of the caption LM")
    build.add_argument("--sentences", type=int, default=40000,
                       help="train the LM on a seeded sample of this many captions (default 40000; 0 = all)")
    build.add_argument("--no-dev", action="store_true",
                       help="skip the development clips (no calibration, no tuning: the default mode and weights)")
    build.add_argument("--no-tune", action="store_true", help="calibrate on the development clips but keep the default mode and weights")
    build.add_argument("--device", default="cpu", help="torch device (default cpu)")
    build.add_argument("--json", action="store_true", help="print the build summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the corpus (unless given), then the model folder; print a summary."""
    from data_prep.caption_corpus import build_corpus, write_corpus
    from data_prep.devclips import build_devclips
    from fusion.config import load_config
    from fusion.models.lm import LMConfig
    from fusion.zeroshot.build import DevClip, build_zeroshot

    out = Path(args.out)
    lm_config = load_config(LMConfig, args.lm_config)
    corpus = Path(args.corpus) if args.corpus else out / "corpus"
    if not args.corpus:
        manifest = write_corpus(build_corpus(args.data), corpus)
        print(f"corpus: {manifest['total']['train']} train + {manifest['total']['val']} val captions -> {corpus}")
    dev: list[DevClip] = []
    if not args.no_dev:
        entries = build_devclips(out / "devclips.jsonl", args.data)
        dev = [DevClip(e.id, Path(e.video), list(e.captions)) for e in entries]
    summary = build_zeroshot(out, corpus, dev, lm_config=lm_config, sentences=args.sentences or None,
                             tune=not args.no_tune, device=args.device)
    if args.json:
        print(json.dumps(summary))
        return 0
    lm = summary["lm"]
    print(f"caption LM: {lm['train_sentences']} captions, vocabulary {lm['vocab_size']}, validation perplexity "
          f"{lm['val_perplexity']:.1f} ({lm['train_seconds']:.0f} s)")
    if "tuned" in summary:
        print(f"weights chosen on {len(dev)} real clips (leave-one-out CIDEr-D {summary['tuned']['held_out_cider']:.3f}): "
              f"{summary['tuned']['chosen']}")
    elif not dev:
        print("no development clips: default weights, no unfamiliarity calibration")
    print(f"wrote {out} in {summary['seconds']:.0f} s; caption a video with `fusion caption VIDEO --model {out}`")
    return 0
