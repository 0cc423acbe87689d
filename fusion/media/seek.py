"""Seek planning: which frames to decode, and whether to reach them linearly or by seeking.

A demux-only pass (:func:`scan`) reads every packet's timestamp and keyframe flag, and
checks the data against the container's declared duration (truncation). :func:`select`
picks the frames shown at the wanted times, by presentation time (never by frame count or
the duration field, so variable frame rate and lying metadata do not skew the sampling).
:func:`plan` then chooses one linear pass that stops after the last wanted frame (short
clips) or a seek to the keyframe before each wanted frame (long videos), whichever decodes
fewer frames.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import av
import numpy as np

from fusion.errors import ConfigError, MediaError

logger = logging.getLogger(__name__)

# A file whose packets end before this fraction of its declared duration (and more than
# TRUNCATION_MIN_GAP_S short) is reported as truncated rather than silently half-decoded.
TRUNCATION_FRACTION = 0.8
TRUNCATION_MIN_GAP_S = 0.5
# Cost of one seek in decoded-frame equivalents (demuxer re-sync + decoder flush).
SEEK_COST_FRAMES = 4


@dataclass
class Scan:
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

    @functools.cached_property
    def rank(self) -> dict[int, int]:
        """Presentation index of each packet pts (matches decoded frames to indices after a seek)."""
        return {int(k): p for p, k in enumerate(self.keys[self.order])}


def scan(container: av.container.InputContainer, video: av.video.stream.VideoStream | None,
         path: str) -> Scan | None:
    """Demux every packet once (no decoding); detect truncation against the declared duration.

    Returns:
        The video stream's index, or None when ``video`` is None (after the truncation check).

    Raises:
        MediaError: unreadable data, truncation, or a video stream without frames.
    """
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
    return Scan(key_arr, np.asarray(flags, dtype=bool), order, times, float(times[-1] + last), tb, seekable)


def select(index: Scan, num_frames: int | None, frame_rate_hz: float | None) -> np.ndarray:
    """Presentation indices (T,) of the frames shown at the wanted times.

    Wanted times are the centres of ``num_frames`` equal segments, or every 1/rate seconds.
    A frame starting within one timestamp tick (at most 1/16 frame) after a wanted time
    counts as shown at it, so timestamp rounding (Matroska stores milliseconds) cannot flip
    a choice when a wanted time falls on a frame boundary.
    """
    if frame_rate_hz is not None:
        if frame_rate_hz <= 0:
            raise ConfigError(f"frame_rate_hz must be > 0, got {frame_rate_hz}; pass a positive rate")
        targets = np.arange(0.0, index.end_s - 1e-9, 1.0 / frame_rate_hz)  # (T,)
    elif num_frames is None or num_frames < 1:
        raise ConfigError(f"num_frames must be >= 1, got {num_frames}; or pass frame_rate_hz")
    else:
        targets = (np.arange(num_frames) + 0.5) * (index.end_s / num_frames)  # (T,)
    steps = np.diff(index.times_s)
    slack = min(index.tick_s, float(np.median(steps)) / 16) if len(steps) else 0.0
    idx = np.searchsorted(index.times_s, targets + slack, side="right") - 1
    return np.clip(idx, 0, len(index.times_s) - 1)  # (T,)


def plan(index: Scan, wanted: np.ndarray) -> list[tuple[int | None, set[int]]]:
    """Decode plan: runs of (pts to seek to, or None for a linear pass from the start; indices).

    Linear decoding costs one decoded frame per packet up to the last wanted one; a seek
    costs the frames from the preceding keyframe plus ``SEEK_COST_FRAMES``. The cheaper
    plan wins, so short clips get one linear pass and long ones a seek per sample.
    """
    linear = [(None, {int(p) for p in wanted})]
    if not index.seekable:
        return linear
    key_idx = np.flatnonzero(index.keyframe)
    if not len(key_idx) or key_idx[0] != 0:
        key_idx = np.concatenate([[0], key_idx])
    runs: list[tuple[int | None, set[int]]] = []
    cost, pos = 0, -1
    for p in sorted(wanted, key=lambda q: index.order[q]):
        d = int(index.order[p])  # decode position
        kf = int(key_idx[np.searchsorted(key_idx, d, side="right") - 1])
        jump = d - kf + 1 + SEEK_COST_FRAMES
        if 0 <= pos <= d and d - pos <= jump:
            runs[-1][1].add(int(p))
            cost += d - pos
        else:
            runs.append((int(index.keys[kf]), {int(p)}))
            cost += jump
        pos = d
    return linear if cost >= pos + 1 else runs
