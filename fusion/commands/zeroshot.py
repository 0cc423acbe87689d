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
    tune = sub.add_parser("tune", help="choose a model folder's mode and weights again, on real clips with references",
                          description="Decode real clips with reference captions under the grid of both modes "
                          "(fusion.zeroshot.tune.GRID), choose by leave-one-out CIDEr-D and write the choice into "
                          "the folder (RUN/zeroshot.json, RUN/tune/leave_one_out.json). Default clips: the development "
                          "clips the build used (RUN/devclips.jsonl); --manifest tunes on your own.")
    tune.add_argument("run", metavar="RUN", help="a zero-shot model folder (fusion zeroshot build --out RUN)")
    tune.add_argument("--manifest", default=None,
                      help="JSON Lines manifest of real clips with captions (id, video, captions); default RUN/devclips.jsonl")
    tune.add_argument("--device", default="cpu", help="torch device (default cpu)")
    tune.add_argument("--json", action="store_true", help="print the choice as JSON")
    parser.set_defaults(func=run)


def run_tune(args: argparse.Namespace) -> int:
    """``fusion zeroshot tune RUN``: re-choose the folder's mode and weights by leave-one-out."""
    import hashlib

    from fusion.config import from_dict
    from fusion.errors import ConfigError, DataError
    from fusion.features import ExtractConfig
    from fusion.manifest import load_manifest
    from fusion.zeroshot.build import DevClip, dev_features_dir, extract_dev, tune_folder
    from fusion.zeroshot.config import ZeroShotFolder, is_zeroshot_folder

    out = Path(args.run)
    if not is_zeroshot_folder(out):
        raise ConfigError(f"{out}: not a zero-shot model folder (no zeroshot.json); build one with "
                          f"`fusion zeroshot build --out {out}`")
    manifest = Path(args.manifest) if args.manifest else out / "devclips.jsonl"
    if not manifest.is_file():
        raise DataError(f"{manifest}: manifest not found; give --manifest with real clips and their captions")
    clips = [DevClip(e.id, Path(e.video), list(e.captions)) for e in load_manifest(manifest) if e.captions]
    extract = ZeroShotFolder.load(out).extract
    store = dev_features_dir(out, from_dict(ExtractConfig, extract))
    if args.manifest:  # the user's own clips: their own store, so an id shared with a development clip cannot mix
        store = store.with_name(f"{store.name}-{hashlib.sha1(str(manifest.resolve()).encode()).hexdigest()[:8]}")
    records = extract_dev(clips, out, extract, progress=True, store_dir=store)
    tuned = tune_folder(out, clips, records, device=args.device)
    if args.json:
        print(json.dumps(tuned))
    else:
        print(f"chosen on {tuned['clips']} clips of {manifest} (leave-one-out CIDEr-D {tuned['held_out_cider']:.3f}): "
              f"{tuned['chosen']}; written to {out / 'zeroshot.json'}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Build the corpus (unless given), then the model folder; print a summary (``tune``: :func:`run_tune`)."""
    if args.action == "tune":
        return run_tune(args)
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
