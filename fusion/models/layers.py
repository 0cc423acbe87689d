"""Input layers of the S2VT captioner: per-dimension standardisation, audio-to-frame resampling, step pooling."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

OUTLIER_FACTOR = 3.0  # Standardize: steps beyond this many times the largest training step norm are scaled


def resample_steps(audio: Tensor, audio_lengths: Tensor, frame_lengths: Tensor, num_steps: int) -> Tensor:
    """Linearly resample each video's audio steps onto its frame steps.

    Frames and audio both cover the whole clip uniformly, so frame step ``t`` of ``T_b``
    sits at relative time ``(t + 0.5) / T_b``; the audio is interpolated there.

    Args:
        audio: float32 (B, A, D) audio step features, padded at the end.
        audio_lengths: long (B,) valid audio steps per video (>= 1).
        frame_lengths: long (B,) valid frame steps per video (>= 1).
        num_steps: T, the padded number of frame steps.

    Returns:
        float32 (B, T, D); steps beyond a video's frame length repeat its last value.
    """
    a_len = audio_lengths.clamp(min=1).to(audio.dtype)[:, None]  # (B, 1)
    t_len = frame_lengths.clamp(min=1).to(audio.dtype)[:, None]  # (B, 1)
    t = torch.arange(num_steps, device=audio.device, dtype=audio.dtype)[None]  # (1, T)
    pos = ((t + 0.5) * a_len / t_len - 0.5).clamp(min=0.0)  # (B, T)
    pos = torch.minimum(pos, a_len - 1)
    lo = pos.floor().long()  # (B, T)
    hi = torch.minimum(lo + 1, (a_len - 1).long())  # (B, T)
    w = (pos - lo.to(pos.dtype))[..., None]  # (B, T, 1)
    d = audio.shape[-1]
    a_lo = audio.gather(1, lo[..., None].expand(-1, -1, d))  # (B, T, D)
    a_hi = audio.gather(1, hi[..., None].expand(-1, -1, d))  # (B, T, D)
    return a_lo * (1 - w) + a_hi * w


def pool_steps(steps: Tensor, mask: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Average each run of ``size`` consecutive valid steps (the last run may be shorter).

    Args:
        steps: float32 (B, T, D) step features, padded at the end.
        mask: bool (B, T) valid steps (a prefix per video).
        size: steps per pooled step (>= 1).

    Returns:
        float32 (B, ceil(T / size), D) pooled steps (zero where a run has no valid step) and
        their bool (B, ceil(T / size)) mask, again a prefix.
    """
    b, t, d = steps.shape
    n = -(-t // size)  # pooled steps
    pad = n * size - t
    w = mask.to(steps.dtype)  # (B, T)
    if pad:
        steps = torch.cat([steps, steps.new_zeros(b, pad, d)], 1)  # (B, n * size, D)
        w = torch.cat([w, w.new_zeros(b, pad)], 1)  # (B, n * size)
    w = w.view(b, n, size)  # (B, n, size)
    total = (steps.view(b, n, size, d) * w[..., None]).sum(2)  # (B, n, D)
    count = w.sum(2)  # (B, n)
    return total / count.clamp(min=1)[..., None], count > 0


class Standardize(nn.Module):
    """Per-dimension ``(x - mean) / std`` with statistics of the training features.

    Pooled CNN features of one dataset share a large common component; standardising every
    dimension over the training set, as a linear probe's scaler would, puts the dimensions
    that tell videos apart on an equal footing.
    The statistics are buffers, so checkpoints carry them; identity until :meth:`set_stats`.

    A standardised step whose root mean square exceeds ``OUTLIER_FACTOR`` times that of every
    training step (``max_rms``, recorded at training) is scaled to the norm of a typical
    training step (``typical_rms``, their median); every other step is left as it is, so
    in-distribution clips decode as before. A clip unlike the training data (a real video for
    a model trained on the benchmark's shapes) otherwise turns dimensions that hardly vary in
    training into inputs far out of range, which saturate the LSTMs and send the decoder into
    repeating one word; scaled, it reads as an ordinary input and the decoder writes a fluent
    sentence of its training world (the README, "Where the defaults come from", has the
    measured norms). Checkpoints saved before these buffers existed load without them
    (``has_bounds`` False) until :meth:`set_max_rms`.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.register_buffer("max_rms", torch.tensor(float("inf")))
        self.register_buffer("typical_rms", torch.tensor(float("inf")))

    @torch.no_grad()
    def set_stats(self, mean: Tensor, std: Tensor, min_std: float = 1e-3) -> None:
        """Set the statistics (float (D,) each); tiny stds are floored to ``min_std``."""
        self.mean.copy_(mean)
        self.std.copy_(std.clamp(min=min_std))

    @torch.no_grad()
    def set_max_rms(self, max_rms: float, typical_rms: float) -> None:
        """Set the largest root mean square a standardised step may keep and the one it is scaled to."""
        self.max_rms.fill_(float(max_rms))
        self.typical_rms.fill_(float(typical_rms))

    @torch.no_grad()
    def fit_max_rms(self, x: Tensor, chunk: int = 65536) -> tuple[float, float]:
        """Set ``max_rms`` / ``typical_rms`` to the largest / median root mean square of the
        standardised training steps x (N, D); returns them."""
        self.max_rms.fill_(float("inf"))
        rms = torch.cat([self(part).pow(2).mean(-1).sqrt() for part in x.split(chunk)])  # (N,)
        largest, typical = float(rms.max()), float(rms.median())
        self.set_max_rms(largest, typical)
        return largest, typical

    @property
    def has_bounds(self) -> bool:
        """True once the step norms are set (by training, or :meth:`set_max_rms`)."""
        return bool(torch.isfinite(self.max_rms) and torch.isfinite(self.typical_rms))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # Checkpoints from before the step norms load without them; per-dimension range buffers
        # ("lo", "hi") that an intermediate version saved are not used.
        for name in ("max_rms", "typical_rms"):
            state_dict.setdefault(prefix + name, getattr(self, name).detach().clone())
        for name in ("lo", "hi"):
            state_dict.pop(prefix + name, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        """x float32 (..., D) -> standardised; a step far beyond every training step's norm is scaled to a typical one."""
        z = (x - self.mean) / self.std
        if bool(torch.isfinite(self.max_rms)):
            rms = z.pow(2).mean(-1, keepdim=True).sqrt().clamp(min=1e-12)  # (..., 1)
            target = self.typical_rms if bool(torch.isfinite(self.typical_rms)) else self.max_rms
            z = torch.where(rms > self.max_rms * OUTLIER_FACTOR, z * (target / rms), z)
        return z
