"""Shared by the dataset importers: write a manifest plus the list of clips missing on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fusion.io import atomic_write_text
from fusion.manifest import SPLITS, ManifestEntry, write_manifest


@dataclass
class PrepSummary:
    """What an importer wrote.

    Attributes:
        manifest: The manifest path.
        videos: Videos per split.
        captions: Captions in all.
        present: Videos found on disk.
        missing: Videos missing on disk (still in the manifest).
        missing_list: The file listing the missing ids, one per line.
        layout: Which source layout was read (importer-specific), if any.
        with_audio: Present videos with an audio stream, where the importer probed them.
    """

    manifest: Path
    videos: dict[str, int]
    captions: int
    present: int
    missing: int
    missing_list: Path
    layout: str | None = None
    with_audio: int | None = None


def write_with_missing(entries: list[ManifestEntry], missing: list[str], out: Path,
                       missing_list: str | Path | None, layout: str | None = None) -> PrepSummary:
    """Write the manifest and ``missing_list`` (default ``<out>.missing.txt``), atomically."""
    write_manifest(entries, out)
    missing_path = Path(missing_list) if missing_list else out.with_name(out.name + ".missing.txt")
    atomic_write_text(missing_path, "".join(f"{c}\n" for c in missing))
    videos = {s: sum(e.split == s for e in entries) for s in SPLITS}
    return PrepSummary(out, videos, sum(len(e.captions) for e in entries), len(entries) - len(missing),
                       len(missing), missing_path, layout)
