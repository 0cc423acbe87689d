"""Which videos to extract: command-line inputs -> (id, path) pairs; shards of an input list.

Inputs are media files, folders (searched recursively for media extensions) or manifests
(``.jsonl``, ids = the manifest entry ids). A file's id is its stem; where two different
files share a stem, each gets the shortest trailing part of its path that tells them apart
(``a/clip.mp4`` and ``b/clip.mp4``), with a warning, so ids stay readable and deterministic.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from pathlib import Path

from fusion.errors import DataError

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ts", ".mts", ".ogv"}
)
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".wma", ".aif", ".aiff"})
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | AUDIO_EXTENSIONS
MANIFEST_EXTENSIONS = frozenset({".jsonl"})


def _folder_media(folder: Path) -> list[Path]:
    """Media files under ``folder``, recursively, hidden files and folders skipped, sorted."""
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).parts
        if any(part.startswith(".") for part in rel):
            continue
        if path.suffix.lower() in MEDIA_EXTENSIONS and path.is_file():
            found.append(path)
    return sorted(found)


def _distinguishing_ids(paths: list[Path]) -> dict[Path, str]:
    """Shortest trailing path parts (with extension) that make each path's id unique."""
    out: dict[Path, str] = {}
    depth = 1
    pending = list(paths)
    while pending:
        groups: dict[str, list[Path]] = defaultdict(list)
        for path in pending:
            groups["/".join(path.parts[-depth:])].append(path)
        pending = []
        for name, members in groups.items():
            if len(members) == 1 or depth >= max(len(p.parts) for p in members):
                out.update({p: name for p in members})
            else:
                pending.extend(members)
        depth += 1
    return out


def collect_inputs(inputs: list[str | Path]) -> list[tuple[str, str]]:
    """Resolve files, folders and manifests into sorted, unique ``(id, path)`` pairs.

    Args:
        inputs: paths as given on the command line.

    Returns:
        ``[(id, absolute path)]`` sorted by id; the same file given twice appears once.

    Raises:
        DataError: an input that does not exist, an empty folder, or a manifest that gives
            one id two different videos. ManifestError: a bad manifest line.
    """
    taken: dict[str, str] = {}  # id -> path (manifest ids are authoritative)
    files: list[Path] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            media = _folder_media(path)
            if not media:
                raise DataError(f"{path}: folder holds no media files ({', '.join(sorted(VIDEO_EXTENSIONS)[:6])}, ...)")
            files.extend(p.resolve() for p in media)
        elif path.is_file() and path.suffix.lower() in MANIFEST_EXTENSIONS:
            from fusion.manifest import load_manifest

            for entry in load_manifest(path):
                video = str(Path(entry.video).resolve())
                if taken.get(entry.id, video) != video:
                    raise DataError(
                        f"{path}: id {entry.id!r} names two videos ({taken[entry.id]} and {video}); make ids unique"
                    )
                taken[entry.id] = video
        elif path.is_file():
            files.append(path.resolve())
        else:
            raise DataError(f"{path}: no such file or folder; give media files, folders or a manifest .jsonl")
    from_manifests = set(taken.values())
    unique_files = sorted({p for p in files if str(p) not in from_manifests})
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for path in unique_files:
        by_stem[path.stem].append(path)
    for stem, paths in sorted(by_stem.items()):
        if len(paths) == 1 and stem not in taken:
            taken[stem] = str(paths[0])
            continue
        renamed = _distinguishing_ids(paths) if len(paths) > 1 else {paths[0]: "/".join(paths[0].parts[-2:])}
        logger.warning(
            "%d inputs share the id %r; using %s", len(paths), stem, ", ".join(sorted(renamed.values()))
        )
        for path, video_id in renamed.items():
            if video_id in taken:
                raise DataError(f"{path}: its id {video_id!r} is already used by {taken[video_id]}; rename the file")
            taken[video_id] = str(path)
    return sorted(taken.items())


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with 0 <= I < N.

    Raises:
        DataError: anything else, with the fix.
    """
    try:
        index_s, count_s = text.split("/")
        index, count = int(index_s), int(count_s)
    except ValueError:
        raise DataError(f"--shard {text!r}: expected I/N, e.g. --shard 0/4 (I counts from 0)") from None
    check_shard((index, count))
    return index, count


def check_shard(shard: tuple[int, int]) -> None:
    """Raise DataError unless ``shard`` is ``(I, N)`` with N >= 1 and 0 <= I < N."""
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise DataError(f"shard {index}/{count}: need N >= 1 and 0 <= I < N (I counts from 0: 0/{max(count, 1)} .. "
                        f"{max(count, 1) - 1}/{max(count, 1)})")


def shard_of(video_id: str, count: int) -> int:
    """The shard (0..count-1) that owns ``video_id``: a stable hash, the same on every machine."""
    digest = hashlib.sha1(video_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def select_shard(inputs: list[tuple[str, str]], shard: tuple[int, int] = (0, 1)) -> list[tuple[str, str]]:
    """The inputs of one shard, sorted by id. The N shards cover the inputs exactly once.

    A hash of the id (not the position) decides, so shards agree even when machines list
    the inputs in different orders or one of them sees extra files.
    """
    check_shard(shard)
    index, count = shard
    return sorted((i, p) for i, p in inputs if shard_of(i, count) == index)
