"""``fusion serve [--runs DIR] [--model RUN] [--host 127.0.0.1] [--port 7860]``: the web page."""

from __future__ import annotations

import argparse
import logging

from fusion.errors import ConfigError
from fusion.serve.service import DEFAULT_MAX_UPLOAD_MB

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` sub-command."""
    p = subparsers.add_parser(
        "serve",
        help="web page: caption a video and see why; compare runs",
        description="Start a local web page (Gradio) to caption uploaded or example clips with a trained run: the "
        "video, its sampled frames, what SoundNet hears and the frame CNN sees, the n-best captions with each "
        "scorer's share and the verifier's evidence per audible noun, sliders that re-decode at once. A second "
        "tab compares the runs under --runs (metrics, training curves, ablations, decode configs). Binds "
        "127.0.0.1 unless --host says otherwise.",
    )
    p.add_argument("--runs", default="runs", metavar="DIR", help="folder holding run folders (default runs)")
    p.add_argument("--model", metavar="RUN", help="run selected first (default: the first run under --runs)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                   help=f"largest upload accepted (default {DEFAULT_MAX_UPLOAD_MB})")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch CPU threads (default 1: the fastest measured on 2 shared cores, "
                   "results/bench_serve.md; raise it on a machine of its own)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from fusion.commands.evaluate import apply_threads
    from fusion.serve.server import serve

    if not 0 <= args.port <= 65535:  # the socket layer would raise OverflowError
        raise ConfigError(f"--port {args.port}: a TCP port is 0-65535; pick a free one, e.g. --port 7860")
    apply_threads(args)
    if not getattr(args, "verbose", 0):
        logging.getLogger("libav").setLevel(logging.CRITICAL)
    serve(args.runs, args.model, args.host, args.port, device=args.device, max_upload_mb=args.max_upload_mb)
    return 0
