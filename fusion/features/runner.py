"""Extract many videos into a store: resumable, shardable, decode overlapped with the CNN.

While the frame CNN and SoundNet run on clip i (torch ops release the GIL), background
threads (``decode_workers``) or worker processes (``decode_processes``, ``fusion extract
--workers K``) decode clips i+1..i+k with av, so decode time hides behind network time
instead of adding to it.

:func:`extract_job` is the same extraction for one process or every rank of a torchrun job:
rank r of N takes every N-th input of the (``--shard``) list, all ranks write into the one
store (records are atomic files), and rank 0 returns the merged summary.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fusion import distributed as dist
from fusion.errors import DataError, FusionError, error_text
from fusion.features.config import ExtractConfig, ExtractSummary, config_difference
from fusion.features.extractor import DecodedClip, FeatureExtractor
from fusion.features.inputs import select_shard
from fusion.features.store import FeatureStore
from fusion.progress import progress_bar

logger = logging.getLogger(__name__)


class _Prefetcher:
    """Decode up to ``depth`` clips ahead in ``workers`` threads (inline when workers == 0)."""

    def __init__(self, extractor: FeatureExtractor, todo: list[tuple[str, str]], workers: int) -> None:
        self.extractor = extractor
        self.todo = todo
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") if workers > 0 else None
        self.depth = workers + 1
        self.queue: deque[tuple[str, str, Future[DecodedClip]]] = deque()
        self.next_index = 0

    def _fill(self) -> None:
        assert self.pool is not None
        while len(self.queue) < self.depth and self.next_index < len(self.todo):
            video_id, path = self.todo[self.next_index]
            self.queue.append((video_id, path, self.pool.submit(self.extractor.decode, path)))
            self.next_index += 1

    def __iter__(self) -> Iterator[tuple[str, str, DecodedClip | Exception]]:
        """Yield ``(id, path, decoded clip or the exception decoding raised)`` in input order."""
        if self.pool is None:
            for video_id, path in self.todo:
                try:
                    yield video_id, path, self.extractor.decode(path)
                except Exception as err:  # noqa: BLE001 (recorded as a failure by the caller)
                    yield video_id, path, err
            return
        self._fill()
        while self.queue:
            video_id, path, future = self.queue.popleft()
            try:
                clip: DecodedClip | Exception = future.result()
            except Exception as err:  # noqa: BLE001
                clip = err
            self._fill()  # start the next decode before the networks take the cores
            yield video_id, path, clip

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def extract_to_store(
    inputs: list[tuple[str, str]],
    store: FeatureStore | str | Path,
    config: ExtractConfig,
    shard: tuple[int, int] = (0, 1),
    overwrite: bool = False,
    progress: bool = True,
    extractor: FeatureExtractor | None = None,
    device: str = "cpu",
) -> ExtractSummary:
    """Extract this shard's inputs into ``store``; finished ids are skipped unless ``overwrite``.

    Args:
        inputs: ``(id, path)`` pairs (see :func:`fusion.features.inputs.collect_inputs`).
        store: a store, or the folder of one (created with ``config`` if new).
        config: the extraction config; must match the store's unless ``overwrite``.
        shard: ``(I, N)``: only ids whose stable hash falls in shard I of N.
        overwrite: re-extract finished ids too (and adopt ``config`` if it changed).
        progress: show a tqdm bar (clips/s).
        extractor: reuse loaded encoders (else built here, only when there is work).
        device: where a new extractor's networks run.

    Returns:
        The run's :class:`ExtractSummary`. Files that fail are logged to the store's
        ``failures.jsonl`` and listed in ``failed``; the others complete.

    Raises:
        DataError: bad shard, config mismatch. WeightsError: pretrained weights missing.
    """
    start = time.perf_counter()
    if not isinstance(store, FeatureStore) or config_difference(store.info.get("config", {}), config) is not None:
        # (re)open with this config: a mismatch is a DataError, or adopted under overwrite
        store = FeatureStore(store.path if isinstance(store, FeatureStore) else store, config, overwrite=overwrite)
    store.remove_stale_temp_files()
    mine = select_shard(inputs, shard)
    todo = mine if overwrite else [(i, p) for i, p in mine if i not in store]
    repairs = [] if overwrite else corrupt_records(store, [(i, p) for i, p in mine if i in store])
    todo += repairs
    summary = ExtractSummary(skipped=len(mine) - len(todo), store=str(store.path), repaired=len(repairs))
    if not todo:
        summary.elapsed_s = time.perf_counter() - start
        return summary
    if extractor is not None and extractor.config.feature_dict() != config.feature_dict():
        raise DataError("extract_to_store: the extractor was built with another config; build one from this config")
    extractor = extractor or FeatureExtractor(config, device=device)
    store.set_encoders(extractor.encoders_info(), extractor.dims())
    prefetch: Any
    if config.decode_processes > 0:
        from fusion.features.decodepool import ProcessPrefetcher

        prefetch = ProcessPrefetcher(config, todo, config.decode_processes)
    else:
        prefetch = _Prefetcher(extractor, todo, config.decode_workers)
    bar = progress_bar(total=len(todo), unit="clip", desc=f"extract {shard[0]}/{shard[1]}", disable=None if progress else True)
    try:
        for video_id, path, clip in prefetch:
            try:
                if isinstance(clip, BaseException):
                    raise clip
                record = extractor.describe(clip, video_id)
                t0 = time.perf_counter()
                store.write(record)
                extractor.timings["write"] += time.perf_counter() - t0
                summary.done += 1
            except Exception as err:  # noqa: BLE001 (one bad file must not stop the others)
                text = error_text(err)
                if not isinstance(err, FusionError):
                    logger.error("%s: unexpected error", path, exc_info=err)
                store.log_failure(path, video_id, text)
                summary.failed.append({"file": path, "error": text})
            bar.update(1)
    finally:
        bar.close()
        prefetch.close()
    summary.elapsed_s = time.perf_counter() - start
    logger.info(
        "%s: %d done, %d skipped, %d failed in %.1f s", store.path, summary.done, summary.skipped,
        len(summary.failed), summary.elapsed_s,
    )
    return summary


def corrupt_records(store: FeatureStore, pairs: list[tuple[str, str]], *, full: bool = True) -> list[tuple[str, str]]:
    """The ``(id, path)`` pairs whose record is corrupt (see :meth:`FeatureStore.verify`), each logged.

    Args:
        store: the store holding the records.
        pairs: ids with a record in the store, and their media files.
        full: hash every record (else compare sizes only).
    """
    bad = []
    for video_id, path in pairs:
        problem = store.verify(video_id, full=full)
        if problem is not None:
            logger.warning("%s: corrupt feature record (%s); re-extracting it", store.record_path(video_id), problem)
            bad.append((video_id, path))
    return bad


def ensure_features(
    entries: list[Any],
    store_path: str | Path,
    config: ExtractConfig,
    *,
    progress: bool = True,
    allow_failures: bool = False,
    extractor: FeatureExtractor | None = None,
) -> FeatureStore:
    """Make sure every manifest entry has a record in the store; extract the missing ones.

    Args:
        entries: :class:`fusion.manifest.ManifestEntry` list (``id`` and absolute ``video``).
        store_path: the store folder (created if new).
        config: the extraction config (must match an existing store's).
        progress: tqdm bar while extracting.
        allow_failures: do not raise when some videos cannot be read (their ids stay missing,
            for the caller to skip and report).
        extractor: reuse loaded encoders (else built only when something is missing).

    Returns:
        The opened :class:`FeatureStore`.

    Raises:
        DataError: config mismatch, or (unless ``allow_failures``) videos that failed.
    """
    dist.setup()  # under torchrun each rank extracts every N-th missing video
    store = dist.main_first(lambda: FeatureStore(store_path, config))
    pairs = sorted({(e.id, str(e.video)) for e in entries})
    mine = dist.shard(pairs)
    missing = [(i, p) for i, p in mine if i not in store]
    missing += corrupt_records(store, [(i, p) for i, p in mine if i in store], full=False)
    (total,) = dist.all_reduce_sum([len(missing)])
    if not total:
        return store
    logger.info("%s: extracting %d of %d videos", store.path, int(total), len(pairs))
    summary = extract_to_store(missing, store, config, progress=progress and dist.is_main(), extractor=extractor)
    failed = [f for part in dist.all_gather(summary.failed) for f in part]
    with dist.together():  # every rank knows the failures; rank 0 reports them
        if failed and dist.is_main():
            first = failed[0]
            message = (
                f"{len(failed)} of {len(pairs)} videos could not be read (first: {first['file']}: "
                f"{first['error']}); see {store.failures_path}"
            )
            if not allow_failures:
                raise DataError(message + "; fix or drop them from the manifest")
            logger.info("%s", message)  # the caller skips them and says so (fusion.data.readable_entries)
    return store


def extract_job(
    inputs: list[tuple[str, str]],
    store_path: str | Path,
    config: ExtractConfig,
    shard: tuple[int, int] = (0, 1),
    overwrite: bool = False,
    progress: bool = True,
    device: str = "cpu",
) -> ExtractSummary | None:
    """:func:`extract_to_store` in one process, or across the ranks of a torchrun job.

    Under torchrun rank r takes every N-th input of shard ``shard`` (sorted by id), rank 0
    opens (creates, or under ``overwrite`` re-configures) the store before the others, every
    rank writes its records into it, and rank 0 gathers the ranks' summaries into one.

    Returns:
        The (merged) summary on rank 0; None on the other ranks.

    Raises:
        As :func:`extract_to_store`; an error on one rank stops every rank.
    """
    device = str(dist.setup(device))
    if dist.world_size() == 1:
        return extract_to_store(inputs, store_path, config, shard=shard, overwrite=overwrite, progress=progress,
                                device=device)
    start = time.perf_counter()
    mine = dist.shard(select_shard(inputs, shard))
    # Rank 0 creates the store (or adopts a new config under overwrite) before the others open it.
    store = dist.main_first(lambda: FeatureStore(store_path, config, overwrite=overwrite and dist.is_main()))
    with dist.together():  # the same weights error on every rank is shown once
        extractor = FeatureExtractor(config, device=device)
    summary = extract_to_store(mine, store, config, overwrite=overwrite, progress=progress and dist.is_main(),
                               extractor=extractor)
    parts = dist.gather_to_main(summary)
    if parts is None:
        return None
    merged = ExtractSummary(store=str(store.path), elapsed_s=time.perf_counter() - start)
    for part in parts:
        merged.done += part.done
        merged.skipped += part.skipped
        merged.repaired += part.repaired
        merged.failed.extend(part.failed)
    merged.failed.sort(key=lambda f: f["file"])
    return merged
