"""Small real media files for the whole team's tests, generated with av (no fixtures on disk).

Frames carry their own index as a binary code (vertical black/white bars in the lower
half, robust to lossy coding), so a test can tell exactly which source frame a decoder
returned: ``frame_index_of(image)``. The upper half holds a coloured square that moves
and an orientation mark (a red block in the top-left corner) for rotation tests.

    from tests.mediafactory import make_video, make_audio, make_broken_corpus
    path = make_video(tmp_path / "clip.mp4", seconds=2, fps=10, audio="tone")
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from fusion.media import write_audio, write_video

CODE_BITS = 7  # frame indices 0..127
# Usual audio codec for each video container (what phones, browsers and ffmpeg pick).
DEFAULT_AUDIO_CODEC = {".mp4": "aac", ".m4v": "aac", ".mov": "aac", ".mkv": "vorbis",
                       ".webm": "opus", ".avi": "mp3"}
AudioKind = Literal["tone", "silent", "noise"]


def make_frames(num_frames: int, size: tuple[int, int] = (64, 48), seed: int = 0) -> np.ndarray:
    """Synthetic frames: index code bars (lower half), moving square and red corner mark (upper half).

    Args:
        num_frames: T; the code holds the index modulo 2**CODE_BITS (128).
        size: (width, height) in pixels.
        seed: Colour of the moving square.

    Returns:
        uint8 (T, H, W, 3) RGB.
    """
    width, height = size
    frames = np.full((num_frames, height, width, 3), 40, dtype=np.uint8)  # (T, H, W, 3)
    colour = np.random.default_rng(seed).integers(80, 255, size=3, dtype=np.uint8)
    half = height // 2
    side = max(2, half // 2)
    bar = width / CODE_BITS
    for i in range(num_frames):
        x = int((width - side) * (i / max(1, num_frames - 1)))
        frames[i, half // 4: half // 4 + side, x: x + side] = colour
        frames[i, : max(2, half // 3), : max(2, width // 5)] = (255, 0, 0)  # orientation mark
        for bit in range(CODE_BITS):
            value = 255 if (i >> bit) & 1 else 0
            frames[i, half:, int(bit * bar): int((bit + 1) * bar)] = value
    return frames


def frame_index_of(image: np.ndarray) -> int:
    """Read the index code (modulo 128) of an upright frame made by ``make_frames`` (uint8 (H, W, 3))."""
    height, width = image.shape[:2]
    lower = image[height // 2 + 2:, :, :].astype(np.float32).mean(axis=(0, 2))  # (W,)
    bar = width / CODE_BITS
    index = 0
    for bit in range(CODE_BITS):
        lo, hi = int(bit * bar), int((bit + 1) * bar)
        core = lower[lo + (hi - lo) // 4: hi - (hi - lo) // 4 or hi]
        if core.mean() > 127:
            index |= 1 << bit
    return index


def make_tone(seconds: float, sample_rate_hz: int = 44100, tone_hz: float = 440.0,
              channels: int = 1, amplitude: float = 0.5) -> np.ndarray:
    """A sine tone, float32 (S,) for one channel or (C, S) for several (same tone on each)."""
    t = np.arange(int(round(seconds * sample_rate_hz))) / sample_rate_hz  # (S,)
    wave = (amplitude * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
    return wave if channels == 1 else np.tile(wave, (channels, 1))


def _audio_signal(kind: AudioKind, seconds: float, sample_rate_hz: int, tone_hz: float,
                  channels: int) -> np.ndarray:
    if kind == "tone":
        return make_tone(seconds, sample_rate_hz, tone_hz, channels)
    n = int(round(seconds * sample_rate_hz))
    if kind == "silent":
        return np.zeros((channels, n) if channels > 1 else n, dtype=np.float32)
    if kind == "noise":
        noise = np.random.default_rng(0).uniform(-0.3, 0.3, size=(channels, n)).astype(np.float32)
        return noise if channels > 1 else noise[0]
    raise ValueError(f"audio kind must be 'tone', 'silent', 'noise' or None, got {kind!r}")


def make_video(path: str | Path, seconds: float = 2.0, fps: float = 10.0, size: tuple[int, int] = (64, 48),
               audio: AudioKind | None = "tone", video_codec: str = "h264", audio_codec: str | None = None,
               sample_rate_hz: int = 44100, tone_hz: float = 440.0, channels: int = 1,
               frame_times_s: np.ndarray | None = None, rotation_deg: int = 0, hflip: bool = False,
               gop_s: float = 1.0) -> Path:
    """Write a small real video with av; the container follows the extension.

    Args:
        path: .mp4, .mov, .mkv, .webm or .avi.
        seconds: Length; ``round(seconds * fps)`` frames (or ``len(frame_times_s)``).
        fps: Frame rate.
        size: (width, height); odd sizes are fine.
        audio: "tone" (``tone_hz`` sine at 0.5), "silent" (a present all-zero track),
            "noise", or None (no audio stream at all).
        video_codec: "h264", "mpeg4", "vp9", "mjpeg", "ffv1".
        audio_codec: Default: the container's usual one (aac, vorbis, opus, mp3).
        sample_rate_hz: Rate of the generated audio (the writer adapts it to the codec).
        tone_hz: Tone frequency.
        channels: Audio channels (1 or 2).
        frame_times_s: Optional (T,) increasing times for variable frame rate.
        rotation_deg: Counter-clockwise display rotation stored in the file (phone video).
        hflip: Mirror stored in the display matrix after the rotation.
        gop_s: Keyframe interval in seconds.

    Returns:
        The path written.
    """
    path = Path(path)
    num_frames = len(frame_times_s) if frame_times_s is not None else max(1, int(round(seconds * fps)))
    frames = make_frames(num_frames, size)
    wave = _audio_signal(audio, seconds, sample_rate_hz, tone_hz, channels) if audio else None
    codec = audio_codec or DEFAULT_AUDIO_CODEC.get(path.suffix.lower(), "aac")
    write_video(path, frames, fps, wave, sample_rate_hz, video_codec, codec,
                frame_times_s=frame_times_s, rotation_deg=rotation_deg, hflip=hflip, gop_s=gop_s)
    return path


def make_audio(path: str | Path, seconds: float = 2.0, sample_rate_hz: int = 44100, kind: AudioKind = "tone",
               tone_hz: float = 440.0, channels: int = 1, codec: str | None = None) -> Path:
    """Write a small real audio file (.wav .flac .ogg .opus .mp3 .m4a) with av."""
    path = Path(path)
    write_audio(path, _audio_signal(kind, seconds, sample_rate_hz, tone_hz, channels), sample_rate_hz, codec)
    return path


def make_mp3_with_cover_art(path: str | Path, seconds: float = 1.0) -> Path:
    """An MP3 whose ID3 tag holds a cover picture: FFmpeg shows it as an attached-picture video stream."""
    import av  # local: only this helper writes with av directly

    path = Path(path)
    with av.open(str(path), "w") as container:
        audio = container.add_stream("libmp3lame", rate=44100)
        audio.layout = "mono"
        cover = container.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 32, 32, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(make_frames(1, (32, 32))[0], format="rgb24")
        picture.pts = 0
        frame = av.AudioFrame.from_ndarray(make_tone(seconds)[None], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 44100, 0
        for packet in [*cover.encode(picture), *cover.encode(None), *audio.encode(frame), *audio.encode(None)]:
            container.mux(packet)
    return path


def make_empty_wav(path: str | Path, sample_rate_hz: int = 22050) -> Path:
    """A WAV file with a valid 44-byte header (16-bit mono PCM) and no samples."""
    import wave

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate_hz)
        out.writeframes(b"")
    return path


def _truncate(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    src.unlink()
    return dst


def make_broken_corpus(folder: str | Path) -> dict[str, Path]:
    """Files no decoder should accept, each named for what is wrong with it.

    Returns:
        kind -> path. Kinds: missing (never created), empty, directory, text_as_mp4,
        random_bytes, corrupt_header, truncated_mp4 (moov atom lost), truncated_mkv,
        truncated_mp3, no_streams (an FFmpeg metadata file named .mp4), subtitles_only, text_file (a
        .txt, which FFmpeg's tty demuxer renders as ANSI-art video), subtitle_file (an .srt).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    corpus: dict[str, Path] = {"missing": folder / "missing.mp4"}
    corpus["empty"] = folder / "empty.mp4"
    corpus["empty"].write_bytes(b"")
    corpus["directory"] = folder / "directory.mp4"
    corpus["directory"].mkdir(exist_ok=True)
    corpus["text_as_mp4"] = folder / "notes.mp4"
    corpus["text_as_mp4"].write_text("These are meeting notes, not a video.\n" * 40, encoding="utf-8")
    corpus["random_bytes"] = folder / "random.avi"
    corpus["random_bytes"].write_bytes(np.random.default_rng(0).bytes(20_000))
    good = make_video(folder / "good.mp4", seconds=2)
    data = bytearray(good.read_bytes())
    data[:64] = np.random.default_rng(1).bytes(64)  # ftyp box and the start of the rest
    corpus["corrupt_header"] = folder / "corrupt_header.mp4"
    corpus["corrupt_header"].write_bytes(bytes(data))
    corpus["truncated_mp4"] = _truncate(good, folder / "truncated_mp4.mp4", 0.5)
    corpus["truncated_mkv"] = _truncate(make_video(folder / "full.mkv", seconds=4), folder / "truncated_mkv.mkv", 0.5)
    corpus["truncated_mp3"] = _truncate(make_audio(folder / "full.mp3", seconds=4), folder / "truncated_mp3.mp3", 0.4)
    corpus["no_streams"] = folder / "metadata.mp4"
    corpus["no_streams"].write_text(";FFMETADATA1\ntitle=not a video\n", encoding="utf-8")
    corpus["subtitles_only"] = folder / "subtitles.mkv"
    corpus["subtitles_only"].write_text("1\n00:00:01,000 --> 00:00:02,000\nHello\n\n", encoding="utf-8")
    corpus["text_file"] = folder / "memo.txt"
    corpus["text_file"].write_text("These are meeting notes, not a video.\n" * 40, encoding="utf-8")
    corpus["subtitle_file"] = folder / "captions.srt"
    corpus["subtitle_file"].write_text("1\n00:00:01,000 --> 00:00:02,000\nHello\n\n2\n00:00:03,000 --> "
                                       "00:00:04,000\nThere\n\n", encoding="utf-8")
    return corpus


def make_clip_manifest(root: Path, clips: list[tuple[str, AudioKind | None, str]], captions: list[str]) -> Path:
    """``root/manifest.jsonl`` over 1.5-s clips ``(name, audio kind or None, split)`` made in ``root``,
    each with two of ``captions`` (a different tone per clip)."""
    from fusion.manifest import ManifestEntry, write_manifest

    entries = []
    for i, (name, audio, split) in enumerate(clips):
        path = make_video(root / f"{name}.mp4", seconds=1.5, fps=8, audio=audio, tone_hz=300 + 100 * i)
        entries.append(ManifestEntry(name, str(path), split, [captions[i % len(captions)],
                                                              captions[(i + 1) % len(captions)]], {}))
    write_manifest(entries, root / "manifest.jsonl")
    return root / "manifest.jsonl"

