"""Progress bars that do not flood a log: ``tqdm`` on a terminal, a line a minute in a file.

``tqdm`` redraws up to ten times a second; written to a file (``make demo > demo.log``, a
batch job's log) every redraw stays, and a ten-minute demo left a 140 KB log of bars. When
the bar's stream is not a terminal, :func:`progress_bar` redraws at most once a minute (and
at the end), in ASCII, so a log keeps the figures without the flood.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

LOG_INTERVAL_S = 60.0  # the most a bar redraws into a file that is not a terminal


def progress_bar(*args: Any, **kwargs: Any) -> tqdm:
    """``tqdm(*args, **kwargs)``; when its stream (``file``, default stderr) is not a terminal it
    redraws every :data:`LOG_INTERVAL_S` seconds at most, in ASCII. Explicit arguments win."""
    stream = kwargs.get("file") or sys.stderr
    isatty = getattr(stream, "isatty", None)
    if not (callable(isatty) and isatty()):
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
        kwargs.setdefault("maxinterval", max(LOG_INTERVAL_S, float(kwargs.get("mininterval", 0))))
        kwargs.setdefault("ascii", True)
    return tqdm(*args, **kwargs)
