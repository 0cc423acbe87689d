"""``make demo`` end to end on the tiny benchmark (real encoders, real METEOR), and re-running
it reuses what is done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.demo import main as demo_main

pytestmark = [pytest.mark.slow, pytest.mark.real_weights, pytest.mark.java]

TINY = ["--set", "model.hidden_size=32", "--set", "model.frame_embed_size=32", "--set", "model.word_embed_size=16",
        "--set", "extract.frames_per_clip=4", "--set", "train.max_epochs=2", "--set", "train.batch_size=8"]


def test_demo_runs_and_reuses_its_work(tmp_path: Path, java_available: bool, capsys: pytest.CaptureFixture[str]) -> None:
    out, data = tmp_path / "demo", tmp_path / "bench"
    args = ["--out", str(out), "--data", str(data), "--size", "tiny", "--no-zeroshot", *TINY]  # zero-shot: test_zeroshot
    assert demo_main(args) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "demo_summary.json").read_text())
    assert {"METEOR", "CIDEr", "sound_accuracy", "visual_accuracy"} <= set(summary["metrics"])
    assert 0.0 <= summary["metrics"]["METEOR"] <= 1.0 and summary["n_test_videos"] == 3
    assert isinstance(summary["clip"]["caption"], str) and summary["clip"]["caption"] in printed
    assert summary["sound_origin"] in ("esc10", "synthetic")  # the summary says which sounds it used
    assert ("ESC-10 recordings (real)" if summary["sound_origin"] == "esc10" else "synthetic stand-in") in printed
    assert (out / "checkpoints" / "best.json").is_file() and (data / "manifest.jsonl").is_file()
    assert (out / "eval" / "test" / "predictions.json").is_file()

    assert demo_main(args) == 0
    again = capsys.readouterr().out
    assert "reusing" in again and "already_finished" in again
    assert json.loads((out / "demo_summary.json").read_text())["steps"] == summary["steps"]
