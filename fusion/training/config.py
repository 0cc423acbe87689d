"""Training hyper-parameters (:class:`TrainConfig`)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

logger = logging.getLogger(__name__)

ValMetric = Literal["METEOR", "CIDEr", "Bleu_4", "ROUGE_L", "loss"]
LRSchedule = Literal["constant", "cosine"]
Precision = Literal["fp32", "bf16", "fp16"]


@dataclass
class TrainConfig:
    """How a captioner is trained.

    Attributes:
        seed: seeds the weights, dropout and the data order (epoch e shuffles with (seed, e)).
        batch_size: (video, caption) pairs per step.
        max_epochs: passes over all training pairs.
        max_steps: stop after this many optimizer steps (None = no limit).
        lr: Adam learning rate (the peak, with a schedule).
        lr_schedule: "constant", or "cosine": linear warm-up over ``warmup_steps``, then a
            half cosine from ``lr`` down to ``lr * lr_final_ratio`` at the last step of the
            budget (``max_steps`` or ``max_epochs``). The rate is a function of the step
            alone, so a resumed run follows it exactly; late checkpoints change slowly, which
            makes the best-on-validation pick less of a coin toss.
        warmup_steps: steps of linear warm-up (cosine schedule only).
        lr_final_ratio: the cosine schedule's last rate as a share of ``lr``.
        label_smoothing: cross-entropy label smoothing (0 = off).
        weight_decay: Adam L2 penalty.
        grad_clip: clip the global gradient norm to this (0 = off).
        val_every_steps: validate every this many steps; None = at the end of every epoch.
        val_metric: model-selection metric: a coco-caption metric on greedy / beam captions
            of the validation videos (higher is better), or "loss" (validation
            cross-entropy, lower is better; needs no Java).
        val_beam: beam size for validation captions (1 = greedy).
        patience: stop after this many validations without improvement (0 = never).
        checkpoint_every_steps: also save the resumable "last" checkpoint this often
            (validations and the end of training always save it).
        device: "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...; under torchrun
            "cuda" means each rank's own GPU (``cuda:LOCAL_RANK``).
        precision: "fp32"; "bf16" (autocast, for GPUs with bfloat16 and CPUs); "fp16"
            (autocast with a gradient scaler). Runtime only: a run may resume with another.
        num_threads: torch CPU threads (None = torch's default).
        tensorboard: write TensorBoard event files under ``<run>/tb``.
    """

    seed: int = 0
    batch_size: int = 64
    max_epochs: int = 30
    max_steps: int | None = None
    lr: float = 1e-3
    lr_schedule: LRSchedule = "constant"
    warmup_steps: int = 0
    lr_final_ratio: float = 0.05
    label_smoothing: float = 0.0
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    val_every_steps: int | None = None
    val_metric: ValMetric = "METEOR"
    val_beam: int = 1
    patience: int = 5
    checkpoint_every_steps: int = 200
    device: str = "auto"
    precision: Precision = "fp32"
    num_threads: int | None = None
    tensorboard: bool = True

    def __post_init__(self) -> None:
        positive = {"batch_size": self.batch_size, "max_epochs": self.max_epochs, "val_beam": self.val_beam,
                    "checkpoint_every_steps": self.checkpoint_every_steps}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"train.{name} must be >= 1, got {value}")
        for name in ("max_steps", "val_every_steps", "num_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"train.{name} must be >= 1 or null, got {value}")
        if self.lr <= 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if self.warmup_steps < 0:
            raise ValueError(f"train.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.lr_final_ratio <= 1.0:
            raise ValueError(f"train.lr_final_ratio must be in [0, 1], got {self.lr_final_ratio}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"train.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.grad_clip < 0 or self.patience < 0 or self.weight_decay < 0:
            raise ValueError("train.grad_clip, train.patience and train.weight_decay must be >= 0")

    @property
    def higher_is_better(self) -> bool:
        """Whether a larger validation value is an improvement."""
        return self.val_metric != "loss"


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """The rate for optimizer step ``step`` (0-based) of a ``total_steps`` budget under ``config``'s schedule."""
    if config.lr_schedule == "constant":
        return config.lr
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(total_steps - config.warmup_steps - 1, 1)
    progress = min(max(step - config.warmup_steps, 0) / span, 1.0)
    final = config.lr * config.lr_final_ratio
    return final + (config.lr - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
