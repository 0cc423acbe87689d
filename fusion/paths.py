"""Where things are: the shared real data and the repository."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The real-data folder: ``$FUSION_DATA_DIR``, default ``<repo>/../shared/data``."""
    env = os.environ.get("FUSION_DATA_DIR")
    return Path(env).expanduser() if env else (REPO_ROOT.parent / "shared" / "data")
