"""``fusion verifier train|evidence``: the audio-noun verifier's learned evidence."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``verifier`` sub-command group (same as ``python -m fusion.verifier``)."""
    from fusion.verifier.__main__ import add_subcommands

    parser = subparsers.add_parser(
        "verifier",
        help="train the audio-noun verifier on paired data, or print clips' audio evidence",
        description="The audio-noun verifier: `train` fits per-noun audio classifiers (calibrated on val) "
        "for `--audio-weight` decoding with `--verifier FILE`; `evidence` prints what the sound says.",
    )
    add_subcommands(parser)
