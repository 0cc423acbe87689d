"""``checksums.jsonl``: the size and SHA-256 of every feature record a store wrote.

The store appends one line per record it writes, after the record is in place (one
``write`` call, so several shard processes may append at once); the last line of an id
wins. A record whose size or hash differs from its line was truncated or altered after it
was written (a partial copy, a bad disk): the store calls it corrupt and ``fusion extract``
re-extracts it. The lines cover the file's bytes, whatever a record holds, so they do not
change when the record format does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

CHECKSUMS_FILE = "checksums.jsonl"


class RecordChecksums:
    """The checksum lines of one store, re-read only when the file changed.

    Args:
        path: the store's ``checksums.jsonl`` (may not exist yet).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sums: dict[str, tuple[int, str]] = {}
        self._stamp: tuple[int, int] | None = None

    def _load(self) -> dict[str, tuple[int, str]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return self._sums
        stamp = (st.st_size, st.st_mtime_ns)
        if stamp != self._stamp:  # other writers append: re-read when the file changed
            sums: dict[str, tuple[int, str]] = {}
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    item = json.loads(line)
                    sums[str(item["id"])] = (int(item["bytes"]), str(item["sha256"]))
                except (ValueError, KeyError, TypeError):
                    continue  # the torn last line of a killed writer: that record is not vouched for
            self._sums, self._stamp = sums, stamp
        return self._sums

    def known(self, video_id: str) -> bool:
        """Whether a line vouches for ``video_id``'s record."""
        return video_id in self._load()

    def check(self, video_id: str, size: int, read: Callable[[], bytes] | None) -> str | None:
        """Why a record of ``size`` bytes does not match its line, or None (also when it has none).

        Args:
            video_id: the record's id.
            size: the file's size in bytes.
            read: returns the file's bytes, called only when the size matches; None compares
                the size alone.
        """
        expected = self._load().get(video_id)
        if expected is None:
            return None  # written before checksums existed, or by a writer killed before its line
        want_size, want_hash = expected
        if size != want_size:
            return f"{size} bytes, {want_size} were written"
        if read is not None and hashlib.sha256(read()).hexdigest() != want_hash:
            return "its SHA-256 differs from the one written"
        return None

    def append(self, video_id: str, data: bytes) -> None:
        """Vouch for the record ``data`` just written for ``video_id``."""
        line = json.dumps({"id": video_id, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        with open(self.path, "a", encoding="utf-8") as fh:  # one write call: safe beside other writers
            fh.write(line + "\n")
