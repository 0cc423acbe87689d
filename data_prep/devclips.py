"""The real development clips -> manifest: every clip with media in the shared data folder.

``python -m data_prep.devclips --out MANIFEST [--source DIR]``; from Python :func:`build_devclips`.

The shared data folder holds real media for 26 clips: 18 MSR-VTT clips with sound
(``msrvtt/clips/videoN.mp4``, references: the 20 captions per clip of the annotation files) and
8 MSVD clips without any audio stream (``msvd/clips/<youtubeid>_<start>_<end>.avi``, references:
the S2VT release's ``sents_*`` lines of that clip through ``youtube_video_to_id_mapping.txt``).
They are the development set of the zero-shot captioner (nothing may be trained on their
captions); :func:`dev_clip_ids` lists them so that a text corpus can leave them out.

Each entry's ``meta`` holds ``dataset`` (``msrvtt`` / ``msvd``), ``source_split`` (the clip's
split in its dataset) and ``has_audio`` (an audio stream in the file's headers). The manifest's
``split`` is ``test`` for all: they are only ever scored.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from data_prep.audible_nouns.wordnet import DEFAULT_WORDNET_DIR, FUNCTION_WORDS, WORD_RE, noun_lemma, open_wordnet
from data_prep.msrvtt import read_msrvtt
from data_prep.msvd import VIDEO_EXTENSIONS, index_clips, read_s2vt_release
from fusion.errors import DataError, FusionError, script_main
from fusion.manifest import ManifestEntry, write_manifest
from fusion.paths import data_dir

logger = logging.getLogger(__name__)

MSRVTT_CLIPS = Path("msrvtt") / "clips"
MSRVTT_ANNOTATIONS = Path("msrvtt") / "annotations"
MSVD_DIR = Path("msvd")
MSVD_CLIPS = MSVD_DIR / "clips"


def _clip_files(folder: Path) -> dict[str, Path]:
    """Clip id (file stem) -> media file for every video file directly in ``folder``."""
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in VIDEO_EXTENSIONS}


def dev_clip_ids(source: str | Path | None = None) -> dict[str, set[str]]:
    """Ids of the clips with media in the data folder, per dataset (no captions read).

    Args:
        source: The shared data folder; default :func:`fusion.paths.data_dir`.

    Returns:
        ``{"msrvtt": {"video0", ...}, "msvd": {"0lh_UWF9ZP4_62_69", ...}}``; empty sets where
        a folder is absent. A text corpus built for the zero-shot captioner leaves these out.
    """
    root = Path(source) if source is not None else data_dir()
    return {"msrvtt": set(_clip_files(root / MSRVTT_CLIPS)), "msvd": set(index_clips(root / MSVD_CLIPS))}


class WordNetNouns:
    """The :class:`fusion.realeval.metrics.NounLexicon` over WordNet 3.0 (cached per word).

    A caption word is a noun by :func:`data_prep.audible_nouns.wordnet.noun_lemma` (WordNet's
    tagged uses of its noun lemma at least those of its other parts of speech); a reference word
    stands for every noun lemma WordNet's ``morphy`` gives it.
    """

    def __init__(self, wn: Any) -> None:
        self._wn = wn
        self.noun = lru_cache(maxsize=None)(self._noun)  # type: ignore[method-assign]
        self.lemmas = lru_cache(maxsize=None)(self._lemmas)  # type: ignore[method-assign]

    def _noun(self, word: str) -> str | None:
        return noun_lemma(self._wn, word)

    def _lemmas(self, word: str) -> set[str]:
        if word in FUNCTION_WORDS or not WORD_RE.fullmatch(word):
            return set()
        return set(self._wn._morphy(word, "n"))

    def function_word(self, word: str) -> bool:
        """Whether ``word`` is one of the WordNet helpers' function words."""
        return word in FUNCTION_WORDS


@contextmanager
def wordnet_nouns(wordnet_dir: Path = DEFAULT_WORDNET_DIR) -> Iterator[WordNetNouns]:
    """A :class:`WordNetNouns` over Debian's ``wordnet-base`` files, open for the ``with`` block."""
    with open_wordnet(wordnet_dir) as wn:
        yield WordNetNouns(wn)


def _has_audio(path: Path) -> bool:
    """Whether the file's headers list an audio stream (DataError if it cannot be read)."""
    from fusion.media import probe

    try:
        return probe(path).has_audio_stream
    except FusionError as err:
        raise DataError(f"{path}: cannot read this development clip ({err}); re-fetch the shared data") from None


def _msrvtt_entries(root: Path) -> list[ManifestEntry]:
    files = _clip_files(root / MSRVTT_CLIPS)
    if not files:
        return []
    _, split_of, captions, meta = read_msrvtt(root / MSRVTT_ANNOTATIONS)
    entries = []
    for vid in sorted(files, key=lambda v: int(v[5:]) if v[5:].isdigit() else 0):
        if not captions.get(vid):
            raise DataError(f"{files[vid]}: no MSR-VTT captions for {vid} in {root / MSRVTT_ANNOTATIONS}")
        info = {"dataset": "msrvtt", "source_split": split_of[vid], "has_audio": _has_audio(files[vid]),
                "category": meta[vid].get("category")}
        entries.append(ManifestEntry(vid, str(files[vid].resolve()), "test", list(captions[vid]), info))
    return entries


def _msvd_entries(root: Path) -> list[ManifestEntry]:
    files = index_clips(root / MSVD_CLIPS)
    if not files:
        return []
    captions, split_of = read_s2vt_release(root / MSVD_DIR)
    entries = []
    for clip in sorted(files):
        if not captions.get(clip):
            raise DataError(f"{files[clip]}: no MSVD captions for {clip} in {root / MSVD_DIR}")
        info = {"dataset": "msvd", "source_split": split_of[clip], "has_audio": _has_audio(files[clip])}
        entries.append(ManifestEntry(clip, str(files[clip].resolve()), "test", list(captions[clip]), info))
    return entries


def build_devclips(out: str | Path, source: str | Path | None = None) -> list[ManifestEntry]:
    """Write the development manifest: MSR-VTT clips first (id order), then MSVD (name order).

    Args:
        out: Manifest to write (.jsonl), atomically.
        source: The shared data folder; default :func:`fusion.paths.data_dir`.

    Returns:
        The entries written.

    Raises:
        DataError: No clip found, a clip without references, or an unreadable clip.
    """
    root = Path(source) if source is not None else data_dir()
    entries = _msrvtt_entries(root) + _msvd_entries(root)
    if not entries:
        raise DataError(f"{root}: no clips in {MSRVTT_CLIPS} or {MSVD_CLIPS}; set FUSION_DATA_DIR to the shared "
                        "data folder or pass --source")
    write_manifest(entries, out)
    logger.info("development clips: %d (%d with audio) -> %s", len(entries),
                sum(e.meta["has_audio"] for e in entries), out)
    return entries


@script_main("data_prep.devclips")
def main(argv: list[str] | None = None) -> int:
    """``python -m data_prep.devclips``; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m data_prep.devclips", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="manifest to write (.jsonl)")
    p.add_argument("--source", default=None, help="the shared data folder (default $FUSION_DATA_DIR)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    entries = build_devclips(args.out, args.source)
    with_audio = sum(e.meta["has_audio"] for e in entries)
    print(f"wrote {args.out}: {len(entries)} clips ({with_audio} with audio), "
          f"{sum(len(e.captions) for e in entries)} reference captions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
