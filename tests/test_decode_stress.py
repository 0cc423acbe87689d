"""Decoding never hangs: the real clips decoded many times across threads, under an outside timeout.

``scripts.stress_decode`` runs in a subprocess with PyAV's Python log callback installed (as
``import torchvision.io`` does), the setting in which freeing a codec whose frame threads are
still busy deadlocks the process; its C watchdog ends a stall with status 1, and the
subprocess timeout here ends it even if the watchdog could not.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import REPO, SUBPROCESS_ENV


@pytest.mark.real_data
@pytest.mark.timeout(120)
def test_real_clips_decode_in_four_threads_without_stalling(data_dir: Path) -> None:
    folders = [data_dir / "msrvtt" / "clips", data_dir / "msvd" / "clips"]
    if not all(f.is_dir() for f in folders):
        pytest.skip(f"real clips not found in {data_dir}/msrvtt/clips and msvd/clips")
    command = [sys.executable, "-m", "scripts.stress_decode", "--threads", "4", "--seconds", "8",
               "--num-frames", "4", "--stall-s", "20", "--clips", *map(str, folders)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, env=SUBPROCESS_ENV, cwd=REPO, timeout=90)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"decoding hung: no exit after 90 s\n{err.stderr}")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "no stall" in proc.stdout and ", 0 errors" in proc.stdout
    decodes = int(proc.stdout.split("stress_decode: ")[1].split()[0])
    assert decodes >= 8  # every thread finished at least two decodes
