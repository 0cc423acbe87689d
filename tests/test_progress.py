"""Progress bars: as usual on a terminal, a redraw a minute at most in a log file."""

from __future__ import annotations

import io
import time

from tqdm import tqdm

from fusion.progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _draws(make, stream: io.StringIO) -> int:
    for _ in make(range(40), file=stream, desc="work"):
        time.sleep(0.01)  # 0.4 s: plain tqdm redraws every 0.1 s
    return stream.getvalue().count("\r")


def test_a_log_file_gets_the_start_and_the_end_only() -> None:
    assert _draws(tqdm, io.StringIO()) >= 3  # what flooded make demo's log
    log = io.StringIO()
    assert _draws(progress_bar, log) <= 2 and "40/40" in log.getvalue()
    assert _draws(progress_bar, _Terminal()) >= 3  # a terminal keeps its live bar


def test_explicit_arguments_win() -> None:
    bar = progress_bar(range(3), file=io.StringIO(), mininterval=0.5)
    assert bar.mininterval == 0.5 and bar.maxinterval == 60.0
    bar.close()
