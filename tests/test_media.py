"""fusion.media (probe, seek planning, decode, write) on real files generated with av (tests/mediafactory.py)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from fusion.errors import ConfigError, MediaError
from fusion.media import AUDIO_SAMPLE_RATE_HZ, decode, probe, write_audio, write_video
from fusion.media.info import open_media, video_stream
from fusion.media.seek import plan, scan
from tests.mediafactory import (frame_index_of, make_audio, make_broken_corpus, make_frames,
                                make_mp3_with_cover_art, make_video)

SR = AUDIO_SAMPLE_RATE_HZ
pytestmark = pytest.mark.timeout(120)  # every decode here takes well under a second: a hang fails fast


def dominant_hz(audio: np.ndarray) -> float:
    """Frequency of the strongest FFT bin of a float32 (S,) waveform at 22,050 Hz."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))  # (S//2+1,)
    return float(np.argmax(spectrum) * SR / len(audio))


def rms_amplitude(audio: np.ndarray) -> float:
    """Peak amplitude of a sine from its RMS, ignoring 0.1 s at each end (codec ramps)."""
    core = audio[SR // 10: -SR // 10]
    return float(np.sqrt(np.mean(core ** 2)) * np.sqrt(2))


def indices(media) -> list[int]:
    return [frame_index_of(f) for f in media.frames]


@pytest.mark.parametrize(("name", "video_codec", "audio_codec"), [
    ("clip.mp4", "h264", "aac"), ("clip.avi", "mpeg4", "mp3"), ("clip.mkv", "h264", "vorbis"),
    ("clip.mov", "h264", "aac"), ("clip.webm", "vp9", "opus"), ("flac.mkv", "h264", "flac"),
    ("opus.mp4", "h264", "opus"),
])
def test_video_containers_decode_frames_and_audio(tmp_path: Path, name: str, video_codec: str,
                                                  audio_codec: str) -> None:
    path = make_video(tmp_path / name, seconds=2, fps=10, video_codec=video_codec, audio_codec=audio_codec)
    media = decode(path, num_frames=8)
    assert media.frames.shape == (8, 48, 64, 3) and media.frames.dtype == np.uint8
    # Segment centres of 8 segments over 20 frames -> source frames 1, 3, 6, 8, 11, 13, 16, 18.
    assert indices(media) == [1, 3, 6, 8, 11, 13, 16, 18]
    assert media.frames[0, 2, 2].tolist() == pytest.approx([255, 0, 0], abs=40)  # red mark: RGB order
    assert media.duration_s == pytest.approx(2.0, abs=0.01)
    assert media.fps == pytest.approx(10.0)
    assert media.frames_sampled == 8
    assert media.audio.dtype == np.float32 and media.sample_rate_hz == SR
    # AVI stores no encoder-delay (gapless) info, so MP3 priming samples stay (~0.04 s).
    slack_s = 0.06 if name.endswith(".avi") else 0.03
    assert len(media.audio) == pytest.approx(2.0 * SR, abs=slack_s * SR)
    assert dominant_hz(media.audio) == pytest.approx(440.0, abs=2.0)
    assert rms_amplitude(media.audio) == pytest.approx(0.5, abs=0.05)
    info = probe(path)
    assert info.has_video_stream and info.has_audio_stream and (info.width, info.height) == (64, 48)
    assert info.codecs[0] == {"h264": "h264", "mpeg4": "mpeg4", "vp9": "vp9"}[video_codec]


@pytest.mark.parametrize(("name", "codec", "rate", "channels"), [
    ("a.wav", None, 44100, 1), ("a.wav", "pcm_f32le", 8000, 2), ("a.flac", None, 48000, 2),
    ("a.ogg", None, 22050, 1), ("a.ogg", "opus", 44100, 1), ("a.opus", None, 16000, 2),
    ("a.mp3", None, 44100, 2), ("a.m4a", None, 32000, 1),
])
def test_audio_files_resample_to_22050_mono(tmp_path: Path, name: str, codec: str | None, rate: int,
                                            channels: int) -> None:
    path = make_audio(tmp_path / name, seconds=1.5, sample_rate_hz=rate, channels=channels, codec=codec,
                      tone_hz=1000.0)
    media = decode(path)
    assert media.frames is None and not media.has_video and media.fps is None
    assert media.has_audio and media.audio.ndim == 1 and media.audio.dtype == np.float32
    assert len(media.audio) == pytest.approx(1.5 * SR, abs=0.03 * SR)
    assert media.duration_s == pytest.approx(1.5, abs=0.03)
    assert dominant_hz(media.audio) == pytest.approx(1000.0, abs=2.0)
    assert rms_amplitude(media.audio) == pytest.approx(0.5, abs=0.05)  # mean of equal channels
    assert float(np.abs(media.audio).max()) <= 1.0
    assert not probe(path).has_video_stream


def test_cover_art_is_not_video(tmp_path: Path) -> None:
    path = make_mp3_with_cover_art(tmp_path / "song.mp3")
    media = decode(path)
    assert media.frames is None and len(media.audio) == pytest.approx(SR, abs=0.03 * SR)
    assert not probe(path).has_video_stream


def test_stereo_is_averaged_to_mono(tmp_path: Path) -> None:
    tone = np.sin(2 * np.pi * 300 * np.arange(SR) / SR).astype(np.float32) * 0.8
    write_audio(tmp_path / "lr.wav", np.stack([tone, np.zeros_like(tone)]), SR, codec="pcm_f32le")
    audio = decode(tmp_path / "lr.wav").audio
    np.testing.assert_allclose(audio, tone / 2, atol=1e-6)


def test_absent_audio_is_none_and_silent_track_is_zeros(tmp_path: Path) -> None:
    absent = decode(make_video(tmp_path / "none.mp4", audio=None))
    assert absent.audio is None and not absent.has_audio and absent.has_video
    assert not probe(tmp_path / "none.mp4").has_audio_stream
    silent = decode(make_video(tmp_path / "silent.mp4", audio="silent"))
    assert silent.has_audio and len(silent.audio) == pytest.approx(2 * SR, abs=0.03 * SR)
    assert float(np.abs(silent.audio).max()) < 1e-4
    assert decode(tmp_path / "silent.mp4", audio=False).audio is None  # not asked for
    assert decode(tmp_path / "silent.mp4", frames=False).frames is None


def test_variable_frame_rate_samples_by_timestamp(tmp_path: Path) -> None:
    # 1 s at 2 fps, then 1 s at 20 fps: a frame-count sampler would put 7 of 8 samples
    # in the second half; sampling by time puts 4 in each half.
    times = np.concatenate([np.arange(2) * 0.5, 1.0 + np.arange(20) * 0.05])  # (22,)
    for name in ("vfr.mkv", "vfr.mp4"):
        # fps=20 is the nominal rate: the last frame lasts 0.05 s, so the clip ends at 2.0 s.
        media = decode(make_video(tmp_path / name, fps=20, frame_times_s=times, audio=None), num_frames=8)
        assert media.duration_s == pytest.approx(2.0, abs=1e-3)
        expected = [int(np.searchsorted(times, t, side="right") - 1) for t in (np.arange(8) + 0.5) * 2.0 / 8]
        assert indices(media) == expected == [0, 0, 1, 1, 4, 9, 14, 19]
        assert media.frames_sampled == 6
        np.testing.assert_allclose(media.frame_times_s, times[expected], atol=1e-3)


@pytest.mark.parametrize(("rotation", "hflip"), [(0, True), (90, False), (90, True), (180, False),
                                                 (180, True), (270, False), (270, True)])
def test_rotated_phone_video_is_returned_upright(tmp_path: Path, rotation: int, hflip: bool) -> None:
    path = make_video(tmp_path / "phone.mp4", seconds=1, fps=5, size=(64, 48), rotation_deg=rotation,
                      hflip=hflip, audio=None)
    media = decode(path, num_frames=3)
    source = make_frames(5, (64, 48))[2]  # (48, 64, 3), the middle sample
    upright = np.rot90(source, k=rotation // 90)  # rotate counter-clockwise, then mirror
    upright = upright[:, ::-1] if hflip else upright
    assert media.frames.shape[1:] == upright.shape
    assert np.abs(media.frames[1].astype(int) - upright).mean() < 8
    if not hflip:
        assert media.rotation_deg % 360 == rotation


@pytest.mark.parametrize(("name", "codec"), [("odd.mp4", "h264"), ("odd.avi", "mpeg4"), ("odd.webm", "vp9")])
def test_odd_frame_sizes(tmp_path: Path, name: str, codec: str) -> None:
    media = decode(make_video(tmp_path / name, size=(97, 61), video_codec=codec, audio=None), num_frames=4)
    assert media.frames.shape == (4, 61, 97, 3)
    assert indices(media) == [2, 7, 12, 17]


@pytest.mark.parametrize("fps", [29.97, 23.976, 12.5, 1.6])
@pytest.mark.parametrize("name", ["b.mp4", "b.avi", "b.mkv", "b.webm"])
def test_b_frames_and_ntsc_rates_pick_the_right_frames(tmp_path: Path, name: str, fps: float) -> None:
    # H.264 with B-frames in AVI: the container's timestamps count packets in decode order,
    # so frames must be matched by output order, not by pts. Segment centres here fall
    # exactly on frame starts, where millisecond timestamps (Matroska) round either way.
    codec = "vp9" if name.endswith(".webm") else "h264"
    path = make_video(tmp_path / name, seconds=16 / fps, fps=fps, video_codec=codec, audio="tone")
    media = decode(path, num_frames=4)
    assert indices(media) == [2, 6, 10, 14]
    assert media.fps == pytest.approx(fps, rel=1e-3)
    assert media.duration_s == pytest.approx(16 / fps, abs=0.002)


def test_short_video_repeats_nearest_frames(tmp_path: Path) -> None:
    media = decode(make_video(tmp_path / "short.mp4", seconds=1, fps=5), num_frames=32)
    assert media.frames.shape == (32, 48, 64, 3)
    assert media.frames_sampled == 5
    got = indices(media)
    assert got == sorted(got) and set(got) == {0, 1, 2, 3, 4}


def test_frame_rate_sampling(tmp_path: Path) -> None:
    media = decode(make_video(tmp_path / "r.mp4", seconds=2, fps=10), frame_rate_hz=4)
    assert indices(media) == [0, 2, 5, 7, 10, 12, 15, 17]
    np.testing.assert_allclose(media.frame_times_s, [0, .2, .5, .7, 1.0, 1.2, 1.5, 1.7], atol=1e-6)
    with pytest.raises(ConfigError):
        decode(tmp_path / "r.mp4", frame_rate_hz=0)
    with pytest.raises(ConfigError):
        decode(tmp_path / "r.mp4", num_frames=0)


def test_lying_duration_metadata_is_ignored(tmp_path: Path) -> None:
    path = make_video(tmp_path / "lie.mkv", seconds=4, fps=10, audio=None)
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89\x88")  # Matroska Duration element, 8-byte float (milliseconds)
    assert at > 0
    data[at + 3: at + 11] = struct.pack(">d", 1000.0)  # claims 1 s of the real 4 s
    path.write_bytes(bytes(data))
    assert probe(path).duration_s == pytest.approx(1.0, abs=0.05)
    media = decode(path, num_frames=4)
    assert media.duration_s == pytest.approx(4.0, abs=0.01)
    assert indices(media) == [5, 15, 25, 35]


def test_long_video_seeks_and_matches_linear_decoding(tmp_path: Path) -> None:
    path = make_video(tmp_path / "long.mp4", seconds=12, fps=10, size=(32, 24), audio=None, gop_s=1.0)
    with open_media(path) as container:
        index = scan(container, video_stream(container), str(path))
    assert index.seekable
    sparse = plan(index, np.array([15, 75]))
    assert [seek is not None for seek, _ in sparse] == [True, True]  # seeking pays
    assert plan(index, np.arange(120))[0][0] is None  # every frame: one linear pass
    media = decode(path, num_frames=4)
    assert indices(media) == [15, 45, 75, 105]


def test_broken_files_raise_media_error_naming_the_file(tmp_path: Path) -> None:
    corpus = make_broken_corpus(tmp_path / "broken")
    assert set(corpus) >= {"missing", "empty", "directory", "text_as_mp4", "random_bytes", "corrupt_header",
                           "truncated_mp4", "truncated_mkv", "truncated_mp3", "no_streams", "subtitles_only"}
    for kind, path in corpus.items():
        for call in (decode, probe):
            if call is probe and kind.startswith("truncated_m") and kind != "truncated_mp4":
                continue  # headers are intact; only a decode finds the data missing
            with pytest.raises(MediaError) as info:
                call(path)
            message = str(info.value)
            assert str(path) in message and "\n" not in message, (kind, message)
            assert info.value.path == str(path)


def test_text_and_subtitle_files_are_not_media(tmp_path: Path) -> None:
    corpus = make_broken_corpus(tmp_path / "broken")
    for call in (decode, probe):  # FFmpeg's tty demuxer would render the .txt as ANSI-art video
        with pytest.raises(MediaError, match=r"memo.txt: is a text file, not media"):
            call(corpus["text_file"])
        with pytest.raises(MediaError, match=r"captions.srt: has no video or audio stream \(only subtitle streams\)"):
            call(corpus["subtitle_file"])


def test_write_video_is_atomic_and_validates(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    make_video(target, seconds=1)
    before = target.read_bytes()
    with pytest.raises(ValueError):
        write_video(target, np.zeros((3, 8, 8), np.uint8), fps=10)
    with pytest.raises(ValueError):
        write_video(tmp_path / "clip.xyz", make_frames(2), fps=10)
    with pytest.raises(ValueError):  # fails inside the temp file's lifetime (unknown encoder)
        write_video(target, make_frames(2), 10, np.zeros(100, np.float32), 22050, audio_codec="no-such-codec")
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["out.mp4"]  # no temp files left behind
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # ordinary permissions, not mkstemp's 0600


def test_write_video_accepts_audio_at_any_rate(tmp_path: Path) -> None:
    tone = np.sin(2 * np.pi * 440 * np.arange(int(1.5 * 11025)) / 11025).astype(np.float32) * 0.5
    for name, codec in (("a.webm", "opus"), ("a.mp4", "aac"), ("a.avi", "mp3")):
        write_video(tmp_path / name, make_frames(15), 10, tone, 11025, "vp9" if name.endswith("webm") else "h264",
                    codec)
        media = decode(tmp_path / name)
        # At 11 kHz one codec frame lasts ~0.1 s (AAC: 1024 samples); the last one is padded
        # and MP3-in-AVI keeps the encoder's priming samples.
        assert len(media.audio) == pytest.approx(1.5 * SR, abs=0.12 * SR)
        assert dominant_hz(media.audio) == pytest.approx(440.0, abs=2.0)


@pytest.mark.real_data
def test_real_msvd_clips_have_no_audio(data_dir: Path) -> None:
    clips = sorted((data_dir / "msvd" / "clips").glob("*.avi"))
    assert len(clips) == 8
    for clip in clips:
        media = decode(clip, num_frames=16)
        assert media.audio is None and not media.has_audio
        assert media.frames.shape[0] == 16 and media.frames.shape[3] == 3
        assert media.frames.shape[1:3] == (probe(clip).height, probe(clip).width)
        assert 3.5 < media.duration_s < 14 and 14 < media.fps < 61
        assert media.frames_sampled == 16 and np.all(np.diff(media.frame_times_s) > 0)
        assert media.frames.std() > 10  # real pictures, not blank frames


@pytest.mark.real_data
def test_real_esc10_ogg(data_dir: Path) -> None:
    clip = sorted((data_dir / "esc10").rglob("*.ogg"))[0]
    media = decode(clip)
    assert media.frames is None
    assert len(media.audio) == pytest.approx(5.0 * SR, abs=0.05 * SR)
    assert 0.001 < float(np.abs(media.audio).max()) <= 1.0


def test_webm_defaults_to_vp9_and_opus(tmp_path: Path) -> None:
    write_video(tmp_path / "d.webm", make_frames(10), 10, np.zeros(SR, np.float32), SR)  # h264/aac defaults
    assert probe(tmp_path / "d.webm").codecs == ("vp9", "opus")
