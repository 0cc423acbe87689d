"""Decode any common video or audio file with av (FFmpeg): sampled RGB frames + 22.05 kHz mono audio.

Frames are chosen by presentation timestamp, never by frame count or by the
container's duration field, so variable frame rate and lying duration metadata do
not skew the sampling. Decoding works in two passes over the file: a cheap
demux-only scan reads every packet's timestamp and keyframe flag, then the decoder
runs either one linear pass that stops after the last wanted frame (short clips) or
a seek to the keyframe before each wanted frame (long videos), whichever decodes
fewer frames. Only the wanted frames are converted to RGB.

Audio of any layout, rate and sample format is resampled by FFmpeg's swresample
(``av.AudioResampler``) to 22,050 Hz mono float32, the input rate of SoundNet
(Aytar et al., NeurIPS 2016). A file without an audio stream has ``audio=None``
(absent); a silent track is present audio made of zeros.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

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
        frames: uint8 RGB (T, H, W, 3), upright; None when the file has no video stream
            (or frames were not asked for).
        frame_times_s: float64 (T,) presentation times of the sampled frames, seconds from
            the first video frame.
        audio: float32 (S,) in [-1, 1] at ``sample_rate_hz``, mono; None = no audio stream.
        sample_rate_hz: 22050.
        duration_s: Measured duration (video span from timestamps, else audio length).
        fps: Average frame rate of the video stream; None without video.
        frames_sampled: Number of distinct source frames among the T returned (less than T
            when the video has fewer frames than asked: nearest frames are repeated).
        rotation_deg: Counter-clockwise display rotation that was applied to the frames.
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
        raise MediaError(p, "not a readable video or audio file (corrupt header, truncated, or not media)") from None
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


def probe(path: str | Path) -> MediaInfo:
    """Read a file's streams from its headers. Raises MediaError if it is not usable media."""
    with _open(path) as container:
        video = _video_stream(container)
        audio = container.streams.audio[0] if container.streams.audio else None
        rate = (video.average_rate or video.guessed_rate) if video is not None else None
        return MediaInfo(
            path=str(path), format_name=container.format.name,
            duration_s=container.duration / av.time_base if container.duration else None,
            has_video_stream=video is not None, has_audio_stream=audio is not None,
            fps=float(rate) if rate else None,
            width=video.codec_context.width if video is not None else None,
            height=video.codec_context.height if video is not None else None,
            video_codec=video.codec_context.name if video is not None else None,
            audio_codec=audio.codec_context.name if audio is not None else None,
            audio_sample_rate_hz=audio.rate if audio is not None else None,
            audio_channels=audio.channels if audio is not None else None,
        )


@dataclass
class _Scan:
    """Demux-only index of the video stream: keys in decode order, times in presentation order."""

    keys: np.ndarray  # (P,) int64 pts (dts where pts is missing), decode order
    keyframe: np.ndarray  # (P,) bool, decode order
    times_s: np.ndarray  # (P,) float64 sorted presentation times
    end_s: float  # end of the last frame (its pts + duration)


def _scan(container: av.container.InputContainer, video: av.video.stream.VideoStream | None,
          path: str) -> _Scan | None:
    """Demux every packet once (no decoding); detect truncation against the declared duration."""
    keys: list[int] = []
    flags: list[bool] = []
    durations: list[int] = []
    content_end_s = 0.0
    try:
        for packet in container.demux():
            if packet.size == 0 or packet.time_base is None:
                continue
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                continue
            end = float((ts + (packet.duration or 0)) * packet.time_base)
            content_end_s = max(content_end_s, end - _start_s(packet.stream))
            if video is not None and packet.stream.index == video.index:
                keys.append(ts)
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
    key_arr = np.asarray(keys, dtype=np.int64)
    order = np.argsort(key_arr, kind="stable")
    tb = float(video.time_base)
    times = (key_arr[order] - key_arr[order][0]) * tb  # (P,) seconds from the first frame
    steps = np.diff(times)
    last = durations[order[-1]] * tb or (float(np.median(steps)) if len(steps) else
                                         1.0 / float(video.average_rate or video.guessed_rate or 25))
    return _Scan(key_arr, np.asarray(flags, dtype=bool), times, float(times[-1] + last))


def _start_s(stream: av.stream.Stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def _target_times(scan: _Scan, num_frames: int | None, frame_rate_hz: float | None) -> np.ndarray:
    """Wanted presentation times (seconds): segment centres, or every 1/rate seconds."""
    if frame_rate_hz is not None:
        if frame_rate_hz <= 0:
            raise ConfigError(f"frame_rate_hz must be > 0, got {frame_rate_hz}; pass a positive rate")
        return np.arange(0.0, scan.end_s - 1e-9, 1.0 / frame_rate_hz)  # (T,)
    if num_frames is None or num_frames < 1:
        raise ConfigError(f"num_frames must be >= 1, got {num_frames}; or pass frame_rate_hz")
    return (np.arange(num_frames) + 0.5) * (scan.end_s / num_frames)  # (T,)


def _plan(scan: _Scan, wanted_keys: np.ndarray) -> list[tuple[int | None, set[int]]]:
    """Decode plan: groups of (pts to seek to or None to continue, wanted keys in that run).

    Linear decoding costs one decoded frame per packet up to the last wanted one; a seek
    costs the frames from the preceding keyframe plus ``SEEK_COST_FRAMES``. The cheaper
    plan wins, so short clips get one linear pass and long ones a seek per sample.
    """
    position = {int(k): i for i, k in enumerate(scan.keys)}
    targets = sorted(position[int(k)] for k in wanted_keys)  # decode-order indices
    key_idx = np.flatnonzero(scan.keyframe)
    if not len(key_idx) or key_idx[0] != 0:
        key_idx = np.concatenate([[0], key_idx])
    groups: list[tuple[int | None, set[int]]] = []
    cost, pos = 0, -1
    for d in targets:
        kf = int(key_idx[np.searchsorted(key_idx, d, side="right") - 1])
        jump = d - kf + 1 + SEEK_COST_FRAMES
        forward = d - pos if 0 <= pos <= d else None
        if forward is not None and forward <= jump:
            groups[-1][1].add(int(scan.keys[d]))
            cost += forward
        else:
            groups.append((int(scan.keys[kf]), {int(scan.keys[d])}))
            cost += jump
        pos = d
    if cost >= targets[-1] + 1:  # one linear pass is no dearer
        return [(None, {int(k) for k in wanted_keys})]
    return groups


def _frame_key(frame: av.VideoFrame) -> int | None:
    return frame.pts if frame.pts is not None else frame.dts


def _decode_run(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                wanted: set[int], seek_to: int | None, out: dict[int, av.VideoFrame], path: str) -> None:
    """Decode from the start (or a seek point) until every key in ``wanted`` is in ``out``."""
    if seek_to is not None:
        container.seek(seek_to, stream=stream, backward=True, any_frame=False)
    last = max(wanted)
    for packet in container.demux(stream):
        try:
            decoded = packet.decode()
        except av.error.InvalidDataError:
            logger.warning("%s: skipped a corrupt video packet", path)
            continue
        passed = False
        for frame in decoded:
            key = _frame_key(frame)
            if key in wanted and key not in out:
                out[key] = frame
            passed = passed or (key is not None and key > last)
        if passed or wanted.issubset(out):  # decoder output is in presentation order
            return


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
    elif theta == 180:
        image = image[:, ::-1] if matrix[0] < 0 else image
        image = image[::-1] if matrix[4] < 0 else image
    elif theta == 270:
        image = np.rot90(image, k=-1)[::-1] if matrix[3] < 0 else np.rot90(image, k=1)
    elif matrix[4] < 0:
        image = image[::-1]
    return np.ascontiguousarray(image), rotation


def _decode_video(path: str, scan: _Scan, num_frames: int | None,
                  frame_rate_hz: float | None) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Sampled frames (T, H, W, 3) uint8, their times (T,), distinct count, rotation."""
    targets = _target_times(scan, num_frames, frame_rate_hz)  # (T,)
    idx = np.clip(np.searchsorted(scan.times_s, targets, side="right") - 1, 0, len(scan.times_s) - 1)
    sorted_keys = np.sort(scan.keys)  # presentation order
    wanted_keys = np.unique(sorted_keys[idx])
    got: dict[int, av.VideoFrame] = {}
    with _open(path) as container:
        stream = _video_stream(container)
        stream.thread_type = "AUTO"
        plan = _plan(scan, wanted_keys)
        for seek_to, keys in plan:
            _decode_run(container, stream, keys, seek_to, got, path)
        missing = {int(k) for k in wanted_keys} - set(got)
        if missing and plan[0][0] is not None:
            container.seek(0, stream=stream, backward=True)  # a seek missed: one linear pass
            _decode_run(container, stream, missing, None, got, path)
    if not got:
        raise MediaError(path, "no video frame could be decoded; the video stream is corrupt")
    have = np.array(sorted(got), dtype=np.int64)
    chosen: dict[int, np.ndarray] = {}
    rotation = 0
    frames = []
    for key in sorted_keys[idx]:
        near = int(have[np.argmin(np.abs(have - key))])  # a frame lost to corruption -> nearest one
        if near not in chosen:
            chosen[near], rotation = _orient(got[near].to_ndarray(format="rgb24"), got[near])
        frames.append(chosen[near])
    times = scan.times_s[idx]
    return np.stack(frames), times.astype(np.float64), len(chosen), rotation


def _decode_audio(path: str) -> np.ndarray | None:
    """The first audio stream as float32 (S,) mono at 22,050 Hz, or None without one."""
    with _open(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_SAMPLE_RATE_HZ)
        chunks: list[np.ndarray] = []
        bad = 0
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError:
                bad += 1
                continue
            for frame in decoded:
                frame.pts = None  # resample by sample count; gaps in timestamps are not audio
                chunks.extend(r.to_ndarray().reshape(-1) for r in resampler.resample(frame))
        chunks.extend(r.to_ndarray().reshape(-1) for r in resampler.resample(None))
        if bad:
            logger.warning("%s: skipped %d corrupt audio packets", path, bad)
    audio = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    return np.clip(audio, -1.0, 1.0)  # (S,)


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
