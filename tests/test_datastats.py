"""``fusion data stats``: counts, lengths, missing files and audio streams probed in real files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fusion.cli import main as cli_main
from fusion.datastats import manifest_stats
from fusion.manifest import ManifestEntry, load_manifest, write_manifest
from fusion.media import write_video


@pytest.fixture()
def manifest(tmp_path: Path) -> Path:
    frames = np.zeros((6, 32, 32, 3), np.uint8)  # (T, H, W, 3)
    write_video(tmp_path / "v" / "with.mp4", frames, 6.0, audio=np.zeros(22050, np.float32), sample_rate_hz=22050)
    write_video(tmp_path / "v" / "without.mp4", frames, 6.0)
    entries = [
        ManifestEntry("with", str(tmp_path / "v" / "with.mp4"), "train", ["a cat sits", "the cat is sitting down"],
                      {"has_audio_stream": True}),
        # meta claims audio the file does not have: stats must catch it
        ManifestEntry("without", str(tmp_path / "v" / "without.mp4"), "train", ["a dog"], {"has_audio_stream": True}),
        ManifestEntry("gone", str(tmp_path / "v" / "gone.mp4"), "test", ["A bird flies!"], {}),
        ManifestEntry("nocap", str(tmp_path / "v" / "gone2.mp4"), "val", [], {}),
    ]
    write_manifest(entries, tmp_path / "m.jsonl")
    return tmp_path / "m.jsonl"


def test_stats(manifest: Path) -> None:
    stats = manifest_stats(load_manifest(manifest), progress=False)
    assert (stats["videos"], stats["captions"]) == (4, 4)
    assert stats["splits"]["train"]["videos"] == 2 and stats["splits"]["train"]["captions"] == 3
    assert stats["splits"]["val"]["caption_length"] == {"count": 0}
    assert stats["caption_length"]["histogram"] == {"2": 1, "3": 2, "5": 1}
    assert stats["caption_length"]["max"] == 5 and stats["caption_length"]["mean"] == 3.25
    assert stats["vocab_size"] == 10 and stats["train_vocab_size"] == 8
    assert stats["missing_on_disk"] == 2 and stats["missing_ids"] == ["gone", "nocap"]
    assert stats["videos_without_captions"] == 1
    audio = stats["audio"]
    assert (audio["with_audio_stream"], audio["without_audio_stream"], audio["unreadable"]) == (1, 1, 0)
    assert audio["meta_disagrees"] == 1 and audio["meta_disagrees_ids"] == ["without"]
    assert manifest_stats(load_manifest(manifest), check_files=False)["audio"] is None


def test_cli_json_text_and_plot(manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["data", "stats", str(manifest), "--json", "--plot", str(tmp_path / "h.png")]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["videos"] == 4 and stats["audio"]["with_audio_stream"] == 1
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli_main(["data", "stats", str(manifest)]) == 0
    text = capsys.readouterr().out
    assert "missing on disk: 2" in text and "with 1, without 1" in text


def test_cli_user_errors(tmp_path: Path, manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["data", "stats", str(tmp_path / "none.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "manifest not found" in err and err.count("\n") == 1
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "video": "a.mp4", "split": "x", "captions": []}\n')
    assert cli_main(["data", "stats", str(tmp_path / "bad.jsonl")]) == 2
    assert "bad.jsonl:1 field 'split'" in capsys.readouterr().err
    assert cli_main(["data", "stats", str(manifest), "--plot", str(tmp_path / "h.xyz")]) == 2
    assert "cannot write a plot" in capsys.readouterr().err
