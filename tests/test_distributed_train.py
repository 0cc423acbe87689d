"""Training under torchrun (2 processes, Gloo on CPU) against one process; a rank killed and relaunched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from fusion.checkpoint import read_pointer
from fusion.config import to_dict
from fusion.training import train
from fusion.training.metrics_log import MetricsLog
from tests.builders import REPO, ddp_toy_config as config, make_toy
from tests.distributed_launch import ENV, children, run, torchrun_command

pytestmark = pytest.mark.slow  # torchrun

STEPS = 36  # 4 epochs of 9 global batches of 8 pairs


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    name = read_pointer(run_dir, "last")["name"]
    return load_file(str(run_dir / "checkpoints" / name / "model.safetensors"))


def train_command(root: Path, out: str) -> list[str]:
    return torchrun_command(2, "train", root / "exp.yaml", "--out", root / out, "--no-progress", "--json")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One toy, trained by one process (``one``) and by two (``two``)."""
    root = tmp_path_factory.mktemp("ddp")
    make_toy(root)
    (root / "exp.yaml").write_text(yaml.safe_dump(to_dict(config(root))))
    train(config(root), root / "one", progress=False)
    done = run(train_command(root, "two"))
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 1, "only rank 0 prints the result"
    assert json.loads(done.stdout)["steps"] == STEPS
    return root


def test_two_processes_give_the_losses_and_weights_of_one(runs: Path) -> None:
    one, two = (MetricsLog(runs / name / "metrics.jsonl").read() for name in ("one", "two"))
    assert [(r["type"], r["step"]) for r in two] == [(r["type"], r["step"]) for r in one]  # rank 0 alone logs
    train_one, train_two = ([r["loss"] for r in log if r["type"] == "train"] for log in (one, two))
    assert len(train_one) == STEPS
    assert max(abs(a - b) for a, b in zip(train_one, train_two)) < 1e-5
    vals = [(a["val_loss"], b["val_loss"]) for a, b in zip(one, two) if a["type"] == "val"]
    assert max(abs(a - b) for a, b in vals) < 1e-5
    w1, w2 = weights(runs / "one"), weights(runs / "two")
    assert w1.keys() == w2.keys()
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], rtol=1e-4, atol=1e-5)
    assert (runs / "two" / "config.yaml").is_file() and not (runs / "two" / "tb").exists()


def test_a_rank_killed_mid_run_then_relaunched_resumes_exactly(runs: Path) -> None:
    proc = subprocess.Popen(train_command(runs, "killed"), env=ENV, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    log = MetricsLog(runs / "killed" / "metrics.jsonl")
    deadline = time.time() + 90
    while time.time() < deadline and len(log.losses()) < 8 and proc.poll() is None:
        time.sleep(0.005)
    workers = children(proc.pid)
    assert len(workers) == 2, "torchrun runs two workers"
    os.kill(workers[-1], signal.SIGKILL)
    proc.communicate(timeout=60)  # torchrun stops the other rank: no hang
    assert proc.returncode != 0
    assert 0 < len(log.losses()) < STEPS, "the run was not killed mid-way"
    done = run(train_command(runs, "killed"))
    assert done.returncode == 0, done.stderr
    assert log.losses() == MetricsLog(runs / "two" / "metrics.jsonl").losses()
    resumed, reference = log.read(), MetricsLog(runs / "two" / "metrics.jsonl").read()
    assert [r.get("val_loss") for r in resumed] == [r.get("val_loss") for r in reference]
    w1, w2 = weights(runs / "killed"), weights(runs / "two")
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
