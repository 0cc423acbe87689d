"""Decode any common video or audio file with av (FFmpeg): sampled RGB frames + 22.05 kHz mono audio.

Frames are chosen by presentation time (:mod:`fusion.media.seek` scans the packets and
plans a linear pass or seeks, whichever decodes fewer frames); only wanted frames are
converted to RGB. Audio of any layout, rate and format is resampled (swresample) to
22,050 Hz mono float32, SoundNet's input rate (Aytar et al., NeurIPS 2016). No audio
stream -> ``audio=None`` (absent); a silent track is present audio made of zeros. A file
with no video stream whose audio stream holds no samples (a WAV header without data) holds
no media and raises MediaError.

Video is decoded with FFmpeg's frame threads. Decoding usually stops before a file's end,
and freeing a codec whose frame threads are still busy deadlocks once any library has
installed PyAV's Python log callback (``av.logging.set_level``; torchvision.io does so on
import): the freeing thread holds the GIL inside ``avcodec_free_context`` while a frame
thread waits for it inside the callback. ``_frame_threaded`` therefore flushes the codec
(``avcodec_flush_buffers`` runs without the GIL and waits for the frame threads) before
the codec is freed, so it is only ever freed with idle threads.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from fusion.errors import MediaError
from fusion.media.info import open_media, quiet_ffmpeg, video_stream
from fusion.media.seek import Scan, plan, scan, select

logger = logging.getLogger(__name__)

AUDIO_SAMPLE_RATE_HZ = 22050


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


def _decode_run(container: av.container.InputContainer, stream: av.video.stream.VideoStream, index: Scan,
                wanted: set[int], seek_to: int | None, out: dict[int, av.VideoFrame], path: str) -> None:
    """Decode until every presentation index in ``wanted`` is in ``out``.

    A linear pass from the start counts output frames (decoders emit them in presentation
    order, whatever the container's timestamps say); after a seek, frames are matched by pts.
    """
    if seek_to is not None:
        container.seek(seek_to, stream=stream, backward=True, any_frame=False)
    last = max(wanted)
    for count, frame in enumerate(_decoded(container, stream, path)):
        p = index.rank.get(frame.pts, -1) if seek_to is not None else count
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


@contextlib.contextmanager
def _frame_threaded(stream: av.video.stream.VideoStream) -> Iterator[av.video.stream.VideoStream]:
    """``stream`` decoding with FFmpeg's frame threads; its frame threads are idle on exit.

    ``flush_buffers`` releases the GIL and waits for every frame thread to finish the packet
    it holds, so the codec is later freed (with the GIL held) without busy threads: no frame
    thread can be waiting for the GIL in PyAV's log callback then (PyAV #1849 / #1861).
    """
    stream.thread_type = "AUTO"
    try:
        yield stream
    finally:
        stream.codec_context.flush_buffers()


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


def _decode_video(path: str, index: Scan, num_frames: int | None,
                  frame_rate_hz: float | None) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Sampled frames (T, H, W, 3) uint8, their times (T,), distinct count, rotation."""
    idx = select(index, num_frames, frame_rate_hz)  # (T,) presentation indices
    wanted = np.unique(idx)
    got: dict[int, av.VideoFrame] = {}
    with open_media(path) as container, _frame_threaded(video_stream(container)) as stream:
        runs = plan(index, wanted)
        for seek_to, run in runs:
            _decode_run(container, stream, index, run, seek_to, got, path)
        missing = {int(p) for p in wanted} - set(got)
        if missing and runs[0][0] is not None:
            logger.info("%s: %d frames missed after seeking; decoding linearly", path, len(missing))
            container.seek(0, stream=stream, backward=True)
            _decode_run(container, stream, index, missing, None, got, path)
    if not got:
        raise MediaError(path, "no video frame could be decoded; the video stream is corrupt")
    have = np.array(sorted(got), dtype=np.int64)
    chosen: dict[int, np.ndarray] = {}
    rotation = 0
    frames = []
    rgb = VideoReformatter()  # one scaler for the file (a frame's own to_ndarray makes one per frame)
    for p in idx:
        near = int(have[np.argmin(np.abs(have - p))])  # a frame lost to corruption -> nearest one
        if near not in chosen:
            image = rgb.reformat(got[near], format="rgb24").to_ndarray()  # (H, W, 3)
            chosen[near], rotation = _orient(image, got[near])
        frames.append(chosen[near])
    return np.stack(frames), index.times_s[idx].astype(np.float64), len(chosen), rotation


def _decode_audio(path: str) -> np.ndarray | None:
    """The first audio stream as float32 (S,) mono at 22,050 Hz, or None without one.

    Channels are resampled in their own layout, then averaged: mono is the mean of the
    channels (swresample's own mono downmix weights stereo by 1/sqrt(2) each, which
    lifts a centred source by 3 dB and can clip).
    """
    with open_media(path) as container:
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


@quiet_ffmpeg
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
        MediaError: missing, empty, truncated, corrupt or non-media file, no usable stream, or
            an audio-only file whose audio stream holds no samples.
        ConfigError: ``num_frames`` < 1 or ``frame_rate_hz`` <= 0.
    """
    path = str(path)
    with open_media(path) as container:
        video = video_stream(container)
        rate = (video.average_rate or video.guessed_rate) if video is not None else None
        index = scan(container, video, path)
    result = Media(path=path, frames=None, frame_times_s=None, audio=None,
                   sample_rate_hz=AUDIO_SAMPLE_RATE_HZ, duration_s=0.0, fps=None)
    if index is not None:
        result.duration_s = index.end_s
        result.fps = float(rate) if rate else (len(index.keys) / index.end_s if index.end_s > 0 else None)
        if frames:
            result.frames, result.frame_times_s, result.frames_sampled, result.rotation_deg = \
                _decode_video(path, index, num_frames, frame_rate_hz)
    if audio:
        result.audio = _decode_audio(path)
        if index is None and result.audio is not None:
            if not result.audio.size:  # e.g. a WAV header without data: nothing to hear, nothing to see
                raise MediaError(path, "holds no audio samples (an audio stream without data) and no video; "
                                       "re-record or re-encode it")
            result.duration_s = len(result.audio) / AUDIO_SAMPLE_RATE_HZ
    logger.debug("decoded %s: frames %s, audio %s", path,
                 None if result.frames is None else result.frames.shape,
                 None if result.audio is None else result.audio.shape)
    return result
