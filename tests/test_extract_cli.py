"""`fusion extract` as a user runs it: subprocesses, SIGKILL mid-run, concurrent shards.

Every run uses seeded random-weight encoders (``--set random_weights=true``), so records of
separate processes are comparable bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fusion.errors import DataError
from fusion.features import ExtractConfig, FeatureStore
from tests.builders import REPO, SUBPROCESS_ENV as ENV, assert_same_records
from tests.mediafactory import make_video

pytest.importorskip("fusion.media")

NUM_CLIPS = 12
SETTINGS = ["--set", "random_weights=true", "--set", "frames_per_clip=6", "--set", "batch_size=6"]


def extract_cmd(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "fusion", "extract", *SETTINGS, *map(str, args)]  # later --set wins


def run_extract(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(extract_cmd(*args), capture_output=True, text=True, env=ENV, cwd=REPO, timeout=300)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    for i in range(NUM_CLIPS):
        make_video(folder / f"clip{i:02d}.mp4", seconds=1.0 + 0.1 * i, audio="tone" if i % 3 else None)
    return folder


@pytest.fixture(scope="module")
def reference(clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    """An uninterrupted single-process run over all clips."""
    out = tmp_path_factory.mktemp("ref") / "store"
    proc = run_extract(clip_dir, "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary == {"done": NUM_CLIPS, "skipped": 0, "repaired": 0, "failed": [], "store": str(out)}
    return FeatureStore(out)


def test_resume_after_sigkill_gives_the_same_records(clip_dir: Path, reference: FeatureStore, tmp_path: Path) -> None:
    out = tmp_path / "store"
    proc = subprocess.Popen(extract_cmd(clip_dir, "--out", out), env=ENV, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    finished = 0
    while time.monotonic() < deadline and proc.poll() is None:
        records = out / "records"
        finished = len([p for p in records.glob("*.npz")]) if records.is_dir() else 0
        if finished >= 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_with = len(FeatureStore(out).ids())
    assert 3 <= killed_with < NUM_CLIPS
    for video_id in FeatureStore(out).ids():  # every record there is whole
        assert FeatureStore(out)[video_id].frames.shape == (6, 1280)
    again = run_extract(clip_dir, "--out", out, "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["done"], summary["skipped"], summary["failed"]) == (NUM_CLIPS - killed_with, killed_with, [])
    assert_same_records(FeatureStore(out), reference)


def test_concurrent_shards_fill_one_store_exactly(clip_dir: Path, reference: FeatureStore, tmp_path: Path) -> None:
    out = tmp_path / "store"
    procs = [subprocess.Popen(extract_cmd(clip_dir, "--out", out, "--shard", f"{i}/2", "--json"), env=ENV, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    done = [json.loads(stdout)["done"] for stdout, _ in outputs]
    assert sum(done) == NUM_CLIPS and min(done) > 0
    assert_same_records(FeatureStore(out), reference)


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Run ``fusion extract`` in this process (same dispatcher as the console script)."""
    from fusion.cli import main

    code = main(["extract", *SETTINGS, *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_summary_lists_bad_files_and_exits_nonzero(
    clip_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    code, out, err = cli(capsys, clip_dir / "clip00.mp4", clip_dir / "clip01.mp4", bad, "--out", tmp_path / "s", "--json")
    assert code == 1
    summary = json.loads(out)
    assert list(summary) == ["done", "skipped", "repaired", "failed", "store"]
    assert summary["done"] == 2 and summary["skipped"] == 0 and summary["store"] == str(tmp_path / "s")
    assert [f["file"] for f in summary["failed"]] == [str(bad)] and summary["failed"][0]["error"]
    logged = [json.loads(line) for line in (tmp_path / "s" / "failures.jsonl").read_text().splitlines()]
    assert [entry["file"] for entry in logged] == [str(bad)]
    code, out, err = cli(capsys, clip_dir / "clip00.mp4", "--out", tmp_path / "s")  # human summary
    assert code == 0 and "0 extracted, 1 already there, 0 failed" in out


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_corrupt_record_is_named_on_load_and_re_extracted(
    clip_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    clips = [clip_dir / "clip00.mp4", clip_dir / "clip01.mp4"]
    code, _, err = cli(capsys, *clips, "--out", tmp_path / "s")
    assert code == 0, err
    original = FeatureStore(tmp_path / "s")["clip01"]
    path = tmp_path / "s" / "records" / "clip01.npz"
    data = bytearray(path.read_bytes())
    if damage == "truncate":  # a partial copy
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:  # one flipped byte inside an array: the zip still opens, the checksum does not match
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    store = FeatureStore(tmp_path / "s")
    assert store.verify("clip00") is None and store.verify("clip01") is not None
    with pytest.raises(DataError, match="clip01.npz: corrupt feature record .*fusion extract"):
        store["clip01"]
    code, out, err = cli(capsys, *clips, "--out", tmp_path / "s")
    assert code == 0 and "1 extracted, 1 already there, 1 corrupt record re-extracted, 0 failed" in out, out + err
    repaired = FeatureStore(tmp_path / "s")
    assert repaired.verify("clip01") is None
    np.testing.assert_array_equal(repaired["clip01"].frames, original.frames)  # same process, same sums


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--shard", "2/2"], "shard"),
        (["--set", "frames_per_clipp=3"], "frames_per_clipp"),
        (["--set", "frames_per_clip=0"], "frames_per_clip"),
        (["--config", "missing.yaml"], "missing.yaml"),
        (["--set", "audio_layer=conv9"], "audio_layer"),
    ],
)
def test_user_errors_are_one_line(
    clip_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], expected: str
) -> None:
    code, _, err = cli(capsys, clip_dir / "clip00.mp4", "--out", tmp_path / "s", *extra)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and expected in lines[0], err


def test_missing_input_and_config_mismatch_are_one_line(
    clip_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, tmp_path / "nope.mp4", "--out", tmp_path / "s")
    assert code == 2 and err.count("\n") == 1 and "nope.mp4" in err
    existing = FeatureStore(tmp_path / "old", ExtractConfig(frames_per_clip=6, random_weights=True))
    code, _, err = cli(capsys, clip_dir / "clip00.mp4", "--out", existing.path, "--set", "frames_per_clip=3")
    assert code == 2 and err.count("\n") == 1 and "frames_per_clip=6" in err and "--overwrite" in err, err


def test_console_script_shows_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(extract_cmd(tmp_path / "nope.mp4", "--out", tmp_path / "s"), capture_output=True,
                          text=True, env=ENV, cwd=REPO, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
