"""Caption datasets over a feature store: (video features, caption) pairs, batching, sampling.

A manifest (``fusion.manifest``) lists videos with split and reference captions; a feature
store (``fusion.features``) holds one record per video. :class:`CaptionDataset` pairs them:
every (video, reference caption) is one training sample (S2VT trains on all references).
:func:`collate` pads variable-length modalities and keeps explicit masks: a video without an
audio stream has ``audio_present = False`` (the model swaps in its learned absent input),
never zeros pretending to be sound. :class:`EpochSampler` shuffles with a generator seeded
by ``(seed, epoch)``, so a resumed run sees exactly the batches the uninterrupted run saw.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from fusion.errors import DataError

if TYPE_CHECKING:
    from fusion.features import ExtractConfig, FeatureRecord, FeatureStore
    from fusion.manifest import ManifestEntry
    from fusion.text import Vocabulary

logger = logging.getLogger(__name__)


@dataclass
class DataConfig:
    """Which data a run trains on.

    Attributes:
        manifest: manifest path (relative paths are taken from the working directory);
            ``fusion train --manifest`` overrides it.
        features: feature store folder; None = ``<manifest dir>/features/<encoders>`` (filled
            by the commands' extraction stage, :mod:`fusion.stages`); ``fusion train --features``
            overrides it.
        train_split / val_split: manifest splits used for training and model selection.
        min_word_count: words seen fewer times in the training captions become ``<unk>``.
        max_caption_words: longer captions are cut to this many words (EOS added after).
        max_val_videos: validate on at most this many videos (None = all), to keep it cheap.
    """

    manifest: str | None = None
    features: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    min_word_count: int = 1
    max_caption_words: int = 20
    max_val_videos: int | None = None

    def __post_init__(self) -> None:
        if self.min_word_count < 1:
            raise ValueError(f"data.min_word_count must be >= 1, got {self.min_word_count}")
        if self.max_caption_words < 1:
            raise ValueError(f"data.max_caption_words must be >= 1, got {self.max_caption_words}")


@dataclass
class Batch:
    """A padded batch of B videos (and optionally one caption each).

    Attributes:
        ids: the B video ids.
        frames: float32 (B, T, Dv) frame features, zero past each video's length.
        frame_mask: bool (B, T) valid frame steps (a prefix per video).
        frame_present: bool (B,) False for a file without a video stream.
        audio: float32 (B, A, Da) audio step features; zeros (and masked) where absent.
        audio_mask: bool (B, A) valid audio steps; all False where the audio is absent.
        audio_present: bool (B,) False for a file without an audio stream.
        tokens: long (B, L) ``<bos> w1 .. wn <eos> <pad>..`` or None (no captions).
    """

    ids: list[str]
    frames: Tensor
    frame_mask: Tensor
    frame_present: Tensor
    audio: Tensor
    audio_mask: Tensor
    audio_present: Tensor
    tokens: Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device | str) -> Batch:
        """The same batch with every tensor on ``device``."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in moved.items():
            if isinstance(value, Tensor):
                moved[name] = value.to(device, non_blocking=True)
        return Batch(**moved)


def _fill_steps(dst: Tensor, mask: Tensor, row: int, steps: np.ndarray | None, rec_id: str, what: str,
                encoder: str) -> None:
    """Copy one record's (S, D) step features into row ``row`` of ``dst`` (B, S_max, D) and mark ``mask``.

    Absent (None) or empty features leave the row zero and unmasked.

    Raises:
        DataError: the feature width differs from the model's.
    """
    if steps is None or not len(steps):
        return
    if steps.shape[1] != dst.shape[2]:
        raise DataError(f"{rec_id}: {what} features are {steps.shape[1]}-d, the model expects {dst.shape[2]}-d; "
                        f"extract with the {encoder} the model was trained with")
    dst[row, : len(steps)] = torch.from_numpy(np.asarray(steps, dtype=np.float32))
    mask[row, : len(steps)] = True


def collate(
    records: Sequence[FeatureRecord],
    frame_dim: int,
    audio_dim: int,
    tokens: Sequence[Sequence[int]] | None = None,
    pad_id: int = 0,
) -> Batch:
    """Pad feature records (and token sequences) into a :class:`Batch`.

    Args:
        records: B feature records; ``frames``/``audio`` may be None (absent modality).
        frame_dim: Dv, used when no record in the batch has frames.
        audio_dim: Da, used when no record in the batch has audio (every MSVD batch).
        tokens: optional B id sequences (each ``bos .. eos``).
        pad_id: id that pads ``tokens``.
    """
    batch_size = len(records)
    if batch_size == 0:
        raise DataError("empty batch: the split has no videos; check the manifest's split names")
    t_max = max((r.frames.shape[0] for r in records if r.frames is not None), default=1)
    a_max = max((r.audio.shape[0] for r in records if r.audio is not None and len(r.audio)), default=1)
    frames = torch.zeros(batch_size, t_max, frame_dim)  # (B, T, Dv)
    frame_mask = torch.zeros(batch_size, t_max, dtype=torch.bool)
    audio = torch.zeros(batch_size, a_max, audio_dim)  # (B, A, Da)
    audio_mask = torch.zeros(batch_size, a_max, dtype=torch.bool)
    for i, rec in enumerate(records):
        _fill_steps(frames, frame_mask, i, rec.frames, rec.id, "frame", "frame encoder")
        if audio_dim > 0:
            _fill_steps(audio, audio_mask, i, rec.audio, rec.id, "audio", "audio layer")
    token_tensor = None
    if tokens is not None:
        l_max = max(len(t) for t in tokens)
        token_tensor = torch.full((batch_size, l_max), pad_id, dtype=torch.long)  # (B, L)
        for i, seq in enumerate(tokens):
            token_tensor[i, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
    return Batch(
        ids=[r.id for r in records],
        frames=frames,
        frame_mask=frame_mask,
        frame_present=frame_mask.any(1),
        audio=audio,
        audio_mask=audio_mask,
        audio_present=audio_mask.any(1),
        tokens=token_tensor,
    )


def encode_caption(vocab: Vocabulary, caption: str, max_words: int) -> list[int]:
    """``[bos] + ids of the first max_words words + [eos]``."""
    ids = vocab.encode(caption, bos=False, eos=False)[:max_words]
    return [vocab.bos_id, *ids, vocab.eos_id]


class CaptionDataset:
    """The videos of one split with their features and reference captions.

    Args:
        entries: manifest entries of the split (order kept).
        store: the feature store holding every entry's record.
        vocab: the training vocabulary.
        max_words: captions are cut to this many words.
    """

    def __init__(self, entries: Sequence[ManifestEntry], store: FeatureStore, vocab: Vocabulary, max_words: int = 20):
        self.entries = list(entries)
        self.vocab = vocab
        missing = [e.id for e in self.entries if e.id not in store]
        if missing:
            raise DataError(
                f"{len(missing)} videos (e.g. {missing[0]}) have no features in {getattr(store, 'path', store)}; "
                f"extract them first: `{extraction_command(getattr(store, 'path', store), getattr(store, 'config', None))}`"
            )
        # Feature records are small (T x Dv floats); keep them all in memory.
        self.records: list[FeatureRecord] = [store[e.id] for e in self.entries]
        self.pairs: list[tuple[int, list[int]]] = [
            (v, encode_caption(vocab, cap, max_words)) for v, e in enumerate(self.entries) for cap in e.captions
        ]
        first = next((r for r in self.records if r.frames is not None), None)
        self.frame_dim = int(first.frames.shape[1]) if first is not None else 0
        with_audio = next((r for r in self.records if r.audio is not None and len(r.audio)), None)
        self.audio_dim = int(with_audio.audio.shape[1]) if with_audio is not None else 0
        self.num_absent_audio = sum(1 for r in self.records if r.audio is None)

    def __len__(self) -> int:
        """Number of (video, caption) pairs."""
        return len(self.pairs)

    def references(self) -> dict[str, list[str]]:
        """Reference captions per video id."""
        return {e.id: list(e.captions) for e in self.entries}

    def feature_stats(self) -> tuple[Tensor, Tensor | None]:
        """Every frame step (float32 (N, Dv)) and audio step (float32 (M, Da), or None when no
        video has audio) of the split, for input standardisation."""
        frames = [r.frames for r in self.records if r.frames is not None and len(r.frames)]
        audio = [r.audio for r in self.records if r.audio is not None and len(r.audio)]
        as_tensor = lambda arrays: torch.from_numpy(np.concatenate(arrays).astype(np.float32, copy=False))  # noqa: E731
        return as_tensor(frames), (as_tensor(audio) if audio else None)

    def pair_batch(self, indices: Sequence[int], frame_dim: int, audio_dim: int) -> Batch:
        """The batch of pairs ``indices`` (teacher forcing targets in ``tokens``)."""
        picks = [self.pairs[int(i)] for i in indices]
        return collate(
            [self.records[v] for v, _ in picks], frame_dim, audio_dim, [t for _, t in picks], self.vocab.pad_id
        )



class EpochSampler:
    """Deterministic shuffled batches: epoch ``e`` is a permutation seeded by ``(seed, e)``.

    Args:
        num_items: dataset size.
        batch_size: items per batch; the last batch of an epoch may be smaller.
        seed: run seed.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int) -> None:
        if num_items < 1:
            raise DataError("no training pairs: the train split has no captioned videos; check the manifest")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed

    def __len__(self) -> int:
        """Batches per epoch."""
        return -(-self.num_items // self.batch_size)

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """The batches (int64 index arrays) of ``epoch``, identical on every call."""
        order = np.random.default_rng([self.seed, epoch]).permutation(self.num_items)
        return [order[i : i + self.batch_size] for i in range(0, self.num_items, self.batch_size)]


def default_store_path(manifest_path: str | Path, extract: ExtractConfig) -> Path:
    """``<manifest dir>/features/<frame encoder>[-g<grid>]-<frames>-<audio encoder>-<layer>-<fingerprint>``."""
    frames = f"{extract.frame_rate_hz}hz" if extract.frame_rate_hz else f"{extract.frames_per_clip}f"
    grid = f"-g{extract.frame_grid}" if extract.frame_grid > 1 else ""
    name = f"{extract.frame_encoder}{grid}-{frames}-{extract.audio_encoder}-{extract.audio_layer}-{extract.fingerprint()[:8]}"
    return Path(manifest_path).resolve().parent / "features" / name


def feature_store_path(manifest_path: str | Path, extract: ExtractConfig, features: str | Path | None) -> Path:
    """The store a manifest's features live in: ``features`` if given, else :func:`default_store_path`."""
    return Path(features) if features is not None else default_store_path(manifest_path, extract)


def extraction_command(store_path: str | Path, extract: ExtractConfig | None, manifest: str | Path = "MANIFEST") -> str:
    """The command line that fills ``store_path`` with ``extract``'s features (``fusion import-features`` for imported ones)."""
    from fusion.features import ExtractConfig
    from fusion.features.imported import import_command, imported_modality

    if extract is not None and imported_modality(extract) is not None:
        return import_command(store_path, extract)
    sets = ""
    if extract is not None:
        defaults = ExtractConfig().feature_dict()
        sets = "".join(f" --set '{key}={json.dumps(value)}'" if isinstance(value, (dict, list)) else f" --set {key}={value}"
                       for key, value in extract.feature_dict().items() if defaults.get(key) != value)
    return f"fusion extract {manifest} --out {store_path}{sets}"


def open_features(
    entries: Sequence[ManifestEntry],
    manifest_path: str | Path,
    extract: ExtractConfig,
    features: str | Path | None,
    *,
    strict: bool = True,
) -> FeatureStore:
    """Open the feature store holding every entry's record; never runs an encoder.

    Extraction is a stage of its own (:func:`fusion.stages.extract_features`, which ``fusion
    train`` / ``evaluate`` / ``tune`` / ``ablate`` run first, and ``fusion extract``).

    Args:
        entries: manifest entries whose features are needed.
        manifest_path: the manifest (the default store lives beside it).
        extract: extraction config (encoders, frames per clip); must match the store's.
        features: explicit store folder, or None for :func:`default_store_path`.
        strict: fail when some entries have no record (else :func:`readable_entries` drops them).

    Raises:
        DataError: the store is missing, holds other features, or (``strict``) lacks some
            entries' records; the message names the ``fusion extract`` command that fills it.
    """
    from fusion.features import FeatureStore

    path = feature_store_path(manifest_path, extract, features)
    if not path.is_dir():
        raise DataError(f"{path}: no feature store; extract the features first: "
                        f"`{extraction_command(path, extract, manifest_path)}`")
    from fusion.features.imported import store_config_for

    store = FeatureStore(path, store_config_for(path, extract))
    missing = [e.id for e in entries if e.id not in store]
    if missing and strict:
        raise DataError(f"{path}: {len(missing)} of {len(entries)} videos have no features (e.g. {missing[0]!r}); "
                        f"extract them first: `{extraction_command(path, extract, manifest_path)}`")
    logger.debug("feature store %s holds all %d videos", path, len(entries))
    return store


def readable_entries(
    entries: Sequence[ManifestEntry], store: FeatureStore, split: str, *, strict: bool = False
) -> tuple[list[ManifestEntry], list[dict[str, str]]]:
    """The entries whose video has a record in ``store``; the others (unreadable or missing
    videos, logged in the store's ``failures.jsonl`` by extraction) are skipped and said.

    Args:
        entries: one split's manifest entries.
        store: the opened feature store.
        split: the split's name, for the messages.
        strict: raise instead of skipping.

    Returns:
        ``(kept entries in order, skipped)``, each skipped item ``{"id", "video", "error"}``.

    Raises:
        DataError: ``strict`` and some videos lack features, or every video of the split does.
    """
    missing = [e for e in entries if e.id not in store]
    if not missing:
        return list(entries), []
    failures = {f.get("id"): f for f in store.failures()}  # the failing file: the video, or an imported feature file
    skipped = [{"id": e.id, "video": str(failures.get(e.id, {}).get("file") or e.video),
                "error": failures.get(e.id, {}).get("error") or "no features"} for e in missing]
    first = skipped[0]["error"] if skipped[0]["error"].startswith(skipped[0]["video"]) else \
        f"{skipped[0]['video']}: {skipped[0]['error']}"
    text = (f"{len(missing)} of {len(entries)} {split} videos could not be read (first: {first}); "
            f"see {store.failures_path}")
    kept = [e for e in entries if e.id in store]
    if strict:
        raise DataError(f"{text}; fix or drop them from the manifest (without --strict they are skipped)")
    if not kept:
        raise DataError(f"{text}; the {split} split is left empty: fix the videos or the manifest")
    logger.warning("%s; skipped them (--strict stops instead)", text)
    return kept, skipped
