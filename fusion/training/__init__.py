"""Training the captioner: ``train(config, run_dir)`` and its config.

``TrainConfig`` is importable without the loop (``fusion.experiment`` composes it); the
loop is imported on first use of ``train`` / ``Trainer``.
"""

from __future__ import annotations

from typing import Any

from fusion.training.config import TrainConfig

__all__ = ["TrainConfig", "TrainResult", "Trainer", "train"]


def __getattr__(name: str) -> Any:
    if name in ("train", "Trainer", "TrainResult"):
        from fusion.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'fusion.training' has no attribute {name!r}")
