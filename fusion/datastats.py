"""Statistics of a manifest: what ``fusion data stats`` reports.

Videos and captions per split, vocabulary size, caption length distribution, clips missing
on disk and clips with / without an audio stream, checked in the files themselves with
:func:`fusion.media.probe` (not only in ``meta``), plus a caption-length histogram plot.
"""

from __future__ import annotations

import io
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from fusion.errors import DataError, FusionError
from fusion.io import atomic_write_bytes
from fusion.manifest import SPLITS, ManifestEntry
from fusion.progress import progress_bar
from fusion.text import Vocabulary, tokenize

logger = logging.getLogger(__name__)

MAX_LISTED = 10  # ids listed per problem in the report


def _length_summary(lengths: list[int]) -> dict[str, Any]:
    if not lengths:
        return {"count": 0}
    arr = np.asarray(lengths)
    return {"count": int(arr.size), "mean": round(float(arr.mean()), 3), "median": float(np.median(arr)),
            "min": int(arr.min()), "max": int(arr.max()), "p95": float(np.percentile(arr, 95)),
            "histogram": {str(k): v for k, v in sorted(Counter(lengths).items())}}


def probe_audio(entries: list[ManifestEntry], progress: bool = True) -> dict[str, Any]:
    """Open every present file and count audio streams (files missing on disk are skipped).

    Returns:
        ``{"with_audio_stream", "without_audio_stream", "unreadable", "meta_disagrees",
        "unreadable_ids", "meta_disagrees_ids"}``; ``meta_disagrees`` counts entries whose
        ``meta["has_audio_stream"]`` contradicts the file.
    """
    from fusion.media import probe  # the media engineer's module; imported here to keep imports light

    out: dict[str, Any] = {"with_audio_stream": 0, "without_audio_stream": 0, "unreadable": 0, "meta_disagrees": 0,
                           "unreadable_ids": [], "meta_disagrees_ids": []}
    present = [e for e in entries if os.path.isfile(e.video)]
    for e in progress_bar(present, desc="probing", unit="file", disable=not progress):
        try:
            has_audio = bool(probe(e.video).has_audio_stream)
        except FusionError as err:
            out["unreadable"] += 1
            if len(out["unreadable_ids"]) < MAX_LISTED:
                out["unreadable_ids"].append(e.id)
            logger.debug("cannot probe %s: %s", e.video, err)
            continue
        out["with_audio_stream" if has_audio else "without_audio_stream"] += 1
        claimed = e.meta.get("has_audio_stream")
        if isinstance(claimed, bool) and claimed != has_audio:
            out["meta_disagrees"] += 1
            if len(out["meta_disagrees_ids"]) < MAX_LISTED:
                out["meta_disagrees_ids"].append(e.id)
    return out


def manifest_stats(entries: list[ManifestEntry], check_files: bool = True, progress: bool = True) -> dict[str, Any]:
    """Compute the statistics of a loaded manifest.

    Args:
        entries: From :func:`fusion.manifest.load_manifest` (absolute video paths).
        check_files: Probe the present files for audio streams.
        progress: Progress bar while probing.

    Returns:
        A JSON-serialisable dict: ``videos``, ``captions``, ``splits`` ({split: {videos,
        captions, caption_length}}), ``vocab_size`` (all captions), ``train_vocab_size``,
        ``caption_length``, ``videos_without_captions``, ``missing_on_disk``,
        ``missing_ids`` (first few), ``audio`` (see :func:`probe_audio`; ``None`` when not checked).
    """
    tokenized = {e.id: [tokenize(c) for c in e.captions] for e in entries}
    splits: dict[str, Any] = {}
    for split in SPLITS:
        chosen = [e for e in entries if e.split == split]
        lengths = [len(t) for e in chosen for t in tokenized[e.id]]
        splits[split] = {"videos": len(chosen), "captions": sum(len(e.captions) for e in chosen),
                         "caption_length": _length_summary(lengths)}
    all_tokens = [t for e in entries for t in tokenized[e.id]]
    train_tokens = [t for e in entries if e.split == "train" for t in tokenized[e.id]]
    missing = [e.id for e in entries if not os.path.isfile(e.video)]
    return {
        "videos": len(entries),
        "captions": sum(len(e.captions) for e in entries),
        "splits": splits,
        "vocab_size": len(Vocabulary.build(all_tokens)) - 4,  # distinct words, specials excluded
        "train_vocab_size": len(Vocabulary.build(train_tokens)) - 4,
        "caption_length": _length_summary([len(t) for t in all_tokens]),
        "videos_without_captions": sum(not e.captions for e in entries),
        "missing_on_disk": len(missing),
        "missing_ids": missing[:MAX_LISTED],
        "audio": probe_audio(entries, progress) if check_files else None,
    }


def format_stats(stats: dict[str, Any], name: str = "") -> str:
    """A human-readable report of :func:`manifest_stats` output."""
    lines = [f"manifest {name}".rstrip(), f"  videos {stats['videos']}, captions {stats['captions']}, "
             f"vocabulary {stats['vocab_size']} words ({stats['train_vocab_size']} in train)"]
    for split, s in stats["splits"].items():
        cl = s["caption_length"]
        length = f"length mean {cl['mean']:.1f} (min {cl['min']}, max {cl['max']})" if cl["count"] else "no captions"
        lines.append(f"  {split:5s}  videos {s['videos']:6d}  captions {s['captions']:7d}  {length}")
    cl = stats["caption_length"]
    if cl["count"]:
        lines.append(f"  caption length: mean {cl['mean']:.2f}, median {cl['median']:g}, p95 {cl['p95']:g}, "
                     f"min {cl['min']}, max {cl['max']}")
    lines.append(f"  videos without captions: {stats['videos_without_captions']}")
    miss = stats["missing_on_disk"]
    lines.append(f"  missing on disk: {miss}" + (f" (e.g. {', '.join(stats['missing_ids'][:3])})" if miss else ""))
    audio = stats["audio"]
    if audio is None:
        lines.append("  audio streams: not checked")
    else:
        lines.append(f"  audio streams (probed): with {audio['with_audio_stream']}, without "
                     f"{audio['without_audio_stream']}, unreadable {audio['unreadable']}, "
                     f"meta disagrees {audio['meta_disagrees']}")
    return "\n".join(lines)


def plot_lengths(stats: dict[str, Any], path: str | Path, title: str = "") -> None:
    """Write a caption-length histogram per split (format by extension: .png, .pdf, .svg), atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fmt = Path(path).suffix.lstrip(".").lower()
    fig, ax = plt.subplots(figsize=(7, 4))
    if fmt not in fig.canvas.get_supported_filetypes():
        plt.close(fig)
        raise DataError(f"{path}: cannot write a plot with extension {fmt!r}; use .png, .pdf or .svg")
    for split, s in stats["splits"].items():
        hist = s["caption_length"].get("histogram", {})
        if hist:
            xs = np.array([int(k) for k in hist])
            ys = np.array(list(hist.values()), dtype=float)
            ax.bar(xs + {"train": -0.27, "val": 0.0, "test": 0.27}[split], ys / ys.sum(), width=0.27, label=split)
    ax.set_xlabel("caption length (words)")
    ax.set_ylabel("share of captions")
    ax.set_title(title or "caption length distribution")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
