"""Where things are: the shared real data, the repository and the files of a run folder."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The real-data folder: ``$FUSION_DATA_DIR``, default ``<repo>/../shared/data``."""
    env = os.environ.get("FUSION_DATA_DIR")
    return Path(env).expanduser() if env else (REPO_ROOT.parent / "shared" / "data")


VERIFIER_FILE = "verifier.safetensors"  # RUN/verifier.safetensors: the audio-noun verifier `fusion train` fits
LEARNED_VERIFIER = "learned"  # decode.verifier value that selects the run's VERIFIER_FILE


def run_folder(checkpoint_dir: str | Path) -> Path:
    """The run folder of a checkpoint (``RUN/checkpoints/step-N`` -> ``RUN``); else the checkpoint folder."""
    ckpt = Path(checkpoint_dir)
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt
