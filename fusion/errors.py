"""Project exceptions.

Every error a user can cause (a bad file, a bad config, missing weights, missing Java)
is a :class:`FusionError`. Its message says what went wrong and how to fix it, in one
line; the CLI prints it to stderr and exits non-zero, never with a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec

P = ParamSpec("P")


class FusionError(Exception):
    """Base class of all user-facing errors. ``str(err)`` is one line: what and the fix."""

    exit_code: int = 2


class MediaError(FusionError):
    """A media file cannot be read: missing, empty, truncated, not media, no usable stream."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ConfigError(FusionError):
    """A config key is unknown, has the wrong type, or a value is invalid."""


class WeightsError(FusionError):
    """Pretrained weights are missing or do not fit the model."""


class ManifestError(FusionError):
    """A manifest line or field is invalid."""


class DataError(FusionError):
    """A dataset, feature store or input list is unusable."""


class JavaError(FusionError):
    """Java is missing or failed (METEOR and the PTB tokenizer need it)."""


class CheckpointError(FusionError):
    """A run directory or checkpoint is missing or unreadable."""


def error_text(err: BaseException) -> str:
    """One line for a failure record or a summary; project errors already are one line."""
    if isinstance(err, FusionError):
        return str(err)
    return f"{type(err).__name__}: {err}".splitlines()[0]


def script_main(prog: str) -> Callable[[Callable[P, int]], Callable[P, int]]:
    """Decorate the ``main()`` of a ``python -m`` script: a :class:`FusionError` raised anywhere in it
    becomes one line ``PROG: error: ...`` on stderr and the error's exit code, as ``fusion`` does.

    Args:
        prog: how the script is invoked (``data_prep.msvd``), the line's prefix.
    """

    def wrap(main: Callable[P, int]) -> Callable[P, int]:
        @functools.wraps(main)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except FusionError as err:
                print(f"{prog}: error: {err}", file=sys.stderr)
                return err.exit_code

        return guarded

    return wrap
