"""``metrics.jsonl``: one JSON object per training step or validation, cut back on resume."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fusion.io import atomic_write_text


class MetricsLog:
    """Append-only JSON Lines log of a run.

    Args:
        path: the log file (created on first append).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        """Append one record (flushed, so a kill loses at most the line being written)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def read(self) -> list[dict[str, Any]]:
        """Every complete record (a torn last line from a kill is skipped)."""
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def truncate_after(self, step: int) -> None:
        """Drop records logged after ``step`` (they are about to be recomputed on resume)."""
        records = self.read()
        kept = [r for r in records if int(r.get("step", 0)) <= step]
        if self.path.is_file():
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def losses(self) -> list[tuple[int, float]]:
        """(step, loss) of every training step, in order."""
        return [(int(r["step"]), float(r["loss"])) for r in self.read() if r.get("type") == "train"]
