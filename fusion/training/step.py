"""One optimizer step on a global batch: DDP across ranks, mixed precision, exact loss normalisation.

``train.batch_size`` is the global batch. Rank r of N takes its contiguous share of the
step's pair indices (:func:`fusion.distributed.split_batch`), so the samples of step k are
the same whatever N is. The loss each rank back-propagates is its sum of token losses divided
by (global token count / N): DistributedDataParallel averages gradients over the N ranks, so
the applied gradient is exactly the gradient of (sum of all token losses / global token
count), the mean cross-entropy one process computes on the whole batch. With dropout off, a
run with N processes therefore follows the one-process run up to float rounding.

Precision (``train.precision``): ``fp32``; ``bf16`` (autocast, no scaler; GPUs and CPUs);
``fp16`` (autocast with a gradient scaler, whose state is checkpointed; CUDA only, as the
CPU's oneDNN has no fp16 LSTM). The loss is computed in float32 in every case.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from fusion import distributed as dist
from fusion.distributed import autocast
from fusion.errors import ConfigError

logger = logging.getLogger(__name__)


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` on ``device``: pinned host memory and non-blocking copies for CUDA."""
    if device.type == "cuda":
        pinned = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}
        for name, value in pinned.items():
            if isinstance(value, torch.Tensor):
                pinned[name] = value.pin_memory()
        batch = type(batch)(**pinned)
    return batch.to(device)


class StepRunner:
    """Forward, backward and the optimizer update of one global batch.

    Args:
        model: the captioner (already on ``device``); wrapped in DDP when the world has
            more than one process.
        optimizer: its optimizer.
        device: this rank's device.
        precision: "fp32", "bf16" or "fp16".
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device,
                 precision: str = "fp32") -> None:
        self.module, self.optimizer, self.device, self.precision = model, optimizer, device, precision
        autocast(device, precision)  # validates the name
        if precision == "fp16" and device.type != "cuda":  # oneDNN has no fp16 LSTM on most CPUs
            raise ConfigError(f"train.precision=fp16 needs a CUDA device (this run is on {device}); "
                              "use --set train.precision=bf16 on the CPU")
        self.model: torch.nn.Module = model
        if dist.world_size() > 1:
            from torch.nn.parallel import DistributedDataParallel

            # Parameters unused in a step (the learned absent-audio input when every clip has
            # audio) are allowed; buffers (input statistics) are the same on every rank.
            self.model = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None,
                broadcast_buffers=False, find_unused_parameters=True,
            )
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def state_dict(self) -> dict[str, Any]:
        """The gradient scaler's state (empty unless fp16)."""
        return self.scaler.state_dict() if self.scaler.is_enabled() else {}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore :meth:`state_dict` (ignored when empty or not fp16)."""
        if state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state)

    def step(self, dataset: Any, indices: Sequence[int], dims: tuple[int, int], *, pad_id: int, lr: float,
             label_smoothing: float, grad_clip: float) -> tuple[float, float]:
        """One optimizer step on the global batch ``indices`` of ``dataset``'s pairs.

        Every rank calls it with the same ``indices``. A rank whose batch fails (a bad record,
        out of memory) stops every rank: it raises its own error, the others
        :class:`fusion.distributed.PeerFailedError`.

        Returns:
            (mean token loss over the global batch, gradient norm before clipping).
        """
        local = dist.split_batch(indices)
        world = dist.world_size()
        error: BaseException | None = None
        loss: torch.Tensor | None = None
        count = 0
        try:
            # A rank without samples (a last batch smaller than the world) still joins the
            # gradient all-reduce, with one sample weighted zero.
            picks = local if local else [int(indices[0])]
            batch = to_device(dataset.pair_batch(picks, *dims), self.device)
            self.module.train()
            with autocast(self.device, self.precision):
                logits = self.model(batch)  # (b, L-1, V)
            targets = batch.tokens[:, 1:]  # (b, L-1)
            # One process: torch's mean over the batch's tokens, as always. N ranks: each rank's
            # sum, divided below by the global token count.
            loss = F.cross_entropy(logits.float().transpose(1, 2), targets, ignore_index=pad_id,
                                   label_smoothing=label_smoothing, reduction="mean" if world == 1 else "sum")
            count = int((targets != pad_id).sum()) if local else 0
            if not local:
                loss = loss * 0.0
        except Exception as err:  # noqa: BLE001 (shared with the other ranks first)
            error = err
        dist.agree(error)
        assert loss is not None
        if world == 1:
            total_loss, total_count = float(loss.detach()), 1.0
        else:
            total_count, total_loss = dist.all_reduce_sum([count, float(loss.detach())])
            # DDP averages gradients over the N ranks: dividing each rank's sum by (global
            # count / N) makes the applied gradient that of the mean over the global batch.
            loss = loss / (max(total_count, 1.0) / world)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        clip = grad_clip if grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return total_loss / max(total_count, 1.0), float(grad_norm)


def rng_state() -> dict[str, Any]:
    """This process's torch RNG state (CPU, and every CUDA device when there is one)."""
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def set_rng_state(rng: dict[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def seed_rank(seed: int, step: int, rank: int) -> None:
    """Seed this rank's dropout stream from (run seed, step, rank): distinct per rank, reproducible."""
    import numpy as np

    torch.manual_seed(int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0]))
