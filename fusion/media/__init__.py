"""Media files with av (FFmpeg): probe, decode (sampled RGB frames + 22.05 kHz mono audio), write.

The package's rooms:

* :mod:`fusion.media.info`: open a file and read its streams from the headers (``probe``);
* :mod:`fusion.media.seek`: the demux-only scan and the decode plan (linear pass or seeks);
* :mod:`fusion.media.decoder`: ``decode`` (frames by presentation time, audio resampled);
* :mod:`fusion.media.write`: ``write_video`` / ``write_audio``, atomically.

The public names are re-exported here: ``from fusion.media import decode, probe, write_video``.
"""

from __future__ import annotations

import logging

from fusion.media.decoder import AUDIO_SAMPLE_RATE_HZ, Media, decode
from fusion.media.info import MediaInfo, probe
from fusion.media.write import write_audio, write_video

logger = logging.getLogger(__name__)

__all__ = ["AUDIO_SAMPLE_RATE_HZ", "Media", "MediaInfo", "decode", "probe", "write_audio", "write_video"]
