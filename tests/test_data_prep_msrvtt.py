"""data_prep.msrvtt on the tiny fixture (2016 names) and the 2017 layout."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from data_prep.msrvtt import build_msrvtt, main
from fusion.errors import DataError
from fusion.manifest import load_manifest
from fusion.media import write_video

FIXTURE = Path(__file__).parent / "fixtures" / "msrvtt"


def _tiny_video(path: Path) -> None:
    frames = np.zeros((4, 16, 16, 3), np.uint8)
    write_video(path, frames, 4.0, audio=np.zeros(4000, np.float32), sample_rate_hz=16000)


def test_fixture_2016(tmp_path: Path) -> None:
    src = tmp_path / "msrvtt"
    shutil.copytree(FIXTURE, src)
    _tiny_video(src / "TrainValVideo" / "video1.mp4")
    _tiny_video(src / "TestVideo" / "video7011.mp4")
    out = tmp_path / "msrvtt.jsonl"
    summary = build_msrvtt(src, out)
    assert summary.layout == "2016"
    entries = load_manifest(out)
    assert [(e.id, e.split) for e in entries] == [("video0", "train"), ("video1", "train"), ("video2", "train"),
                                                  ("video6513", "val"), ("video7010", "test"), ("video7011", "test")]
    by_id = {e.id: e for e in entries}
    assert by_id["video0"].captions == ["a car is shown", "A group of people are walking on a road."]
    assert by_id["video7011"].captions == ["people are dancing", "a crowd dances to music"]
    assert by_id["video1"].video == str((src / "TrainValVideo" / "video1.mp4").resolve())
    assert by_id["video0"].meta["category"] == 9 and by_id["video0"].meta["start_s"] == 137.72
    assert summary.present == 2 and summary.missing == 4 and summary.captions == 9
    assert summary.missing_list.read_text().split() == ["video0", "video2", "video6513", "video7010"]


def test_2017_layout_with_uncaptioned_test(tmp_path: Path) -> None:
    src = tmp_path / "msrvtt2017"
    src.mkdir()
    train = json.loads((FIXTURE / "train_val_videodatainfo.json").read_text())
    test = json.loads((FIXTURE / "test_videodatainfo.json").read_text())
    del test["sentences"]  # the 2017 challenge test set came without captions
    (src / "videodatainfo_2017.json").write_text(json.dumps(train))
    (src / "test_videodatainfo_2017.json").write_text(json.dumps(test))
    out = tmp_path / "m.jsonl"
    assert main(["--source", str(src), "--out", str(out)]) == 0
    entries = load_manifest(out)
    assert len(entries) == 6
    assert [e.captions for e in entries if e.split == "test"] == [[], []]


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no MSR-VTT annotations"):
        build_msrvtt(tmp_path, tmp_path / "m.jsonl")
    bad = json.loads((FIXTURE / "train_val_videodatainfo.json").read_text())
    bad["videos"][1]["split"] = "dev"
    (tmp_path / "train_val_videodatainfo.json").write_text(json.dumps(bad))
    with pytest.raises(DataError, match=r"videos\[1\] has unknown split 'dev'"):
        build_msrvtt(tmp_path, tmp_path / "m.jsonl")


def _zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_zipped_as_distributed(tmp_path: Path) -> None:
    src = tmp_path / "annotations"
    src.mkdir()
    _zip(src / "train_val_annotation.zip", {"train_val_videodatainfo.json": (FIXTURE / "train_val_videodatainfo.json").read_bytes(),
                                            "category.txt": b"music\t0\n", "readme.txt": b"MSR-VTT 10K\n"})
    _zip(src / "test_videodatainfo.json.zip", {"test_videodatainfo.json": (FIXTURE / "test_videodatainfo.json").read_bytes()})
    videos = tmp_path / "clips"
    videos.mkdir()
    _tiny_video(videos / "video1.mp4")
    zipped = build_msrvtt(src, tmp_path / "z.jsonl", videos_dir=videos)
    build_msrvtt(FIXTURE, tmp_path / "p.jsonl", videos_dir=videos)
    assert load_manifest(tmp_path / "z.jsonl") == load_manifest(tmp_path / "p.jsonl")
    assert zipped.videos == {"train": 3, "val": 1, "test": 2} and zipped.captions == 9
    assert zipped.present == 1 and zipped.with_audio == 1  # the tiny clip has a sound track


def test_bad_zip_is_a_data_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "train_val_annotation.zip").write_bytes(b"not a zip")
    code = main(["--source", str(tmp_path), "--out", str(tmp_path / "m.jsonl")])
    err = capsys.readouterr().err
    assert code != 0 and "train_val_annotation.zip: not a readable zip file" in err and len(err.strip().splitlines()) == 1


@pytest.mark.real_data
def test_shared_msrvtt_annotations_and_clips(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = data_dir / "msrvtt"
    if not (source / "annotations").is_dir() or not (source / "clips").is_dir():
        pytest.skip(f"MSR-VTT annotations or clips not found in {source}; set FUSION_DATA_DIR to the shared data folder")
    out = tmp_path / "msrvtt.jsonl"
    code = main(["--source", str(source / "annotations"), "--videos", str(source / "clips"), "--out", str(out), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["clips"] == 10_000 and summary["captions"] == 200_000
    assert summary["videos"] == {"train": 6513, "val": 497, "test": 2990} and summary["layout"] == "2016"
    assert summary["present"] == 18 and summary["with_audio"] == 18 and summary["missing"] == 9982
    entries = {e.id: e for e in load_manifest(out)}
    assert len(entries) == 10_000 and all(len(e.captions) == 20 for e in entries.values())
    present = [e for e in entries.values() if Path(e.video).is_file()]
    assert len(present) == 18 and {e.split for e in present} == {"train"}
    assert entries["video0"].meta["start_s"] == 137.72 and entries["video0"].split == "train"
    assert entries["video7010"].split == "test" and entries["video6513"].split == "val"
