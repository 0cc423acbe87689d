"""Mixed precision on the CPU (bf16 / fp16 autocast, fp16 grad scaler), pinned-memory copies, batch sharing helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fusion import distributed as dist
from fusion.checkpoint import load_trainer_state, read_pointer
from fusion.errors import ConfigError
from fusion.features import ExtractConfig, FeatureExtractor
from fusion.media import Media
from fusion.training import train
from fusion.training.metrics_log import MetricsLog
from tests.builders import ddp_toy_config as config, make_toy


def test_bf16_training_runs_and_learns_on_cpu(tmp_path: Path) -> None:
    make_toy(tmp_path)
    cfg = config(tmp_path)
    cfg.train.max_epochs, cfg.train.precision, cfg.train.lr = 3, "bf16", 0.01
    result = train(cfg, tmp_path / "run", progress=False)
    losses = [loss for _, loss in MetricsLog(tmp_path / "run" / "metrics.jsonl").losses()]
    assert result.steps == 27 and all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3
    ckpt = tmp_path / "run" / "checkpoints" / read_pointer(tmp_path / "run", "last")["name"]
    assert load_trainer_state(ckpt)["scaler"] == {}  # the grad scaler is for fp16 only


def test_fp16_training_asks_for_a_gpu(tmp_path: Path) -> None:
    make_toy(tmp_path)
    cfg = config(tmp_path)
    cfg.train.precision = "fp16"
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device.*bf16"):
        train(cfg, tmp_path / "run", progress=False)


def test_an_unknown_precision_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="precision 'fp8'"):
        dist.autocast(torch.device("cpu"), "fp8")


def test_bf16_extraction_stays_close_to_fp32() -> None:
    rng = np.random.default_rng(0)
    media = Media(path="x.mp4", frames=rng.integers(0, 255, (4, 48, 64, 3), dtype=np.uint8),
                  frame_times_s=np.arange(4) / 4.0, audio=rng.uniform(-0.5, 0.5, 22050).astype(np.float32),
                  sample_rate_hz=22050, duration_s=1.0, fps=4.0, frames_sampled=4)
    records = {p: FeatureExtractor(ExtractConfig(frames_per_clip=4, random_weights=True, precision=p)).describe(media, "x")
               for p in ("fp32", "bf16")}
    for name in ("frames", "audio"):
        a, b = getattr(records["fp32"], name), getattr(records["bf16"], name)
        assert b.dtype == np.float32 and a.shape == b.shape
        assert np.abs(a - b).max() <= 0.05 * np.abs(a).max() + 1e-3
    assert ExtractConfig(precision="bf16").fingerprint() != ExtractConfig().fingerprint()


def test_one_process_helpers_are_identities() -> None:
    assert dist.world_size() == 1 and dist.rank() == 0 and dist.is_main()
    assert dist.shard([1, 2, 3]) == [1, 2, 3] and dist.all_gather("x") == ["x"] and dist.broadcast(5) == 5
    assert dist.split_batch([4, 5, 6]) == [4, 5, 6]
    assert [dist.split_batch(list(range(7)), r, 2) for r in range(2)] == [[0, 1, 2], [3, 4, 5, 6]]
    assert dist.all_reduce_sum([1, 2.5]) == [1.0, 2.5]
    items = list(range(23))
    for world in (1, 2, 3):  # whole batches of 4 on rank i mod N, back in item order
        parts = [[10 * x for s in dist.shard(range(0, 23, 4), r, world) for x in items[s : s + 4]] for r in range(world)]
        assert dist.unshard(parts, len(items), 4) == [10 * x for x in items]
    assert dist.map_batches(lambda batch: [x + 1 for x in batch], items, 4) == [x + 1 for x in items]
    with pytest.raises(ValueError, match="boom"), dist.together():
        raise ValueError("boom")
