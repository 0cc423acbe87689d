"""Write video and audio files with av (FFmpeg), atomically.

``write_video`` is the writer behind the synthetic audio-visual benchmark
(``data_prep.avsynth`` writes hundreds of 6-8 s clips with it) and behind the
tests' media factory, so it favours speed: libx264 ``veryfast`` with a one-second
GOP by default. Audio is given as float32 in [-1, 1] at any rate; PyAV's encoder
front end converts it to the codec's sample format, channel layout and frame size,
and we pick a sample rate the codec supports (Opus only runs at 8-48 kHz rates
listed in RFC 6716, so 22,050 Hz audio is written at 24 kHz).

Every write goes to a temp file in the destination folder first and is moved into
place with ``os.replace``: a kill never leaves a half-written media file behind.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

logger = logging.getLogger(__name__)

# Friendly codec names -> FFmpeg encoder names.
VIDEO_ENCODERS: dict[str, str] = {
    "h264": "libx264", "libx264": "libx264", "mpeg4": "mpeg4", "vp9": "libvpx-vp9",
    "libvpx-vp9": "libvpx-vp9", "mjpeg": "mjpeg", "ffv1": "ffv1",
}
AUDIO_ENCODERS: dict[str, str] = {
    "aac": "aac", "opus": "libopus", "libopus": "libopus", "vorbis": "vorbis",
    "mp3": "libmp3lame", "libmp3lame": "libmp3lame", "flac": "flac",
    "pcm_s16le": "pcm_s16le", "pcm_f32le": "pcm_f32le",
}
# File extension -> (FFmpeg muxer, default audio codec for write_audio).
CONTAINERS: dict[str, tuple[str, str]] = {
    ".mp4": ("mp4", "aac"), ".m4v": ("mp4", "aac"), ".mov": ("mov", "aac"),
    ".mkv": ("matroska", "aac"), ".webm": ("webm", "opus"), ".avi": ("avi", "mp3"),
    ".wav": ("wav", "pcm_s16le"), ".flac": ("flac", "flac"), ".ogg": ("ogg", "vorbis"),
    ".opus": ("ogg", "opus"), ".mp3": ("mp3", "mp3"), ".m4a": ("mp4", "aac"),
    ".aac": ("adts", "aac"),
}
# Encoder options tuned for speed (the benchmark generator writes hundreds of clips).
_VIDEO_OPTIONS: dict[str, dict[str, str]] = {
    "libx264": {"crf": "23"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": "32", "b": "0"},
}


def _container_for(path: Path) -> str:
    ext = path.suffix.lower()
    if ext not in CONTAINERS:
        raise ValueError(f"{path}: unknown media extension {ext!r}; use one of {sorted(CONTAINERS)}")
    return CONTAINERS[ext][0]


@contextmanager
def _atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temp path beside ``path`` (same extension); move it into place on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name (not mkstemp) so FFmpeg creates the file with the usual umask permissions.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _as_channels(audio: np.ndarray) -> np.ndarray:
    """Return float32 audio as (C, S), clipped to [-1, 1]."""
    arr = np.asarray(audio, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]  # (1, S)
    if arr.ndim != 2 or arr.shape[0] > 8:
        raise ValueError(f"audio must be (S,) or (C, S) with C <= 8, got shape {arr.shape}")
    return np.clip(arr, -1.0, 1.0)


def _pick_rate(codec: av.Codec, sample_rate_hz: int) -> int:
    """The codec's rate closest to (and preferably not below) ``sample_rate_hz``."""
    rates = codec.audio_rates
    if not rates or sample_rate_hz in rates:
        return sample_rate_hz
    higher = [r for r in rates if r >= sample_rate_hz]
    return min(higher) if higher else max(rates)


def _add_audio_stream(container: av.container.OutputContainer, codec_name: str, channels: int,
                      sample_rate_hz: int) -> tuple[av.audio.stream.AudioStream, str]:
    encoder = AUDIO_ENCODERS.get(codec_name, codec_name)
    codec = av.Codec(encoder, "w")
    rate = _pick_rate(codec, sample_rate_hz)
    options = {"strict": "experimental"} if encoder == "vorbis" else {}
    stream = container.add_stream(encoder, rate=rate, options=options)
    # FFmpeg's native Vorbis encoder only takes stereo; mono is written as two equal channels.
    layout = "stereo" if (channels == 2 or encoder == "vorbis") else "mono"
    stream.layout = layout
    return stream, layout


def _encode_audio(stream: av.audio.stream.AudioStream, layout: str, audio: np.ndarray,
                  sample_rate_hz: int) -> list[av.Packet]:
    """Encode (C, S) float32 audio; PyAV resamples to the stream's format/rate/frame size."""
    want = 2 if layout == "stereo" else 1
    if audio.shape[0] != want:
        audio = np.repeat(audio.mean(axis=0, keepdims=True), want, axis=0)  # (want, S)
    packets: list[av.Packet] = []
    chunk = 8192  # samples per input frame; the encoder re-chunks to its frame size
    for start in range(0, audio.shape[1], chunk):
        part = np.ascontiguousarray(audio[:, start:start + chunk])  # (C, <=chunk) float32
        frame = av.AudioFrame.from_ndarray(part, format="fltp", layout=layout)
        frame.sample_rate = sample_rate_hz
        frame.time_base = Fraction(1, sample_rate_hz)
        frame.pts = start
        packets.extend(stream.encode(frame))
    packets.extend(stream.encode(None))
    return packets


def _mux_interleaved(container: av.container.OutputContainer, *streams: list[av.Packet]) -> None:
    """Mux packets of several streams in time order (AVI readers rely on real interleaving)."""
    merged = [p for packets in streams for p in packets]
    merged.sort(key=lambda p: float((p.dts if p.dts is not None else p.pts or 0) * p.time_base))
    for packet in merged:
        container.mux(packet)


def write_audio(path: str | Path, audio: np.ndarray, sample_rate_hz: int, codec: str | None = None) -> None:
    """Write an audio file whose format follows the extension (.wav .flac .ogg .opus .mp3 .m4a .aac).

    Args:
        path: Destination; written atomically (temp file + ``os.replace``).
        audio: float32 waveform in [-1, 1], shape (S,) mono or (C, S) with C channels.
        sample_rate_hz: Sample rate of ``audio``; resampled where the codec needs another rate.
        codec: Audio codec ("pcm_s16le", "pcm_f32le", "flac", "vorbis", "opus", "mp3", "aac");
            default: the extension's usual codec (.ogg -> Vorbis, .wav -> 16-bit PCM).
    """
    path = Path(path)
    fmt = _container_for(path)
    codec = codec or CONTAINERS[path.suffix.lower()][1]
    data = _as_channels(audio)  # (C, S)
    with _atomic_output(path) as tmp, av.open(str(tmp), "w", format=fmt) as container:
        stream, layout = _add_audio_stream(container, codec, data.shape[0], sample_rate_hz)
        _mux_interleaved(container, _encode_audio(stream, layout, data, sample_rate_hz))


def _video_stream(container: av.container.OutputContainer, codec_name: str, fps: float,
                  width: int, height: int, time_base: Fraction, gop: int, preset: str,
                  rotation_deg: int, hflip: bool) -> av.video.stream.VideoStream:
    encoder = VIDEO_ENCODERS.get(codec_name, codec_name)
    options = dict(_VIDEO_OPTIONS.get(encoder, {}))
    if encoder == "libx264":
        options["preset"] = preset
    rate = Fraction(fps).limit_denominator(1001)
    stream = container.add_stream(encoder, rate=rate, options=options)
    stream.width, stream.height = width, height
    odd = width % 2 or height % 2
    # 4:2:0 H.264 needs even sizes (x264); odd sizes keep every pixel with 4:4:4 instead.
    stream.pix_fmt = {"mjpeg": "yuvj444p" if odd else "yuvj420p"}.get(
        encoder, "yuv444p" if (odd and encoder == "libx264") else "yuv420p")
    stream.time_base = time_base
    stream.codec_context.time_base = time_base
    stream.codec_context.gop_size = gop
    if encoder == "mpeg4":
        stream.codec_context.bit_rate = max(400_000, int(width * height * fps * 0.2))
    if rotation_deg or hflip:
        stream.set_display_rotation(rotation_deg, hflip=hflip)
    return stream


def write_video(path: str | Path, frames: np.ndarray, fps: float, audio: np.ndarray | None = None,
                sample_rate_hz: int = 44100, video_codec: str = "h264", audio_codec: str = "aac", *,
                frame_times_s: np.ndarray | None = None, rotation_deg: int = 0, hflip: bool = False,
                preset: str = "veryfast", gop_s: float = 1.0) -> None:
    """Write a video file (container by extension: .mp4 .mov .mkv .webm .avi), atomically.

    Args:
        path: Destination (.mp4/.mov/.mkv/.webm/.avi/.m4v).
        frames: uint8 RGB frames, shape (T, H, W, 3); odd H or W are fine.
        fps: Nominal frame rate (frames are spaced 1/fps apart unless ``frame_times_s`` is given).
        audio: Optional float32 waveform in [-1, 1], (S,) or (C, S), at ``sample_rate_hz``;
            None writes no audio stream; zeros write a silent (present) track.
        sample_rate_hz: Rate of ``audio``; resampled to a rate the audio codec supports.
        video_codec: "h264" (libx264, yuv420p; yuv444p for odd sizes), "mpeg4", "vp9", "mjpeg", "ffv1";
            the defaults become VP9 + Opus in .webm.
        audio_codec: "aac", "opus", "vorbis", "mp3", "flac", "pcm_s16le".
        frame_times_s: Optional (T,) float64 increasing presentation times for variable frame rate.
        rotation_deg: Counter-clockwise display rotation stored in the display matrix
            (phone video); the pixels are written as given.
        hflip: Also store a horizontal mirror in the display matrix (after the rotation).
        preset: libx264 speed preset ("ultrafast", "veryfast", ...).
        gop_s: Keyframe interval in seconds (short GOPs make seeking cheap).
    """
    path = Path(path)
    fmt = _container_for(path)
    if fmt == "webm":  # WebM admits only VP8/VP9/AV1 video and Opus/Vorbis audio
        video_codec = "vp9" if video_codec in ("h264", "libx264") else video_codec
        audio_codec = "opus" if audio_codec == "aac" else audio_codec
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be non-empty uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    num_frames, height, width, _ = frames.shape
    if frame_times_s is None:
        time_base = 1 / Fraction(fps).limit_denominator(1001)
        pts = np.arange(num_frames, dtype=np.int64)  # (T,) in frame periods
    else:
        times = np.asarray(frame_times_s, dtype=np.float64)
        if times.shape != (num_frames,) or np.any(np.diff(times) <= 0):
            raise ValueError("frame_times_s must be (T,) strictly increasing seconds")
        time_base = Fraction(1, 1000)  # millisecond timestamps, as in Matroska/WebM
        pts = np.round((times - times[0]) * 1000).astype(np.int64)  # (T,)
    data = _as_channels(audio) if audio is not None else None  # (C, S)
    # AVI has no negative timestamps: shifting for the audio codec's priming delay would
    # make the muxer insert an empty video frame, so keep timestamps as encoded.
    options = {"avoid_negative_ts": "disabled"} if fmt == "avi" else {}
    with _atomic_output(path) as tmp, av.open(str(tmp), "w", format=fmt, options=options) as container:
        stream = _video_stream(container, video_codec, fps, width, height, time_base,
                               max(1, round(gop_s * fps)), preset, rotation_deg, hflip)
        astream = _add_audio_stream(container, audio_codec, data.shape[0], sample_rate_hz) if data is not None else None
        video_packets: list[av.Packet] = []
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
            frame.pts = int(pts[i])
            frame.time_base = time_base
            video_packets.extend(stream.encode(frame))
        video_packets.extend(stream.encode(None))
        audio_packets = _encode_audio(astream[0], astream[1], data, sample_rate_hz) if astream else []
        _mux_interleaved(container, video_packets, audio_packets)
    logger.debug("wrote %s: %d frames %dx%d, audio %s", path, num_frames, width, height,
                 "none" if data is None else f"{data.shape}")
