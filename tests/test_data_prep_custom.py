"""data_prep.custom: a user's CSV / JSON of (video, caption) pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_prep.custom import build_custom, main
from fusion.errors import DataError
from fusion.manifest import load_manifest


def test_csv_pairs(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mp4").write_bytes(b"")
    (tmp_path / "pairs.csv").write_text(
        "video,caption,split\nclips/a.mp4,A cat sits.,\nclips/a.mp4,a cat is sitting,\n"
        "clips/b.mp4,a dog runs,test\nother/b.mp4,,\n", encoding="utf-8")
    out = tmp_path / "m.jsonl"
    assert main([str(tmp_path / "pairs.csv"), "--out", str(out)]) == 0
    entries = load_manifest(out)
    assert [(e.id, e.split, e.captions) for e in entries] == [
        ("a", "train", ["A cat sits.", "a cat is sitting"]),
        ("clips_b", "test", ["a dog runs"]),  # two files named b: folders keep ids apart
        ("other_b", "train", []),
    ]
    assert entries[0].video == str((tmp_path / "clips" / "a.mp4").resolve())


def test_json_forms_and_random_split(tmp_path: Path) -> None:
    pairs = [{"video": f"/data/v{i}.mp4", "captions": [f"caption {i}"]} for i in range(20)]
    pairs.append({"video": "/data/v0.mp4", "caption": "another for v0", "id": "zero"})
    (tmp_path / "p.json").write_text(json.dumps(pairs))
    entries = build_custom(tmp_path / "p.json", tmp_path / "m.jsonl", val_fraction=0.2, test_fraction=0.1, seed=3)
    assert entries[0].id == "zero" and entries[0].captions == ["caption 0", "another for v0"]
    splits = [e.split for e in entries]
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == (14, 4, 2)
    again = build_custom(tmp_path / "p.json", tmp_path / "m2.jsonl", val_fraction=0.2, test_fraction=0.1, seed=3)
    assert [e.split for e in again] == splits  # seeded
    (tmp_path / "d.json").write_text(json.dumps({"x/clip.mp4": ["one", "two"]}))
    (entry,) = build_custom(tmp_path / "d.json", tmp_path / "m3.jsonl", default_split="val")
    assert (entry.id, entry.split, entry.captions) == ("clip", "val", ["one", "two"])


def test_errors_name_row_and_field(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("video,caption,split\na.mp4,x,train\nb.mp4,y,dev\n")
    with pytest.raises(DataError, match=r"p\.csv:3: 'split' must be one of"):
        build_custom(tmp_path / "p.csv", tmp_path / "m.jsonl")
    (tmp_path / "q.csv").write_text("path,text\na.mp4,x\n")
    with pytest.raises(DataError, match="must name 'video' and 'caption'"):
        build_custom(tmp_path / "q.csv", tmp_path / "m.jsonl")
    (tmp_path / "r.json").write_text(json.dumps([{"video": "a.mp4"}, {"caption": "x"}]))
    with pytest.raises(DataError, match=r"item \[1\]: expected an object with a 'video' field"):
        build_custom(tmp_path / "r.json", tmp_path / "m.jsonl")
