"""The ``fusion`` command line: a thin layer over the Python API.

Each sub-command lives in ``fusion/commands/<name>.py`` and exposes
``register(subparsers) -> None``; the parser it adds sets ``func(args) -> int``.
No logic lives here: parse, call one API function, print. A :class:`FusionError`
becomes one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from fusion.distributed import run_command
from fusion.errors import FusionError

# Sub-command modules, in the order ``fusion --help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "tags",
    "zeroshot",
    "extract",
    "import_features",
    "data",
    "train",
    "evaluate",
    "score",
    "caption",
    "lm",
    "tune",
    "ablate",
    "verifier",
    "serve",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every sub-command of :data:`COMMAND_MODULES`."""
    parser = argparse.ArgumentParser(
        prog="fusion",
        description="Multimodal video description: SoundNet + frame CNN features, "
        "S2VT captioner, beam search fusing a language model and an audio-noun verifier.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"fusion.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fusion`` console script. Returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # the stages a command runs before its work (what it extracts, and where) are always shown
    logging.getLogger("fusion.stages").setLevel(min(level, logging.INFO))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return run_command(args.func, args, args.command)  # one process, or one rank under torchrun
    except FusionError as err:
        print(f"fusion {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"fusion {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
