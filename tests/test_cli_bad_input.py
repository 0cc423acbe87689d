"""The CLI on broken media: one stderr line per bad file naming it, non-zero exit, never a traceback.

Runs the real ``fusion`` sub-commands (``tags``, ``extract``, ``caption``) in subprocesses on
the broken-file corpus of ``tests/mediafactory.py``. Each command gets the whole corpus in one
call (so the test stays fast on 2 cores) plus single-file calls for the inputs that are
rejected before any decoding (a missing path, a folder).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import REPO as REPO_ROOT
from tests.mediafactory import make_broken_corpus, make_video

# Inputs a command may reject as a whole before decoding (a missing path, a folder).
WHOLE_CALL_KINDS = ("missing", "directory")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_broken_corpus(tmp_path_factory.mktemp("broken"))


def fusion(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fusion", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=600)


def assert_one_line_per_file(proc: subprocess.CompletedProcess, files: list[Path]) -> None:
    """Non-zero exit, no traceback, and exactly one stderr line per file, naming it."""
    report = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode != 0, report
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, report
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == len(files), report
    for path in files:
        naming = [line for line in lines if str(path) in line]
        assert len(naming) == 1, f"{path}: {report}"


def command_args(command: str, run: Path | None, out: Path) -> list[str]:
    if command == "extract":
        return ["--out", str(out), "--set", "random_weights=true", "--set", "frames_per_clip=4"]
    if command == "caption":
        return ["--model", str(run)]
    return ["--frames", "4"]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["tags", "extract", "caption"])
def test_cli_reports_each_broken_file_on_one_line(command: str, corpus: dict[str, Path], tmp_path: Path,
                                                  request: pytest.FixtureRequest) -> None:
    run = request.getfixturevalue("tiny_run")["run"] if command == "caption" else None
    extra = command_args(command, run, tmp_path / "store")
    files = [path for kind, path in corpus.items() if kind not in WHOLE_CALL_KINDS]
    assert_one_line_per_file(fusion(command, *map(str, files), *extra), files)
    for kind in WHOLE_CALL_KINDS:
        path = corpus[kind]
        assert_one_line_per_file(fusion(command, str(path), *extra), [path])


@pytest.mark.slow
@pytest.mark.parametrize("command", ["tags", "extract", "caption"])
def test_cli_mixed_good_and_bad_files(command: str, corpus: dict[str, Path], tmp_path: Path,
                                      request: pytest.FixtureRequest) -> None:
    """A good file beside a bad one: the good one is processed, the bad one gets its one line."""
    run = request.getfixturevalue("tiny_run")["run"] if command == "caption" else None
    good = make_video(tmp_path / "good.mp4", seconds=1, fps=8)
    bad = corpus["text_as_mp4"]
    proc = fusion(command, str(good), str(bad), *command_args(command, run, tmp_path / "store"))
    assert_one_line_per_file(proc, [bad])
    assert str(good) not in proc.stderr
