"""Builders the test modules share (no test module imports from another): paths, subprocess env, tiny runs."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Subprocesses run this checkout's code with one math thread (same sums in every process).
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
