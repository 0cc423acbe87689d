"""Launch ``fusion`` commands under torchrun (Gloo, CPU) from tests, and find its worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.builders import REPO

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_CPP_LOG_LEVEL": "ERROR", "PYTHONWARNINGS": "ignore"}


def torchrun_command(nproc: int, *args: str | Path) -> list[str]:
    """``torchrun --standalone --nproc_per_node nproc -m fusion ARGS`` (a free port is picked by torchrun)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "fusion", *map(str, args)]


def fusion_command(*args: str | Path) -> list[str]:
    """``python -m fusion ARGS`` (one process)."""
    return [sys.executable, "-m", "fusion", *map(str, args)]


def run(command: list[str], timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
    """Run ``command`` from the repository root, capturing text output."""
    return subprocess.run(command, env=ENV, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry.name))
    return sorted(out)


def fusion_lines(stderr: str) -> list[str]:
    """The lines fusion itself printed as errors (``fusion CMD: error: ...``)."""
    return [line for line in stderr.splitlines() if line.startswith("fusion ") and ": error: " in line]
