"""Decode media in worker processes (``fusion extract --workers K``), ahead of the networks.

Each worker process holds a frame preprocessor (no network) and turns a file into a
:class:`~fusion.features.extractor.DecodedClip`: av decoding of the sampled frames and the
22,050 Hz audio, then the frame CNN's resize/normalise. The prepared pixels travel back
through shared memory (``torch.multiprocessing`` reductions), and the raw frames stay in the
worker (only their count is kept), so a 720p clip costs the pipe a few bytes, not 90 MB.
The main process keeps up to ``2 K`` clips in flight and takes results in input order, so
the frame CNN and SoundNet never wait for av while there is decoding capacity left.

Workers start with ``spawn`` (a fresh interpreter: safe with OpenMP and CUDA in the parent)
and run torch with one thread each; a script that extracts with worker processes needs the
usual ``if __name__ == "__main__":`` guard. A worker that dies on a file (a decoder crash, out
of memory) fails that file only: the pool is restarted and the others go on.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from fusion.errors import FusionError
from fusion.features.config import ExtractConfig

logger = logging.getLogger(__name__)

_WORKER: dict[str, Any] = {}  # the worker process's decoder (set by _init_worker)


class DecodeFailure(FusionError):
    """A file a worker process could not decode; the message is the worker's one line."""


def _exit_with_parent(parent_pid: int) -> None:
    """Leave when the extracting process is gone (killed, even by SIGKILL): no orphan workers."""
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(0)


def _init_worker(config: ExtractConfig) -> None:
    import torch

    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()

    from fusion.encoders.frames import FrameRunner, get_frame_bundle

    torch.set_num_threads(1)
    bundle = get_frame_bundle(config.frame_encoder)
    _WORKER["config"] = config
    _WORKER["runner"] = FrameRunner(bundle, torch.nn.Identity(), torch.device("cpu"))  # prepare() only


def _decode_in_worker(path: str) -> Any:
    """DecodedClip of ``path`` (raw frames dropped), or the error as a :class:`DecodeFailure` text."""
    from fusion.features.extractor import decode_clip
    from fusion.errors import error_text

    try:
        clip = decode_clip(path, _WORKER["config"], _WORKER["runner"])
    except Exception as err:  # noqa: BLE001 (sent back as one line, recorded as a failure there)
        return DecodeFailure(error_text(err))
    frames = clip.media.frames
    if frames is not None:  # keep the frame count (record meta), not the pixels at source size
        clip.media = dataclasses.replace(clip.media, frames=frames[:, :0, :0])
    return clip


class ProcessPrefetcher:
    """Decode ``todo`` files in ``workers`` processes, yielding results in input order.

    Args:
        config: the extraction config (frames per clip, frame encoder's preprocessing).
        todo: ``(id, path)`` pairs.
        workers: processes (>= 1).
    """

    def __init__(self, config: ExtractConfig, todo: list[tuple[str, str]], workers: int) -> None:
        self.config, self.todo, self.workers = config, todo, workers
        self.pool = self._start()
        self.depth = 2 * workers
        self.queue: deque[tuple[str, str, Future[Any]]] = deque()
        self.next_index = 0

    def _start(self) -> ProcessPoolExecutor:
        import torch.multiprocessing as mp

        return ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self.config,))

    def _restart(self) -> None:
        """A worker died (a file that crashes the decoder, out of memory): new workers, the queue resubmitted."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._start()
        self.queue = deque((vid, path, self.pool.submit(_decode_in_worker, path)) for vid, path, _ in self.queue)

    def _fill(self) -> None:
        while len(self.queue) < self.depth and self.next_index < len(self.todo):
            video_id, path = self.todo[self.next_index]
            self.queue.append((video_id, path, self.pool.submit(_decode_in_worker, path)))
            self.next_index += 1

    def __iter__(self) -> Iterator[tuple[str, str, Any]]:
        """Yield ``(id, path, DecodedClip or the exception)`` in input order."""
        self._fill()
        while self.queue:
            video_id, path, future = self.queue.popleft()
            try:
                clip = future.result()
            except BrokenProcessPool:
                clip = DecodeFailure(f"{path}: the decode worker process died on this file (a crash in the "
                                     "decoder, or out of memory)")
                self._restart()
            except Exception as err:  # noqa: BLE001 (recorded as this file's failure)
                clip = err
            self._fill()
            yield video_id, path, clip

    def close(self) -> None:
        """Stop the workers (pending decodes are cancelled)."""
        self.pool.shutdown(wait=True, cancel_futures=True)
