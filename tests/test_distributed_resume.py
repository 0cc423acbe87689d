"""Training under torchrun: a run resumed with another world size; a failing rank stops the job with one error."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml

import fusion
from fusion.config import to_dict
from fusion.features import FeatureRecord, FeatureStore
from fusion.training import train
from fusion.training.metrics_log import MetricsLog
from tests.builders import DA, DV, T, ddp_toy_config as config, make_toy
from tests.distributed_launch import fusion_lines, run, torchrun_command

pytestmark = pytest.mark.slow  # torchrun
PACKAGE_DIR = os.path.dirname(fusion.__file__) + os.sep  # .../fusion/ of the code under test


class Crash(Exception):
    pass


def test_a_one_process_run_resumed_by_two_processes_continues_correctly(tmp_path: Path) -> None:
    make_toy(tmp_path)
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(to_dict(config(tmp_path))))
    train(config(tmp_path), tmp_path / "full", progress=False)

    def crash_at_13(step: int, loss: float) -> None:
        if step == 13:  # the last checkpoint is step 10
            raise Crash()

    with pytest.raises(Crash):
        train(config(tmp_path), tmp_path / "run", progress=False, on_step=crash_at_13)
    done = run(torchrun_command(2, "train", tmp_path / "exp.yaml", "--out", tmp_path / "run", "--no-progress"))
    assert done.returncode == 0, done.stderr
    assert "checkpointed by 1 processes, resumed by 2" in done.stderr
    full = MetricsLog(tmp_path / "full" / "metrics.jsonl").losses()
    resumed = MetricsLog(tmp_path / "run" / "metrics.jsonl").losses()
    assert [s for s, _ in resumed] == [s for s, _ in full]  # steps 1..10 kept, 11.. redone once
    assert max(abs(a - b) for (_, a), (_, b) in zip(resumed, full)) < 1e-5


def test_a_failing_rank_stops_the_job_with_its_error_once(tmp_path: Path) -> None:
    make_toy(tmp_path)
    store = FeatureStore(tmp_path / "store")
    rng = np.random.default_rng(1)  # the last validation video's audio is one feature too wide
    store.write(FeatureRecord(id="toy044", frames=rng.normal(size=(T, DV)).astype(np.float32),
                              audio=rng.normal(size=(5, DA + 1)).astype(np.float32)))
    cfg = config(tmp_path)
    cfg.train.max_steps = 9  # validation after the first epoch meets the bad record on one rank
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    done = run(torchrun_command(2, "train", tmp_path / "exp.yaml", "--out", tmp_path / "run", "--no-progress"),
               timeout=120)
    assert done.returncode != 0
    lines = fusion_lines(done.stderr)
    assert len(lines) == 1, done.stderr
    assert "toy044" in lines[0] and "audio features are 7-d" in lines[0] and lines[0].startswith("fusion train: error: rank ")
    assert PACKAGE_DIR not in done.stderr  # no traceback through fusion's code (whatever the checkout is called)
