"""Run folders and checkpoints: save, resume, and :func:`load_run` for evaluate / caption.

A run folder::

    RUN/config.yaml            the resolved ExperimentConfig (what --set changed included)
    RUN/vocab.json             the training vocabulary
    RUN/metrics.jsonl          one JSON object per training step / validation
    RUN/tb/                    TensorBoard event files
    RUN/checkpoints/step-00000420/
        model.safetensors      the weights
        meta.json              config + vocabulary + encoder names + model dims + step metrics
        trainer.pt             optimizer, RNG and loop position (only needed to resume)
    RUN/checkpoints/last.json  {"name": "step-00000420"}: where a resumed run continues
    RUN/checkpoints/best.json  {"name": ..., "metric": "METEOR", "value": 0.31}: the best so far

A checkpoint folder is written under a temporary name and renamed into place, and the
pointer files are replaced atomically, so a killed run always leaves a consistent
checkpoint behind. Folders no pointer names are deleted.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from fusion.config import from_dict, to_dict
from fusion.errors import CheckpointError, ConfigError
from fusion.io import atomic_write_bytes, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

MODEL_FILE, META_FILE, TRAINER_FILE = "model.safetensors", "meta.json", "trainer.pt"
VERIFIER_FILE = "verifier.safetensors"  # RUN/verifier.safetensors: the audio-noun verifier `fusion train` fits
LEARNED_VERIFIER = "learned"  # decode.verifier value that selects the run's VERIFIER_FILE
CHECKPOINT_FORMAT = 1


@dataclass
class LoadedRun:
    """A trained captioner ready for decoding.

    Attributes:
        model: the S2VT model in eval mode.
        config: the run's ExperimentConfig.
        vocab: its Vocabulary.
        extract_config: the ExtractConfig its features were made with (= ``config.extract``).
        checkpoint_dir: the checkpoint folder loaded.
        meta: the checkpoint's meta.json (step, epoch, validation metrics, encoders, dims).
    """

    model: Any
    config: Any
    vocab: Any
    extract_config: Any
    checkpoint_dir: Path
    meta: dict[str, Any]


def checkpoints_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def read_pointer(run_dir: str | Path, which: str) -> dict[str, Any] | None:
    """The ``last`` / ``best`` pointer of a run, or None when there is none yet."""
    path = checkpoints_dir(run_dir) / f"{which}.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable ({err}); delete it to fall back to another checkpoint") from None
    if not (checkpoints_dir(run_dir) / data.get("name", "")).is_dir():
        raise CheckpointError(f"{path}: names {data.get('name')!r}, which is missing; delete the pointer file")
    return data


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: torch.nn.Module,
    meta: dict[str, Any],
    trainer_state: dict[str, Any] | None,
    *,
    last: bool = True,
    best: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint ``step-<step>`` and point ``last`` (and ``best`` if given) at it.

    Args:
        run_dir: the run folder.
        step: global optimizer step (names the folder).
        model: the model whose ``state_dict`` is saved (safetensors).
        meta: JSON-able facts (config, vocab, dims, encoders, metrics).
        trainer_state: optimizer / RNG / loop position for resuming (torch.save), or None.
        last: point ``last.json`` here.
        best: if given, ``best.json`` becomes ``{"name": ..., **best}``.

    Returns:
        The checkpoint folder.
    """
    root = checkpoints_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    final = root / name
    if not final.is_dir():
        tmp = root / f".tmp-{name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        # clone: tied weights (an LM's shared embedding / output, in deep fusion) share memory,
        # which safetensors refuses; each key gets its own copy and loads back into the same tensor.
        state = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / MODEL_FILE), metadata={"format": str(CHECKPOINT_FORMAT)})
        (tmp / META_FILE).write_text(json.dumps({"format": CHECKPOINT_FORMAT, "step": step, **meta}, indent=1) + "\n")
        if trainer_state is not None:
            torch.save(trainer_state, tmp / TRAINER_FILE)
        os.rename(tmp, final)
    else:  # same step again (e.g. the end of training after its last validation): same weights
        atomic_write_text(final / META_FILE, json.dumps({"format": CHECKPOINT_FORMAT, "step": step, **meta}, indent=1) + "\n")
        if trainer_state is not None:
            buf = io.BytesIO()
            torch.save(trainer_state, buf)
            atomic_write_bytes(final / TRAINER_FILE, buf.getvalue())
    if best is not None:
        atomic_write_json(root / "best.json", {"name": name, **best})
    if last:
        atomic_write_json(root / "last.json", {"name": name, "step": step})
    _prune(root)
    return final


def _prune(root: Path) -> None:
    """Delete checkpoint folders that neither pointer names (and stale temp folders)."""
    keep = set()
    for which in ("last", "best"):
        path = root / f"{which}.json"
        if path.is_file():
            keep.add(json.loads(path.read_text()).get("name"))
    for child in root.iterdir():
        if child.is_dir() and child.name not in keep and (child.name.startswith("step-") or child.name.startswith(".tmp-")):
            shutil.rmtree(child, ignore_errors=True)


def load_trainer_state(checkpoint_dir: Path) -> dict[str, Any]:
    """The resumable trainer state of a checkpoint (optimizer, RNG, loop position)."""
    path = checkpoint_dir / TRAINER_FILE
    if not path.is_file():
        raise CheckpointError(f"{checkpoint_dir}: no {TRAINER_FILE}, cannot resume from it; start a new --out folder")
    return torch.load(path, map_location="cpu", weights_only=True)


def resolve_checkpoint(path: str | Path, which: str = "best") -> Path:
    """The checkpoint folder ``path`` means.

    Args:
        path: a run folder (its ``which`` checkpoint; ``last`` when there is no ``best``),
            a checkpoint folder, or its ``model.safetensors``.
        which: "best" or "last".
    """
    path = Path(path)
    if path.is_file() and path.name in (MODEL_FILE, META_FILE):
        path = path.parent
    if (path / MODEL_FILE).is_file() and (path / META_FILE).is_file():
        return path
    if checkpoints_dir(path).is_dir():
        for name in (which, "last" if which == "best" else "best"):
            pointer = read_pointer(path, name)
            if pointer is not None:
                return checkpoints_dir(path) / pointer["name"]
        raise CheckpointError(f"{path}: the run has no checkpoint yet; train it first (`fusion train ... --out {path}`)")
    if not path.exists():
        raise CheckpointError(f"{path}: no such run or checkpoint; give a run folder made by `fusion train`")
    raise CheckpointError(
        f"{path}: not a run folder or checkpoint (no checkpoints/ or {MODEL_FILE}+{META_FILE}); "
        "give a folder made by `fusion train`"
    )


def run_folder(checkpoint_dir: str | Path) -> Path:
    """The run folder of a checkpoint (``RUN/checkpoints/step-N`` -> ``RUN``); else the checkpoint folder."""
    ckpt = Path(checkpoint_dir)
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt


def run_decode_config(checkpoint_dir: Path, stored: Any) -> Any:
    """The run's decode defaults: ``RUN/config.yaml``'s decode section where the checkpoint lives in
    a run folder (decode settings do not bind a run, so ``fusion train`` updates them there without
    retraining and they may be newer than the checkpoint's), else the checkpoint's ``stored`` one.

    Raises:
        ConfigError: the run's decode section is invalid (naming the file and key).
    """
    import yaml

    from fusion.experiment import DecodeConfig

    path = run_folder(checkpoint_dir) / "config.yaml"
    try:
        section = (yaml.safe_load(path.read_text()) or {}).get("decode")
    except (OSError, AttributeError, yaml.YAMLError):
        return stored
    if not isinstance(section, dict):
        return stored
    try:
        return from_dict(DecodeConfig, section, prefix="decode")
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def load_run(path: str | Path, which: str = "best", device: str | torch.device = "cpu") -> LoadedRun:
    """Load a trained captioner for evaluation or captioning.

    Args:
        path: a run folder, a checkpoint folder, or a checkpoint's model.safetensors.
        which: "best" (default) or "last" when ``path`` is a run folder.
        device: where the model's weights go.

    Raises:
        CheckpointError: missing/corrupt checkpoint, or a config this version cannot read.
    """
    from fusion.experiment import ExperimentConfig
    from fusion.models.deep_fusion import build_captioner
    from fusion.text import Vocabulary

    ckpt = resolve_checkpoint(path, which)
    try:
        meta = json.loads((ckpt / META_FILE).read_text())
        config = from_dict(ExperimentConfig, meta["config"])
        vocab = Vocabulary.from_dict(meta["vocab"])
        dims = meta["dims"]
        model = build_captioner(config, vocab, dims, initialise=False)  # weights are loaded next
        model.load_state_dict(load_file(str(ckpt / MODEL_FILE), device="cpu"))
    except ConfigError as err:
        raise CheckpointError(f"{ckpt}: its config cannot be read by this version ({err})") from None
    except (OSError, KeyError, ValueError, RuntimeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{ckpt}: unreadable checkpoint ({type(err).__name__}: {err}); retrain or pick another") from None
    config.decode = run_decode_config(ckpt, config.decode)
    model.to(device).eval()
    log.info("loaded %s (step %s)", ckpt, meta.get("step"))
    return LoadedRun(model, config, vocab, config.extract, ckpt, meta)


def checkpoint_meta(config: Any, vocab: Any, dims: dict[str, int], **extra: Any) -> dict[str, Any]:
    """The meta.json content: config, vocabulary, model dims, encoder names, plus ``extra``."""
    ex = config.extract
    encoders = {"frame": ex.frame_encoder, "audio": ex.audio_encoder, "audio_layer": ex.audio_layer}
    return {"config": to_dict(config), "vocab": vocab.to_dict(), "dims": dims, "encoders": encoders, **extra}
