"""`fusion extract` under torchrun (2 processes, Gloo) and with decode worker processes, against one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fusion.features import FeatureStore
from tests.builders import assert_same_records
from tests.distributed_launch import fusion_command, run, torchrun_command
from tests.mediafactory import make_video

pytest.importorskip("fusion.media")

NUM_CLIPS = 7
SETTINGS = ["--set", "random_weights=true", "--set", "frames_per_clip=4", "--set", "batch_size=4"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    for i in range(NUM_CLIPS):
        make_video(folder / f"clip{i:02d}.mp4", seconds=1.0 + 0.1 * i, audio="tone" if i % 3 else None)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    return folder


@pytest.fixture(scope="module")
def reference(clips: Path, tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    """One process, decoding in threads (the default)."""
    out = tmp_path_factory.mktemp("ref") / "store"
    done = run(fusion_command("extract", *SETTINGS, clips, "--out", out, "--json"))
    assert done.returncode == 1, done.stderr  # the broken file
    assert json.loads(done.stdout)["done"] == NUM_CLIPS
    return FeatureStore(out)


@pytest.mark.slow  # torchrun
def test_two_ranks_fill_one_store_equal_to_one_process(clips: Path, reference: FeatureStore, tmp_path: Path) -> None:
    out = tmp_path / "store"
    done = run(torchrun_command(2, "extract", *SETTINGS, clips, "--out", out, "--json"))
    assert done.returncode != 0  # the broken file fails the job, as in one process
    summary = json.loads(done.stdout)  # rank 0 alone prints, after both ranks finished
    assert list(summary) == ["done", "skipped", "repaired", "failed", "store"]
    assert summary["done"] == NUM_CLIPS and summary["skipped"] == 0 and summary["store"] == str(out)
    assert [Path(f["file"]).name for f in summary["failed"]] == ["broken.mp4"]
    assert_same_records(FeatureStore(out), reference)
    again = run(torchrun_command(2, "extract", *SETTINGS, clips, "--out", out, "--json"))  # resumable
    summary = json.loads(again.stdout)
    assert summary["done"] == 0 and summary["skipped"] == NUM_CLIPS and len(summary["failed"]) == 1


def test_decode_worker_processes_give_the_same_records(clips: Path, reference: FeatureStore, tmp_path: Path) -> None:
    out = tmp_path / "store"
    done = run(fusion_command("extract", *SETTINGS, clips, "--out", out, "--workers", "2", "--json"))
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    assert summary["done"] == NUM_CLIPS and [Path(f["file"]).name for f in summary["failed"]] == ["broken.mp4"]
    assert_same_records(FeatureStore(out), reference)
