"""`fusion evaluate` and `fusion ablate` under torchrun (2 processes, Gloo): exactly one process's results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.builders import make_store_run
from tests.distributed_launch import fusion_command, run, torchrun_command

pytestmark = [pytest.mark.java, pytest.mark.slow]  # torchrun


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random run with an audio stream; its test split has 8 videos."""
    return make_store_run(tmp_path_factory.mktemp("eval"), with_audio=True)


def read(folder: Path, name: str) -> str:
    return (folder / name).read_text()


def test_two_processes_evaluate_exactly_as_one(tiny_run: Path, tmp_path: Path, java_available: bool) -> None:
    # batch 3: batches of 3, 3, 2 videos; rank 0 decodes the first and the last, rank 1 the second
    args = ["evaluate", tiny_run, "--split", "test", "--beam", "2", "--batch-size", "3", "--json"]
    one = run(fusion_command(*args, "--out", tmp_path / "one"))
    two = run(torchrun_command(2, *args, "--out", tmp_path / "two"))
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    m1, m2 = json.loads(one.stdout), json.loads(two.stdout)  # rank 0 alone prints
    assert m1.pop("out_dir") != m2.pop("out_dir")
    assert m1 == m2 and m1["n_videos"] == 8
    for name in ("predictions.json", "per_video.json", "nbest.jsonl"):
        assert read(tmp_path / "one", name) == read(tmp_path / "two", name), name


def test_two_processes_ablate_exactly_as_one(tiny_run: Path, tmp_path: Path, java_available: bool) -> None:
    args = ["ablate", tiny_run, "--conditions", "full", "audio_absent", "audio_shuffled", "--bootstrap", "100",
            "--batch-size", "3", "--json"]
    one = run(fusion_command(*args, "--out", tmp_path / "one"))
    two = run(torchrun_command(2, *args, "--out", tmp_path / "two"))
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert json.loads(one.stdout) == json.loads(two.stdout)
    for name in ("ablation.json", "predictions.json", "per_video.json"):
        assert read(tmp_path / "one", name) == read(tmp_path / "two", name), name
