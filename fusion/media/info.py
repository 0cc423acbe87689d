"""Open a media file with av (FFmpeg) and read what it holds from its headers (``probe``).

Every failure to open a file (missing, empty, a directory, not media, no stream) becomes a
one-line :class:`fusion.errors.MediaError` naming the file and the fix. FFmpeg's own log
lines are kept off stderr and logged at DEBUG (``quiet_ffmpeg``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import av

from fusion.errors import MediaError

logger = logging.getLogger(__name__)


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


_F = TypeVar("_F", bound=Callable)

# FFmpeg renders any text file as "video" through its text-art demuxers (libavformat/tty.c:
# tty, bin, adf, idf, xbin) and decoders (ansi, bintext, xbin, idf): a plain .txt opens as an
# ANSI-art clip. Their streams are not media.
TEXT_ART_FORMATS = frozenset({"tty", "bin", "adf", "idf", "xbin"})
TEXT_ART_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})


def quiet_ffmpeg(func: _F) -> _F:
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


def open_media(path: str | Path) -> av.container.InputContainer:
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
    if video_stream(container) is None and not container.streams.audio:
        text = container.format.name in TEXT_ART_FORMATS or any(
            s.type == "video" and s.codec_context.name in TEXT_ART_CODECS for s in container.streams)
        kinds = sorted({s.type for s in container.streams})
        container.close()
        if text:
            raise MediaError(p, "is a text file, not media (FFmpeg would render its characters as video); "
                                "pass a video or audio file")
        held = f" (only {', '.join(kinds)} streams)" if kinds else ""
        raise MediaError(p, f"has no video or audio stream{held}; pass a video or audio file")
    return container


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The first real video stream (cover art in mp3/flac files and rendered text are not video)."""
    for stream in container.streams.video:
        if stream.disposition & av.stream.Disposition.attached_pic or stream.codec_context.name in TEXT_ART_CODECS:
            continue
        return stream
    return None


@quiet_ffmpeg
def probe(path: str | Path) -> MediaInfo:
    """Read a file's streams from its headers. Raises MediaError if it is not usable media."""
    with open_media(path) as container:
        video = video_stream(container)
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
