"""Decode any common video or audio file with av (FFmpeg): sampled RGB frames + 22.05 kHz mono audio.

Frames are chosen by presentation time, never by frame count or the container's duration
field, so variable frame rate and lying metadata do not skew the sampling. A demux-only
scan reads every packet's timestamp and keyframe flag; the decoder then runs one linear
pass that stops after the last wanted frame (short clips) or seeks to the keyframe before
each wanted frame (long videos), whichever decodes fewer frames; only wanted frames are
converted to RGB. Audio of any layout, rate and format is resampled (swresample) to
22,050 Hz mono float32, SoundNet's input rate (Aytar et al., NeurIPS 2016). No audio
stream -> ``audio=None`` (absent); a silent track is present audio made of zeros.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import av
import numpy as np

from fusion.errors import ConfigError, MediaError

logger = logging.getLogger(__name__)

AUDIO_SAMPLE_RATE_HZ = 22050
# A file whose packets end before this fraction of its declared duration (and more than
# TRUNCATION_MIN_GAP_S short) is reported as truncated rather than silently half-decoded.
TRUNCATION_FRACTION = 0.8
TRUNCATION_MIN_GAP_S = 0.5
# Cost of one seek in decoded-frame equivalents (demuxer re-sync + decoder flush).
SEEK_COST_FRAMES = 4


@dataclass(frozen=True)
class MediaInfo:
    """What a file holds, read from its headers (``probe``); no full decode."""

    path: str
    format_name: str
    duration_s: float | None
    has_video_stream: bool
    has_audio_stream: bool
    fps: float | None
    width: int | None  # coded width (before display rotation)
    height: int | None
    video_codec: str | None
    audio_codec: str | None
    audio_sample_rate_hz: int | None
    audio_channels: int | None

    @property
    def codecs(self) -> tuple[str, ...]:
        """Codec names of the video and audio streams, video first."""
        return tuple(c for c in (self.video_codec, self.audio_codec) if c)


@dataclass
class Media:
    """A decoded file.

    Attributes:
        path: The file.
        frames: uint8 RGB (T, H, W, 3), upright; None = no video stream (or not asked for).
        frame_times_s: float64 (T,) times of the sampled frames, s from the first frame.
        audio: float32 (S,) in [-1, 1], mono at ``sample_rate_hz``; None = no audio stream.
        sample_rate_hz: 22050.
        duration_s: Measured duration (video span from timestamps, else audio length).
        fps: Average frame rate of the video stream; None without video.
        frames_sampled: Distinct source frames among the T returned (< T when the video
            has fewer frames than asked: nearest frames are repeated).
        rotation_deg: Counter-clockwise display rotation applied to the frames.
    """

    path: str
    frames: np.ndarray | None
    frame_times_s: np.ndarray | None
    audio: np.ndarray | None
    sample_rate_hz: int
    duration_s: float
    fps: float | None
    frames_sampled: int = 0
    rotation_deg: int = 0

    @property
    def has_video(self) -> bool:
        """True when frames were decoded."""
        return self.frames is not None

    @property
    def has_audio(self) -> bool:
        """True when the file has an audio stream (a silent track counts)."""
        return self.audio is not None


_F = TypeVar("_F", bound=Callable)


def _ffmpeg_log_to_debug(func: _F) -> _F:
    """Keep FFmpeg's own messages ("moov atom not found") off stderr; log them at DEBUG.

    PyAV forwards FFmpeg's log to Python logging once anyone sets a level (torchvision.io
    sets ERROR on import); every failure here becomes a MediaError with a clearer reason.
    """
    @functools.wraps(func)
    def quiet(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        with av.logging.Capture(local=False) as logs:
            try:
                return func(*args, **kwargs)
            finally:
                for level, name, message in logs:
                    logger.debug("ffmpeg %s (%s): %s", name, level, str(message).strip())
    return quiet  # type: ignore[return-value]


def _open(path: str | Path) -> av.container.InputContainer:
    """Open ``path`` for reading; every failure becomes a one-line MediaError."""
    p = Path(path)
    if not p.exists():
        raise MediaError(p, "file not found; check the path")
    if p.is_dir():
        raise MediaError(p, "is a directory, not a media file; pass the files inside it")
    if p.stat().st_size == 0:
        raise MediaError(p, "empty file (0 bytes); re-download or re-encode it")
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except PermissionError:
        raise MediaError(p, "permission denied; make the file readable") from None
    except av.error.InvalidDataError:
        raise MediaError(p, "not a readable video or audio file: no valid header (corrupt, truncated or not "
                            "media); re-download or re-encode it") from None
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise MediaError(p, f"cannot be opened by FFmpeg ({reason}); is it a video or audio file?") from None
    if _video_stream(container) is None and not container.streams.audio:
        container.close()
        raise MediaError(p, "has no video or audio stream; pass a video or audio file")
    return container


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The first real video stream (cover art in mp3/flac files is not video)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


@_ffmpeg_log_to_debug
def probe(path: str | Path) -> MediaInfo:
    """Read a file's streams from its headers. Raises MediaError if it is not usable media."""
    with _open(path) as container:
        video = _video_stream(container)
        audio = container.streams.audio[0] if container.streams.audio else None
        has_v, has_a = video is not None, audio is not None
        rate = (video.average_rate or video.guessed_rate) if has_v else None
        return MediaInfo(
            path=str(path), format_name=container.format.name,
            duration_s=container.duration / av.time_base if container.duration else None,
            has_video_stream=has_v, has_audio_stream=has_a, fps=float(rate) if rate else None,
            width=video.codec_context.width if has_v else None, height=video.codec_context.height if has_v else None,
            video_codec=video.codec_context.name if has_v else None,
            audio_codec=audio.codec_context.name if has_a else None,
            audio_sample_rate_hz=audio.rate if has_a else None, audio_channels=audio.channels if has_a else None)


@dataclass
class _Scan:
    """Demux-only index of the video stream.

    Frames are addressed by presentation index (0 = first frame shown); ``order[p]`` is the
    decode-order position of presentation index ``p``.
    """

    keys: np.ndarray  # (P,) int64 pts of each packet, decode order
    keyframe: np.ndarray  # (P,) bool, decode order
    order: np.ndarray  # (P,) int64 decode position of each presentation index
    times_s: np.ndarray  # (P,) float64 presentation times, increasing, from the first frame
    end_s: float  # end of the last frame (its time + duration)
    tick_s: float  # timestamp resolution (the stream's time base)
    seekable: bool  # packet pts are true presentation times (not AVI's frame counters)


def _scan(container: av.container.InputContainer, video: av.video.stream.VideoStream | None,
          path: str) -> _Scan | None:
    """Demux every packet once (no decoding); detect truncation against the declared duration."""
    keys: list[int | None] = []  # pts, decode order
    flags: list[bool] = []
    durations: list[int] = []
    content_end_s = 0.0
    try:
        for packet in container.demux():
            if packet.size == 0 or packet.time_base is None or packet.is_discard:
                continue
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is not None:
                start = packet.stream.start_time or 0
                end_s = float((ts - start + (packet.duration or 0)) * packet.time_base)
                content_end_s = max(content_end_s, end_s)
            if video is not None and packet.stream.index == video.index:
                keys.append(packet.pts)
                flags.append(packet.is_keyframe)
                durations.append(packet.duration or 0)
    except av.error.FFmpegError as err:
        raise MediaError(path, f"unreadable data after {content_end_s:.2f} s ({err.strerror}); "
                               "the file is truncated or corrupt") from None
    declared_s = container.duration / av.time_base if container.duration else None
    if declared_s and content_end_s < TRUNCATION_FRACTION * declared_s \
            and declared_s - content_end_s > TRUNCATION_MIN_GAP_S:
        raise MediaError(path, f"truncated: the file declares {declared_s:.2f} s but its data ends at "
                               f"{content_end_s:.2f} s; re-download or re-encode it")
    if video is None:
        return None
    if not keys:
        raise MediaError(path, "video stream has no frames; re-encode the file")
    rate = float(video.average_rate or video.guessed_rate or 25)
    tb = float(video.time_base)
    # AVI stores no presentation times (the demuxer counts frames in decode order), and raw
    # streams none at all: there frames are evenly spaced and only a linear pass is safe.
    seekable = None not in keys and container.format.name != "avi"
    key_arr = np.asarray(keys if seekable else np.arange(len(keys)), dtype=np.int64)  # (P,)
    if not seekable:
        tb = 1.0 / rate
    order = np.argsort(key_arr, kind="stable")  # (P,)
    times = (key_arr[order] - key_arr[order][0]) * tb  # (P,) seconds from the first frame
    steps = np.diff(times)
    last = (durations[order[-1]] * tb if seekable else 0.0) or \
        (float(np.median(steps)) if len(steps) else 1.0 / rate)
    return _Scan(key_arr, np.asarray(flags, dtype=bool), order, times, float(times[-1] + last), tb, seekable)


def _select(scan: _Scan, num_frames: int | None, frame_rate_hz: float | None) -> np.ndarray:
    """Presentation indices (T,) of the frames shown at the wanted times.

    Wanted times are the centres of ``num_frames`` equal segments, or every 1/rate seconds.
    A frame starting within one timestamp tick (at most 1/16 frame) after a wanted time
    counts as shown at it, so timestamp rounding (Matroska stores milliseconds) cannot flip
    a choice when a wanted time falls on a frame boundary.
    """
    if frame_rate_hz is not None:
        if frame_rate_hz <= 0:
            raise ConfigError(f"frame_rate_hz must be > 0, got {frame_rate_hz}; pass a positive rate")
        targets = np.arange(0.0, scan.end_s - 1e-9, 1.0 / frame_rate_hz)  # (T,)
    elif num_frames is None or num_frames < 1:
        raise ConfigError(f"num_frames must be >= 1, got {num_frames}; or pass frame_rate_hz")
    else:
        targets = (np.arange(num_frames) + 0.5) * (scan.end_s / num_frames)  # (T,)
    steps = np.diff(scan.times_s)
    slack = min(scan.tick_s, float(np.median(steps)) / 16) if len(steps) else 0.0
    idx = np.searchsorted(scan.times_s, targets + slack, side="right") - 1
    return np.clip(idx, 0, len(scan.times_s) - 1)  # (T,)


def _plan(scan: _Scan, wanted: np.ndarray) -> list[tuple[int | None, set[int]]]:
    """Decode plan: runs of (pts to seek to, or None for a linear pass from the start; indices).

    Linear decoding costs one decoded frame per packet up to the last wanted one; a seek
    costs the frames from the preceding keyframe plus ``SEEK_COST_FRAMES``. The cheaper
    plan wins, so short clips get one linear pass and long ones a seek per sample.
    """
    linear = [(None, {int(p) for p in wanted})]
    if not scan.seekable:
        return linear
    key_idx = np.flatnonzero(scan.keyframe)
    if not len(key_idx) or key_idx[0] != 0:
        key_idx = np.concatenate([[0], key_idx])
    runs: list[tuple[int | None, set[int]]] = []
    cost, pos = 0, -1
    for p in sorted(wanted, key=lambda q: scan.order[q]):
        d = int(scan.order[p])  # decode position
        kf = int(key_idx[np.searchsorted(key_idx, d, side="right") - 1])
        jump = d - kf + 1 + SEEK_COST_FRAMES
        if 0 <= pos <= d and d - pos <= jump:
            runs[-1][1].add(int(p))
            cost += d - pos
        else:
            runs.append((int(scan.keys[kf]), {int(p)}))
            cost += jump
        pos = d
    return linear if cost >= pos + 1 else runs


def _decode_run(container: av.container.InputContainer, stream: av.video.stream.VideoStream, scan: _Scan,
                wanted: set[int], seek_to: int | None, out: dict[int, av.VideoFrame], path: str) -> None:
    """Decode until every presentation index in ``wanted`` is in ``out``.

    A linear pass from the start counts output frames (decoders emit them in presentation
    order, whatever the container's timestamps say); after a seek, frames are matched by pts.
    """
    rank = {int(k): p for p, k in enumerate(scan.keys[scan.order])} if seek_to is not None else {}
    if seek_to is not None:
        container.seek(seek_to, stream=stream, backward=True, any_frame=False)
    last = max(wanted)
    for count, frame in enumerate(_decoded(container, stream, path)):
        p = rank.get(frame.pts, -1) if seek_to is not None else count
        if p in wanted and p not in out:
            out[p] = frame
        if p > last or wanted.issubset(out):
            return


def _decoded(container: av.container.InputContainer, stream: av.stream.Stream, path: str) -> Iterator[av.frame.Frame]:
    """Decoded frames of ``stream``; a corrupt packet is skipped with a warning, not fatal."""
    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.error.InvalidDataError:
            logger.warning("%s: skipped a corrupt %s packet", path, stream.type)


def _orient(image: np.ndarray, frame: av.VideoFrame) -> tuple[np.ndarray, int]:
    """Apply the display matrix (phone video) the way FFmpeg's autorotate does.

    Mirrors ``fftools/ffmpeg_filter.c`` (FFmpeg 7): theta = -rotation; 90 -> transpose clock
    (or cclock_flip), 180 -> hflip/vflip by the matrix signs, 270 -> cclock (or clock_flip).
    """
    matrix = next((np.frombuffer(bytes(sd), dtype="<i4") for sd in frame.side_data
                   if sd.type == av.sidedata.sidedata.Type.DISPLAYMATRIX), None)
    if matrix is None or len(matrix) != 9:
        return image, 0
    rotation = int(round(frame.rotation))  # counter-clockwise degrees
    theta = (-rotation) % 360
    if theta == 90:
        image = image.swapaxes(0, 1) if matrix[3] > 0 else np.rot90(image, k=-1)
    elif theta == 270:
        image = np.rot90(image, k=-1)[::-1] if matrix[3] < 0 else np.rot90(image, k=1)
    else:  # 0 or 180 degrees: mirrors by the signs of the diagonal
        image = image[:, ::-1] if theta == 180 and matrix[0] < 0 else image
        image = image[::-1] if matrix[4] < 0 else image
    return np.ascontiguousarray(image), rotation


def _decode_video(path: str, scan: _Scan, num_frames: int | None,
                  frame_rate_hz: float | None) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Sampled frames (T, H, W, 3) uint8, their times (T,), distinct count, rotation."""
    idx = _select(scan, num_frames, frame_rate_hz)  # (T,) presentation indices
    wanted = np.unique(idx)
    got: dict[int, av.VideoFrame] = {}
    with _open(path) as container:
        stream = _video_stream(container)
        stream.thread_type = "AUTO"
        plan = _plan(scan, wanted)
        for seek_to, run in plan:
            _decode_run(container, stream, scan, run, seek_to, got, path)
        missing = {int(p) for p in wanted} - set(got)
        if missing and plan[0][0] is not None:
            logger.info("%s: %d frames missed after seeking; decoding linearly", path, len(missing))
            container.seek(0, stream=stream, backward=True)
            _decode_run(container, stream, scan, missing, None, got, path)
    if not got:
        raise MediaError(path, "no video frame could be decoded; the video stream is corrupt")
    have = np.array(sorted(got), dtype=np.int64)
    chosen: dict[int, np.ndarray] = {}
    rotation = 0
    frames = []
    for p in idx:
        near = int(have[np.argmin(np.abs(have - p))])  # a frame lost to corruption -> nearest one
        if near not in chosen:
            chosen[near], rotation = _orient(got[near].to_ndarray(format="rgb24"), got[near])
        frames.append(chosen[near])
    return np.stack(frames), scan.times_s[idx].astype(np.float64), len(chosen), rotation


def _decode_audio(path: str) -> np.ndarray | None:
    """The first audio stream as float32 (S,) mono at 22,050 Hz, or None without one.

    Channels are resampled in their own layout, then averaged: mono is the mean of the
    channels (swresample's own mono downmix weights stereo by 1/sqrt(2) each, which
    lifts a centred source by 3 dB and can clip).
    """
    with _open(path) as container:
        if not container.streams.audio:
            return None
        resampler: av.AudioResampler | None = None
        chunks: list[np.ndarray] = []  # (n,) float32 pieces
        for frame in _decoded(container, container.streams.audio[0], path):
            if resampler is None or frame.layout.name != resampler.layout.name:  # first, or layout changed
                if resampler is not None:
                    chunks.extend(r.to_ndarray().mean(axis=0) for r in resampler.resample(None))
                resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=AUDIO_SAMPLE_RATE_HZ)
            frame.pts = None  # resample by sample count; gaps in timestamps are not audio
            chunks.extend(r.to_ndarray().mean(axis=0) for r in resampler.resample(frame))  # (C, n) -> (n,)
        if resampler is not None:
            chunks.extend(r.to_ndarray().mean(axis=0) for r in resampler.resample(None))
    audio = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    return np.clip(audio, -1.0, 1.0)  # (S,)


@_ffmpeg_log_to_debug
def decode(path: str | Path, num_frames: int | None = 32, frame_rate_hz: float | None = None,
           frames: bool = True, audio: bool = True) -> Media:
    """Decode a video or audio file.

    Args:
        path: Any container FFmpeg reads (mp4, avi, mkv, mov, webm, wav, flac, ogg, mp3, ...).
        num_frames: Frames sampled uniformly over the duration (the frame shown at the centre
            of each of ``num_frames`` equal segments). Ignored when ``frame_rate_hz`` is given.
        frame_rate_hz: Sample one frame every ``1/frame_rate_hz`` seconds instead.
        frames: Decode video frames.
        audio: Decode audio.

    Returns:
        Media with frames (T, H, W, 3) uint8 RGB upright or None, audio (S,) float32 at
        22,050 Hz or None (no audio stream).

    Raises:
        MediaError: missing, empty, truncated, corrupt or non-media file, or no usable stream.
        ConfigError: ``num_frames`` < 1 or ``frame_rate_hz`` <= 0.
    """
    path = str(path)
    with _open(path) as container:
        video = _video_stream(container)
        rate = (video.average_rate or video.guessed_rate) if video is not None else None
        scan = _scan(container, video, path)
    result = Media(path=path, frames=None, frame_times_s=None, audio=None,
                   sample_rate_hz=AUDIO_SAMPLE_RATE_HZ, duration_s=0.0, fps=None)
    if scan is not None:
        result.duration_s = scan.end_s
        result.fps = float(rate) if rate else (len(scan.keys) / scan.end_s if scan.end_s > 0 else None)
        if frames:
            result.frames, result.frame_times_s, result.frames_sampled, result.rotation_deg = \
                _decode_video(path, scan, num_frames, frame_rate_hz)
    if audio:
        result.audio = _decode_audio(path)
        if scan is None and result.audio is not None:
            result.duration_s = len(result.audio) / AUDIO_SAMPLE_RATE_HZ
    logger.debug("decoded %s: frames %s, audio %s", path,
                 None if result.frames is None else result.frames.shape,
                 None if result.audio is None else result.audio.shape)
    return result
