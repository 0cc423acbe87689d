"""What every benchmark script records beside its figures: the machine, and the results files."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

from fusion.io import atomic_write_json, atomic_write_text


def machine() -> dict[str, Any]:
    """torch version, CPU count and model, and the 1-min load average now (read at the end of a run)."""
    return {"torch": torch.__version__, "cpu_count": os.cpu_count(),
            "load_avg_1min_at_end": round(os.getloadavg()[0], 2), "cpu": platform.processor() or platform.machine()}


def write_report(out: Path, result: dict[str, Any], markdown: str, print_json: bool) -> None:
    """Write ``out`` (JSON) and ``out`` with suffix ``.md`` atomically, then print one of them."""
    atomic_write_json(out, result)
    atomic_write_text(out.with_suffix(".md"), markdown)
    print(json.dumps(result, indent=2) if print_json else markdown)
