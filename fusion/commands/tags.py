"""``fusion tags MEDIA... [--top K] [--frames N] [--json] [--audio-encoder NAME[=FILE]]...``: what the audio
encoders hear (per label space), what the frame CNN sees."""

from __future__ import annotations

import argparse
import json
import sys

from fusion.errors import MediaError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``tags`` sub-command."""
    parser = subparsers.add_parser(
        "tags",
        help="top sound labels (per audio encoder label space) and picture objects (frame CNN) of media files",
        description="For each video or audio file: the classes of every label space the audio encoders know "
        "(SoundNet: Places2 scenes and ImageNet objects; YAMNet, by default where its weights are found: "
        "AudioSet) and the ImageNet objects the frame CNN sees "
        "(posteriors averaged over time / sampled frames). "
        "A file that cannot be read is reported on stderr and skipped; the exit status is then 1.",
    )
    parser.add_argument("media", nargs="+", metavar="MEDIA", help="video or audio files")
    parser.add_argument("--top", type=int, default=5, metavar="K", help="labels per list (default 5)")
    parser.add_argument("--frames", type=int, default=16, metavar="N", help="frames sampled per video (default 16)")
    parser.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    parser.add_argument("--frame-encoder", default="efficientnet_lite0", metavar="NAME",
                        help="efficientnet_lite0 (default), vgg16_fc7, resnet50 or timm:<arch>")
    parser.add_argument("--frame-weights", metavar="FILE", help="weights of the frame CNN (default: packaged)")
    parser.add_argument("--audio-encoder", action="append", metavar="NAME[=FILE]", dest="audio_encoders",
                        help="an audio encoder whose label spaces to show, with its weights file if not the "
                        "default; repeat for several (default: soundnet8, and yamnet where its weights are found)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Tag every file; bad files become one stderr line each. Returns 1 if any failed."""
    from fusion.tags import Tagger, default_audio_encoders, format_tags

    encoders: dict[str, str | None] = {}
    for item in args.audio_encoders or []:
        name, _, path = item.partition("=")
        encoders[name] = path or None
    encoders = encoders or default_audio_encoders()
    tagger = Tagger(top_k=args.top, num_frames=args.frames, audio_encoders=encoders,
                    frame_encoder=args.frame_encoder, frame_weights=args.frame_weights)
    failed = 0
    for index, path in enumerate(args.media):
        try:
            result = tagger.tag(path)
        except MediaError as err:
            failed += 1
            print(f"fusion tags: error: {err}", file=sys.stderr)
            continue
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            print(("\n" if index else "") + format_tags(result), flush=True)
    return 1 if failed else 0
