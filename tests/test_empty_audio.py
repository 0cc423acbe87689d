"""A WAV file with a valid header and no samples holds no media: MediaError in decode, tags, extract, caption."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fusion.cli import main
from fusion.errors import MediaError
from fusion.features import FeatureStore
from fusion.media import decode, probe
from tests.builders import REPO, SUBPROCESS_ENV as ENV
from tests.mediafactory import make_audio, make_empty_wav, make_video

REASON = "holds no audio samples"


def _fusion(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fusion", *map(str, args)], capture_output=True, text=True,
                          env=ENV, cwd=REPO, timeout=300)


def test_decode_raises_and_probe_still_reads_the_header(tmp_path: Path) -> None:
    empty = make_empty_wav(tmp_path / "empty.wav")
    assert empty.stat().st_size == 44  # a header, nothing else
    info = probe(empty)
    assert info.has_audio_stream and not info.has_video_stream and info.audio_codec == "pcm_s16le"
    with pytest.raises(MediaError, match=REASON) as err:
        decode(empty)
    assert err.value.path == str(empty) and "\n" not in str(err.value)
    # a real (short) WAV still decodes, and a video keeps its own behaviour
    assert decode(make_audio(tmp_path / "tone.wav", seconds=0.5)).audio.size > 0
    assert decode(make_video(tmp_path / "clip.mp4", seconds=1, audio=None), num_frames=2).audio is None


def test_tags_reports_it_as_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = make_empty_wav(tmp_path / "empty.wav")
    # the file fails at decoding, before any model loads: random weights are never needed
    assert main(["tags", "--json", str(empty)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fusion tags: error: ") and REASON in lines[0]
    assert str(empty) in lines[0]


def test_extract_records_it_under_failed(tmp_path: Path) -> None:
    folder = tmp_path / "media"
    make_video(folder / "good.mp4", seconds=1, audio="tone")
    empty = make_empty_wav(folder / "empty.wav")
    store = tmp_path / "store"
    proc = _fusion("extract", "--set", "random_weights=true", "--set", "frames_per_clip=2", folder,
                   "--out", store, "--json")
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["done"] == 1 and [f["file"] for f in summary["failed"]] == [str(empty)]
    assert REASON in summary["failed"][0]["error"]
    assert FeatureStore(store).ids() == ["good"]  # no finished record for the empty file


def test_caption_reports_it_as_an_error(tiny_run: dict, tmp_path: Path) -> None:
    empty = make_empty_wav(tmp_path / "empty.wav")
    proc = _fusion("caption", empty, "--model", tiny_run["run"], "--json", "--beam", "2", "--threads", "1")
    assert proc.returncode == 1
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("fusion caption: error: ") and REASON in errors[0]
    assert "Traceback" not in proc.stderr
