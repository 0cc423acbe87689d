"""A test that hangs inside C with the GIL held fails the run (stacks printed, status 1) instead of stalling it.

pytest-timeout's timer is a Python thread, so it cannot fire while another thread holds the
GIL inside C (as a codec freed with busy frame threads does); ``tests/conftest.py``'s
faulthandler watchdog is a C thread and can. Here a test calls libc ``sleep`` through
``ctypes.PyDLL`` (which keeps the GIL during the call) in a pytest subprocess with this
project's settings (``pyproject.toml``: the thread method) and this suite's conftest.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import REPO, SUBPROCESS_ENV

HANGING_TEST = '''
import ctypes

def test_sleeps_in_c_holding_the_gil():
    ctypes.PyDLL(None).sleep(600)
'''


@pytest.mark.timeout(300)
def test_a_gil_holding_hang_ends_the_run_with_every_stack(tmp_path: Path) -> None:
    (tmp_path / "test_hangs.py").write_text(HANGING_TEST)
    env = {**SUBPROCESS_ENV, "FUSION_TEST_WATCHDOG_GRACE_S": "2"}
    command = [sys.executable, "-m", "pytest", "-q", "-c", str(REPO / "pyproject.toml"), "-p", "no:cacheprovider",
               "-p", "tests.conftest", "--timeout", "2", "--rootdir", str(tmp_path), str(tmp_path / "test_hangs.py")]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=240)  # sleep: 600 s
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Timeout (0:00:04)!" in proc.stderr and "test_sleeps_in_c_holding_the_gil" in proc.stderr
