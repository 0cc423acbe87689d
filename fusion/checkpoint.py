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
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

from fusion.config import from_dict, to_dict
from fusion.errors import CheckpointError, ConfigError
from fusion.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from fusion.paths import LEARNED_VERIFIER, VERIFIER_FILE, run_folder  # noqa: F401 (the run-folder layout, re-exported)

if TYPE_CHECKING:
    from fusion.decoding.config import DecodeConfig
    from fusion.experiment import ExperimentConfig
    from fusion.features import ExtractConfig
    from fusion.models.deep_fusion import DeepFusionS2VT
    from fusion.models.s2vt import S2VT
    from fusion.text import Vocabulary

logger = logging.getLogger(__name__)

MODEL_FILE, META_FILE, TRAINER_FILE = "model.safetensors", "meta.json", "trainer.pt"
CHECKPOINT_FORMAT = 1


@dataclass
class LoadedRun:
    """A trained captioner ready for decoding.

    Attributes:
        model: the captioner in eval mode (S2VT, or S2VT with a deep-fused LM).
        config: the run's ExperimentConfig; its ``decode`` section is ``RUN/config.yaml``'s
            where the checkpoint lives in a run folder.
        vocab: its Vocabulary.
        checkpoint_dir: the checkpoint folder loaded.
        meta: the checkpoint's meta.json (step, epoch, validation metrics, encoders, dims).
    """

    model: S2VT | DeepFusionS2VT
    config: ExperimentConfig
    vocab: Vocabulary
    checkpoint_dir: Path
    meta: dict[str, Any]

    @property
    def extract_config(self) -> ExtractConfig:
        """The ExtractConfig the run's features were made with (``config.extract``)."""
        return self.config.extract

    @property
    def run_dir(self) -> Path:
        """The run folder (:func:`run_folder` of the checkpoint)."""
        return run_folder(self.checkpoint_dir)


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


def _state_for_saving(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # clone: tied weights (an LM's shared embedding / output, in deep fusion) share memory,
    # which safetensors refuses; each key gets its own copy and loads back into the same tensor.
    return {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}


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
        state = _state_for_saving(model)
        save_file(state, str(tmp / MODEL_FILE), metadata={"format": str(CHECKPOINT_FORMAT)})
        (tmp / META_FILE).write_text(json.dumps({"format": CHECKPOINT_FORMAT, "step": step, **meta}, indent=1) + "\n")
        if trainer_state is not None:
            torch.save(trainer_state, tmp / TRAINER_FILE)
        os.rename(tmp, final)
    else:  # same step again (the end of training after its last validation, or a step redone after
        # resuming from an older checkpoint because this one was corrupt): rewrite every file atomically
        from safetensors.torch import save as save_bytes

        state = _state_for_saving(model)
        atomic_write_bytes(final / MODEL_FILE, save_bytes(state, metadata={"format": str(CHECKPOINT_FORMAT)}))
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
            try:
                keep.add(json.loads(path.read_text()).get("name"))
            except (OSError, ValueError, AttributeError):
                return  # a damaged pointer: delete nothing it might have named
    for child in root.iterdir():
        if child.is_dir() and child.name not in keep and (child.name.startswith("step-") or child.name.startswith(".tmp-")):
            shutil.rmtree(child, ignore_errors=True)


def load_weights(checkpoint_dir: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The ``model.safetensors`` state dict of a checkpoint.

    Raises:
        CheckpointError: the file is missing, truncated or corrupt (naming it and the fix).
    """
    from safetensors import SafetensorError

    path = checkpoint_dir / MODEL_FILE
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: unreadable weights ({reason}); the file is truncated or corrupt: "
                              f"delete {checkpoint_dir} to use an older checkpoint, or retrain") from None


def load_trainer_state(checkpoint_dir: Path) -> dict[str, Any]:
    """The resumable trainer state of a checkpoint (optimizer, RNG, loop position).

    Raises:
        CheckpointError: no ``trainer.pt``, or one that is truncated or corrupt (naming it).
    """
    path = checkpoint_dir / TRAINER_FILE
    if not path.is_file():
        raise CheckpointError(f"{checkpoint_dir}: no {TRAINER_FILE}, cannot resume from it; start a new --out folder")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: unreadable trainer state ({reason}); the file is truncated or corrupt: "
                              f"delete {checkpoint_dir} to resume from an older checkpoint") from None
    if not isinstance(state, dict) or "loop" not in state or "optimizer" not in state:
        raise CheckpointError(f"{path}: not a trainer state; delete {checkpoint_dir} to resume from an older one")
    return state


def resume_candidates(run_dir: str | Path) -> list[Path]:
    """The checkpoint folders a killed run may resume from, best first: ``last``, then the others newest first.

    A damaged ``last.json`` is skipped (the folders themselves are listed).
    """
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return []
    folders = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-")), reverse=True)
    try:
        pointer = read_pointer(run_dir, "last")
    except CheckpointError as err:
        logger.warning("%s", err)
        pointer = None
    first = [root / pointer["name"]] if pointer is not None else []
    return first + [p for p in folders if p not in first]


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


def run_decode_config(checkpoint_dir: Path, stored: DecodeConfig) -> DecodeConfig:
    """The run's decode section: ``RUN/config.yaml``'s where the checkpoint lives in a run folder
    (decode settings do not bind a run, so ``fusion train`` and ``fusion tune`` update them there
    without retraining and they may be newer than the checkpoint's), else the checkpoint's ``stored`` one.

    Raises:
        ConfigError: ``RUN/config.yaml`` is not valid YAML (naming the file and line) or its
            decode section is invalid (naming the file and key).
    """
    from fusion.config import read_yaml
    from fusion.decoding.config import DecodeConfig, legacy_section  # noqa: F811 (the runtime class)

    path = run_folder(checkpoint_dir) / "config.yaml"
    if not path.is_file():
        return stored
    section = legacy_section(read_yaml(path).get("decode"))
    if section is None:
        return stored
    try:
        return from_dict(DecodeConfig, section, prefix="decode")
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def write_run_decode(run: LoadedRun, changes: dict[str, Any]) -> Path:
    """Set decode fields in the run's ``RUN/config.yaml`` (atomically; the rest of the file is kept).

    A checkpoint outside a run folder gets a ``config.yaml`` beside it (its whole config), which
    :func:`load_run` then reads like a run folder's.

    Returns:
        The ``config.yaml`` written.

    Raises:
        ConfigError: the file is not valid YAML, or the new decode section is invalid.
    """
    import yaml

    from fusion.config import read_yaml
    from fusion.decoding.config import DecodeConfig  # noqa: F811 (the runtime class, for from_dict)

    path = run_folder(run.checkpoint_dir) / "config.yaml"
    data = read_yaml(path) if path.is_file() else to_dict(run.config)
    section = {**dict(data.get("decode") or {}), **changes}
    try:
        from_dict(DecodeConfig, section, prefix="decode")
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    data["decode"] = section
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
    return path


def load_run(path: str | Path, which: str = "best", device: str | torch.device = "cpu") -> LoadedRun:
    """Load a trained captioner for evaluation or captioning.

    Args:
        path: a run folder, a checkpoint folder, or a checkpoint's model.safetensors.
        which: "best" (default) or "last" when ``path`` is a run folder.
        device: where the model's weights go.

    Raises:
        CheckpointError: missing/corrupt checkpoint, or a config this version cannot read.
    """
    from fusion.decoding.config import legacy_section
    from fusion.experiment import ExperimentConfig
    from fusion.models.deep_fusion import build_captioner
    from fusion.text import Vocabulary

    ckpt = resolve_checkpoint(path, which)
    try:
        meta = json.loads((ckpt / META_FILE).read_text())
        stored = dict(meta["config"])
        stored["decode"] = legacy_section(stored.get("decode", {}))  # a run older than a decode field decodes as then
        config = from_dict(ExperimentConfig, stored)
        vocab = Vocabulary.from_dict(meta["vocab"])
        dims = meta["dims"]
        model = build_captioner(config, vocab, dims, initialise=False)  # weights are loaded next
        model.load_state_dict(load_weights(ckpt))
    except ConfigError as err:
        raise CheckpointError(f"{ckpt}: its config cannot be read by this version ({err})") from None
    except (OSError, KeyError, ValueError, RuntimeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{ckpt}: unreadable checkpoint ({type(err).__name__}: {err}); retrain or pick another") from None
    config.decode = run_decode_config(ckpt, config.decode)
    model.to(device).eval()
    logger.info("loaded %s (step %s)", ckpt, meta.get("step"))
    return LoadedRun(model, config, vocab, ckpt, meta)


def checkpoint_meta(config: ExperimentConfig, vocab: Vocabulary, dims: dict[str, int], **extra: Any) -> dict[str, Any]:
    """The meta.json content: config, vocabulary, model dims, encoder names, plus ``extra``."""
    extract = config.extract
    encoders = {"frame": extract.frame_encoder, "audio": extract.audio_encoder, "audio_layer": extract.audio_layer}
    return {"config": to_dict(config), "vocab": vocab.to_dict(), "dims": dims, "encoders": encoders, **extra}
