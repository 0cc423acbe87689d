"""What a training run reads before its first step: manifest, features, vocabulary, datasets."""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from fusion.config import to_dict
from fusion.data import CaptionDataset, EpochSampler, default_store_path, open_features, readable_entries
from fusion.errors import CheckpointError, ConfigError, DataError
from fusion.io import atomic_write_text

log = logging.getLogger(__name__)

# Keys that may differ when a run folder is re-used: they change speed or logging, not numbers.
RUNTIME_KEYS: frozenset[str] = frozenset(
    {"train.device", "train.num_threads", "train.tensorboard", "train.precision", "extract.batch_size",
     "extract.decode_workers", "extract.decode_processes"}
)
# Keys added after runs existed, with the value every older run had: a run folder whose
# config.yaml lacks one still resumes when the new config keeps that value.
ADDED_KEYS: dict[str, Any] = {"extract.precision": "fp32", "extract.posteriors_per_step": False}
# Sections that never bind a run folder: decoding defaults change captions, not the trained weights.
UNBOUND_SECTIONS: tuple[str, ...] = ("decode.",)


@dataclass
class TrainingData:
    """Vocabulary, datasets and sampler of a run.

    Attributes:
        vocab: built from the training captions.
        train / val: the datasets of ``data.train_split`` / ``data.val_split``.
        sampler: the deterministic epoch sampler over the training pairs.
        frame_dim / audio_dim: raw feature widths (Dv, Da).
        encoders: the feature store's encoder names and weight versions.
    """

    vocab: Any
    train: CaptionDataset
    val: CaptionDataset
    sampler: EpochSampler
    frame_dim: int
    audio_dim: int
    encoders: dict[str, Any] = field(default_factory=dict)
    store: Any = None  # the FeatureStore the datasets read

    @property
    def dims(self) -> dict[str, int]:
        """Model construction sizes saved in every checkpoint."""
        return {"vocab_size": len(self.vocab), "frame_dim": self.frame_dim, "audio_dim": self.audio_dim}


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``RUN/.lock`` while training writes the folder.

    The OS drops the lock when the process dies (even on SIGKILL), so a killed run can be
    resumed at once; a second live trainer on the same folder is refused. Under torchrun rank 0
    holds the lock for the job (the other ranks never write the folder).

    Raises:
        DataError: another process is training into ``run_dir``.
    """
    from fusion import distributed as dist

    if not dist.is_main():
        yield
        return
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(f"{run_dir}: another `fusion train` is writing this run folder; "
                            "wait for it to finish or give another --out") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device: {name!r} is not a device; use auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: cuda is not available here; use --set train.device=cpu")
    return device


def resolve_data_paths(config: Any, manifest: str | Path | None, features: str | Path | None) -> None:
    """Set ``config.data.manifest`` / ``.features`` to the absolute paths a run will use.

    ``--manifest`` / ``--features`` win over the config; the feature store defaults to
    :func:`fusion.data.default_store_path` beside the manifest. The saved config then names
    the data the run trained on.
    """
    dc = config.data
    if manifest is not None:
        dc.manifest = str(manifest)
    if features is not None:
        dc.features = str(features)
    if not dc.manifest:
        raise ConfigError("data.manifest is not set; give --manifest MANIFEST or set data.manifest in the config")
    dc.manifest = str(Path(dc.manifest).expanduser().resolve())
    store = Path(dc.features).expanduser() if dc.features else default_store_path(dc.manifest, config.extract)
    dc.features = str(store.resolve())


def prepare_data(config: Any, progress: bool = True, strict: bool = False) -> TrainingData:
    """Load the manifest, open the feature store, build the vocabulary and datasets.

    Call :func:`resolve_data_paths` first (``config.data.manifest`` must be set). Videos
    without features (unreadable or missing files, see the store's ``failures.jsonl``) are
    left out and counted in a warning, unless ``strict``; a split left empty is an error.
    """
    from fusion.manifest import load_manifest, split_entries
    from fusion.text import Vocabulary

    dc = config.data
    entries = load_manifest(dc.manifest)
    train_entries, val_entries = split_entries(entries, dc.train_split), split_entries(entries, dc.val_split)
    for split, chosen, key in ((dc.train_split, train_entries, "train_split"), (dc.val_split, val_entries, "val_split")):
        if not chosen:
            found = sorted({e.split for e in entries})
            raise DataError(f"{dc.manifest}: no videos in split {split!r} (splits: {found}); "
                            f"set data.{key}, e.g. --set data.{key}={found[0] if found else 'train'}")
    store = open_features(train_entries + val_entries, dc.manifest, config.extract, dc.features, strict=False)
    train_entries, _ = readable_entries(train_entries, store, dc.train_split, strict=strict)
    val_entries, _ = readable_entries(val_entries, store, dc.val_split, strict=strict)
    vocab = Vocabulary.build([c for e in train_entries for c in e.captions], min_count=dc.min_word_count)
    train_ds = CaptionDataset(train_entries, store, vocab, dc.max_caption_words)
    val_ds = CaptionDataset(val_entries, store, vocab, dc.max_caption_words)
    dims = getattr(store, "info", {}).get("dims") or {}
    frame_dim = train_ds.frame_dim or int(dims.get("frames") or 0)
    audio_dim = train_ds.audio_dim or val_ds.audio_dim or int(dims.get("audio") or 0)
    if frame_dim < 1:
        raise DataError(f"{dc.manifest}: no training video has frame features; the captioner needs video")
    if config.model.uses_audio and audio_dim < 1:
        raise DataError(f"{dc.manifest}: no audio feature width known for audio_mode {config.model.audio_mode!r}; "
                        "extract with an audio encoder or use model.audio_mode=none")
    log.info("train: %d videos / %d pairs (%d without audio); val: %d videos; vocabulary %d words",
             len(train_ds.entries), len(train_ds), train_ds.num_absent_audio, len(val_ds.entries), len(vocab))
    sampler = EpochSampler(len(train_ds), config.train.batch_size, config.train.seed)
    encoders = getattr(store, "info", {}).get("encoders") or {}
    return TrainingData(vocab, train_ds, val_ds, sampler, frame_dim, audio_dim, encoders, store)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def check_run_config(config: Any, run_dir: str | Path) -> None:
    """Write ``config.yaml`` in a new run folder; in an existing one, check that it matches
    (a resumed run must be the same run) and take the new ``decode`` section, which does not bind.
    Under torchrun every rank checks and rank 0 alone writes.

    Raises:
        ConfigError: the folder holds a run with another config, naming the first key.
    """
    from fusion.checkpoint import read_pointer

    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    new = to_dict(config)
    # Only a run with a checkpoint binds the folder; a start that failed before one is redone.
    if path.is_file() and read_pointer(run_dir, "last") is not None:
        old = yaml.safe_load(path.read_text()) or {}
        flat_old, flat_new = _flatten(old), _flatten(new)
        for key in sorted(set(flat_old) | set(flat_new)):
            if key in RUNTIME_KEYS or key.startswith(UNBOUND_SECTIONS):
                continue
            if flat_old.get(key, ADDED_KEYS.get(key)) != flat_new.get(key):
                raise ConfigError(
                    f"{run_dir} holds a run with {key}={flat_old.get(key)!r}, this config has {flat_new.get(key)!r}; "
                    "re-run with the same config to resume, or give another --out folder"
                )
    from fusion import distributed as dist

    if dist.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, yaml.safe_dump(new, sort_keys=False))


def check_run_vocab(run_dir: str | Path, vocab: Any) -> None:
    """Write ``vocab.json`` in a new run folder; in an existing one, check it is unchanged.

    Raises:
        ConfigError: the training captions changed since the run started.
    """
    from fusion.checkpoint import read_pointer
    from fusion.distributed import is_main

    run_dir = Path(run_dir)
    vocab_path = run_dir / "vocab.json"
    try:
        resuming = read_pointer(run_dir, "last") is not None
    except CheckpointError:
        resuming = True  # a damaged pointer: resuming falls back to an intact checkpoint, and says so
    if vocab_path.is_file() and resuming:
        from fusion.text import Vocabulary

        try:
            saved = Vocabulary.load(vocab_path)
        except DataError as err:
            raise DataError(f"{err}; delete it and re-run: `fusion train` writes it again from the captions") from None
        if saved != vocab:
            raise ConfigError(f"{run_dir}: the training captions changed since this run started; use another --out")
    elif is_main():
        vocab.save(vocab_path)
