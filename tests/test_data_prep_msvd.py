"""data_prep.msvd: counts on the shared data (real_data) and the CSV route on a tiny fixture."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from data_prep.msvd import build_msvd, main
from fusion.errors import DataError
from fusion.manifest import load_manifest
from fusion.paths import REPO_ROOT


@pytest.mark.real_data
def test_shared_msvd_counts(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "msvd.jsonl"
    summary = build_msvd(out, data_dir / "msvd")
    entries = load_manifest(out)
    assert len(entries) == 1970
    assert sum(len(e.captions) for e in entries) == 80827
    assert [sum(e.split == s for e in entries) for s in ("train", "val", "test")] == [1200, 100, 670]
    present = [e for e in entries if Path(e.video).is_file()]
    assert len(present) == summary.present == 8
    assert summary.missing == 1962
    missing = summary.missing_list.read_text().split()
    assert len(missing) == 1962 and set(missing) == {e.id for e in entries} - {e.id for e in present}
    first = entries[0]
    assert first.id == "-4wsuPCjDBc_5_15" and first.captions[0] == "a squirrel is eating a peanut in it s shell"
    assert first.meta["has_audio_stream"] is False  # MSVD has no audio at all
    assert {e.split for e in present} == {"train", "test"}


@pytest.mark.real_data
def test_cli_reports_missing(data_dir: Path, tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "data_prep.msvd", "--out", str(tmp_path / "m.jsonl"),
                          "--source", str(data_dir / "msvd")], capture_output=True, text=True, cwd=REPO_ROOT)
    assert res.returncode == 0, res.stderr
    assert "1970 videos (1200 train / 100 val / 670 test), 80827 captions" in res.stdout
    assert "8 clips present, 1962 missing" in res.stdout


def _csv_source(tmp: Path) -> Path:
    src = tmp / "msvd"
    (src / "splits").mkdir(parents=True)
    (src / "YouTubeClips").mkdir()
    rows = [
        ("abc", 1, 5, "English", "A man is playing a guitar."),
        ("abc", 1, 5, "English", "Someone plays guitar!"),
        ("abc", 1, 5, "German", "Ein Mann spielt Gitarre."),
        ("def", 0, 4, "English", "A cat's sleeping."),
        ("ghi", 2, 9, "English", "A dog runs."),
        ("zzz", 0, 1, "English", "not in any split list"),
    ]
    with (src / "MSR Video Description Corpus.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["VideoID", "Start", "End", "WorkerID", "Source", "AnnotationTime", "Language", "Description"])
        for vid, start, end, lang, desc in rows:
            w.writerow([vid, start, end, 1, "clean", 10, lang, desc])
    (src / "splits" / "train_list.txt").write_text("abc_1_5\n")
    (src / "splits" / "val_list.txt").write_text("def_0_4\n")
    (src / "splits" / "test_list.txt").write_text("ghi_2_9\n")
    (src / "YouTubeClips" / "def_0_4.avi").write_bytes(b"")  # presence only; not decoded here
    return src


def test_csv_route(tmp_path: Path) -> None:
    src = _csv_source(tmp_path)
    out = tmp_path / "out" / "m.jsonl"
    assert main(["--out", str(out), "--source", str(src)]) == 0
    entries = {e.id: e for e in load_manifest(out)}
    assert list(entries) == ["abc_1_5", "def_0_4", "ghi_2_9"]
    assert entries["abc_1_5"].captions == ["a man is playing a guitar", "someone plays guitar"]
    assert entries["def_0_4"].captions == ["a cat s sleeping"] and entries["def_0_4"].split == "val"
    assert entries["def_0_4"].video == str((src / "YouTubeClips" / "def_0_4.avi").resolve())
    assert (tmp_path / "out" / "m.jsonl.missing.txt").read_text().split() == ["abc_1_5", "ghi_2_9"]
    build_msvd(out, src, keep_raw=True)
    assert load_manifest(out)[0].captions[0] == "A man is playing a guitar."


def test_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DataError, match="MSVD folder not found"):
        build_msvd(tmp_path / "m.jsonl", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="youtube_video_to_id_mapping.txt not found"):
        build_msvd(tmp_path / "m.jsonl", tmp_path / "empty")
    assert main(["--out", str(tmp_path / "m.jsonl"), "--source", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("data_prep.msvd: error:") and err.count("\n") == 1
