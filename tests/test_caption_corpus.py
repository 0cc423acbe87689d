"""data_prep.caption_corpus: the real corpus leaves out the development clips and the test split."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from data_prep.caption_corpus import build_corpus, write_corpus
from fusion.paths import REPO_ROOT


def _tiny_data(root: Path) -> None:
    """A data folder with 2 MSVD clips (one with media) and 3 MSR-VTT videos (one with media, one test)."""
    cap = root / "msvd" / "captions"
    cap.mkdir(parents=True)
    (cap / "youtube_video_to_id_mapping.txt").write_text("aaa_1_2 vid1\nbbb_3_4 vid2\n")
    (cap / "sents_train_lc_nopunc.txt").write_text("vid1\ta dog runs\nvid2\ta cat sleeps\n")
    (cap / "sents_val_lc_nopunc.txt").write_text("vid2\ta cat is sleeping\n")
    (cap / "sents_test_lc_nopunc.txt").write_text("vid2\tTEST CAPTION\n")
    (root / "msvd" / "clips").mkdir()
    (root / "msvd" / "clips" / "aaa_1_2.avi").write_bytes(b"x")
    ann = root / "msrvtt" / "annotations"
    ann.mkdir(parents=True)
    info = {"videos": [{"video_id": f"video{i}", "split": s} for i, s in enumerate(["train", "validate", "test"])],
            "sentences": [{"video_id": f"video{i}", "caption": f"A man, number {i}!"} for i in range(3)]}
    with zipfile.ZipFile(ann / "train_val_annotation.zip", "w") as zf:
        zf.writestr("train_val_videodatainfo.json", json.dumps(info))
    (root / "msrvtt" / "clips").mkdir()
    (root / "msrvtt" / "clips" / "video0.mp4").write_bytes(b"x")


def test_excludes_clips_with_media_and_test_split(tmp_path: Path) -> None:
    _tiny_data(tmp_path / "data")
    manifest = write_corpus(build_corpus(tmp_path / "data"), tmp_path / "corpus")
    train = (tmp_path / "corpus" / "train.txt").read_text().splitlines()
    val = (tmp_path / "corpus" / "val.txt").read_text().splitlines()
    assert train == ["msvd:vid2\ta cat sleeps"]
    assert val == ["msvd:vid2\ta cat is sleeping", "msrvtt:video1\ta man number 1"]
    assert manifest["excluded_clips"] == {"msvd": ["vid1 (aaa_1_2)"], "msrvtt": ["video0"]}
    assert manifest["dropped_captions"] == {"msrvtt development clip": 1, "msrvtt test split": 1,
                                            "msvd development clip": 1}


def test_missing_files_one_line(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "data_prep.caption_corpus", "--data", str(tmp_path),
                          "--out", str(tmp_path / "c")], capture_output=True, text=True, cwd=REPO_ROOT)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "youtube_video_to_id_mapping.txt" in res.stderr


@pytest.mark.real_data
def test_real_corpus_counts(data_dir: Path, tmp_path: Path) -> None:
    manifest = write_corpus(build_corpus(data_dir), tmp_path)
    assert manifest["total"] == {"train": 178463, "val": 14230}
    keys = {line.split("\t", 1)[0] for s in ("train", "val") for line in (tmp_path / f"{s}.txt").open()}
    dev = {f"msrvtt:{p.stem}" for p in (data_dir / "msrvtt" / "clips").glob("*.mp4")}
    assert len(dev) == 18 and not keys & dev
    assert "msvd:vid98" not in keys and "msvd:vid1301" not in keys  # a development clip; the test split
    assert len(manifest["excluded_clips"]["msvd"]) == 8
