"""``fusion score``: real files in every format, real Java metrics, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fusion.cli import main

REFS = "vid1\ta man is playing a guitar\nvid1\ta person plays the guitar\nvid2\ta dog is barking\nvid2\tthe dog barks\n"


def _fusion(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fusion", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.java
def test_score_json_formats_agree(java_available: bool, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    refs = tmp_path / "refs.txt"
    refs.write_text(REFS)
    preds = {"vid1": "a man plays a guitar", "vid2": "a dog barks"}
    (tmp_path / "p.json").write_text(json.dumps(preds))
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"id": k, "caption": v}) + "\n" for k, v in preds.items()))
    (tmp_path / "p.csv").write_text("id,caption\n" + "".join(f"{k},{v}\n" for k, v in preds.items()))
    outputs = []
    for name in ("p.json", "p.jsonl", "p.csv"):
        assert main(["score", str(tmp_path / name), str(refs), "--json", "--per-video", str(tmp_path / "pv.json")]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1] == outputs[2]
    out = outputs[0]
    assert out["n_videos"] == 2
    assert 0.3 < out["METEOR"] <= 1.0 and 0.0 < out["CIDEr"] <= 10.0
    per_video = json.loads((tmp_path / "pv.json").read_text())
    assert set(per_video) == {"vid1", "vid2"} and "CIDEr" in per_video["vid1"]


def test_score_errors_are_one_line(tmp_path: Path) -> None:
    refs = tmp_path / "refs.txt"
    refs.write_text(REFS)
    (tmp_path / "p.json").write_text(json.dumps({"vid1": "a man", "vid7": "x", "vid8": "y"}))
    proc = _fusion("score", str(tmp_path / "p.json"), str(refs))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "fusion score: error: predictions without references, 2 id(s): 'vid7', 'vid8'; "
        "check the ids or the references file"
    ]
    proc = _fusion("score", str(tmp_path / "nope.json"), str(refs))
    assert proc.returncode == 2 and "no such file" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "bad.json").write_text("{not json")
    proc = _fusion("score", str(tmp_path / "bad.json"), str(refs))
    assert proc.returncode == 2 and "not valid JSON" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.java
def test_score_ignore_missing(java_available: bool, tmp_path: Path) -> None:
    refs = tmp_path / "refs.txt"
    refs.write_text(REFS)
    (tmp_path / "p.txt").write_text("vid1\ta man plays a guitar\n")
    proc = _fusion("score", str(tmp_path / "p.txt"), str(refs))
    assert proc.returncode == 2 and "references without predictions, 1 id(s): 'vid2'" in proc.stderr
    proc = _fusion("score", str(tmp_path / "p.txt"), str(refs), "--ignore-missing")
    assert proc.returncode == 0, proc.stderr
    assert "METEOR" in proc.stdout and "videos   1" in proc.stdout


@pytest.mark.real_data
@pytest.mark.java
def test_score_msvd_references_against_themselves(data_dir: Path, java_available: bool, tmp_path: Path) -> None:
    """The real MSVD test references: each video's first reference scored against all of them."""
    refs = data_dir / "msvd" / "captions" / "sents_test_lc_nopunc.txt"
    if not refs.is_file():
        pytest.skip(f"{refs} not found")
    first: dict[str, str] = {}
    for line in refs.read_text().splitlines()[:400]:
        vid, caption = line.split("\t", 1)
        first.setdefault(vid, caption)
    (tmp_path / "p.json").write_text(json.dumps(first))
    proc = _fusion("score", str(tmp_path / "p.json"), str(refs), "--json", "--ignore-missing")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["n_videos"] == len(first) and out["Bleu_1"] > 0.99 and out["METEOR"] > 0.9
