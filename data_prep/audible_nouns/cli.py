"""Inputs of the table (caption words, vocabulary files, SoundNet's and AudioSet's labels) and the command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from data_prep.audible_nouns.builder import Sources, build_table, dump_table
from data_prep.audible_nouns.wordnet import DEFAULT_WORDNET_DIR, FUNCTION_WORDS, open_wordnet
from fusion.encoders.labels import imagenet_labels, parse_imagenet, place_parts, places_parts
from fusion.errors import DataError, script_main
from fusion.io import atomic_write_text
from fusion.paths import data_dir

logger = logging.getLogger(__name__)

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "audible_nouns.json"  # data_prep/audible_nouns.json
DETERMINERS = frozenset("a an the his her their its some another two".split())


def caption_word_stats(sentences: Iterable[list[str]], min_count: int) -> tuple[list[str], set[str], Counter[str]]:
    """Words of tokenised captions seen >= ``min_count`` times, those of them that end a
    determiner phrase ("a train is") in >= 30% of their uses (used as nouns), and all word counts."""
    counts: Counter[str] = Counter()
    after_determiner: Counter[str] = Counter()
    for words in sentences:
        counts.update(words)
        ends = [*words[2:], "."]  # "a train is", "the dog ." (not "a white dog")
        after_determiner.update(w for prev, w, nxt in zip(words, words[1:], ends)
                                if prev in DETERMINERS and (nxt == "." or nxt in FUNCTION_WORDS))
    words = sorted(w for w, c in counts.items() if c >= min_count)
    return words, {w for w in words if after_determiner[w] >= 0.3 * counts[w]}, counts


def read_caption_words(path: Path, min_count: int) -> tuple[list[str], set[str]]:
    """Words of a caption file (``id<TAB>sentence`` lines) seen >= ``min_count`` times, and those
    of them used as nouns (see :func:`caption_word_stats`)."""
    if not path.is_file():
        raise DataError(f"{path}: caption file not found; pass --captions FILE or set FUSION_DATA_DIR")
    lines = path.read_text(encoding="utf-8").splitlines()
    words, in_use, _ = caption_word_stats((line.split("\t")[-1].lower().split() for line in lines), min_count)
    return words, in_use


def msrvtt_caption_words(source: Path, min_count: int) -> tuple[list[str], set[str]]:
    """Words of the MSR-VTT train captions seen >= ``min_count`` times, and those used as nouns."""
    from data_prep.msrvtt import read_msrvtt
    from fusion.text import tokenize

    if not source.is_dir():
        raise DataError(f"{source}: MSR-VTT annotations not found; pass --msrvtt DIR or --no-msrvtt")
    _, split_of, captions, _ = read_msrvtt(source)
    sentences = (tokenize(c) for vid, caps in captions.items() if split_of[vid] == "train" for c in caps)
    words, in_use, _ = caption_word_stats(sentences, min_count)
    return words, in_use


def read_vocab_file(path: Path) -> list[str]:
    """Words of a ``--vocab`` file: a fusion Vocabulary JSON / JSON list, or text (``id<TAB>``caption lines)."""
    if not path.is_file():
        raise DataError(f"{path}: vocabulary file not found; fix --vocab")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: invalid JSON ({err.msg} at line {err.lineno}); fix --vocab") from None
        return [str(w) for w in (data.get("words", list(data)) if isinstance(data, dict) else data)]
    return [w for line in text.splitlines() for w in line.split("\t")[-1].split()]


def _label_lines(path: Path, option: str) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: label file not found; fix {option}")
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def read_audioset_classes(path: Path) -> tuple[tuple[str, ...], ...]:
    """AudioSet classes of a class map (``index,mid,display_name`` CSV, YAMNet's ``yamnet_class_map.csv``)
    in index order, each as its display name's comma-separated parts."""
    import csv

    if not path.is_file():
        raise DataError(f"{path}: AudioSet class map not found; pass --audioset yamnet_class_map.csv, "
                        "set FUSION_DATA_DIR, or --no-audioset")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    try:
        rows.sort(key=lambda row: int(row["index"]))
        return tuple(tuple(p.strip() for p in row["display_name"].split(",") if p.strip()) for row in rows)
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{path}: not an AudioSet class map (want index,mid,display_name columns); "
                        "fix --audioset") from None


def load_sources(imagenet: Path | None = None, places: Path | None = None,
                 benchmark: bool = True, audioset: Path | None = None) -> tuple[Sources, list[str]]:
    """SoundNet's labels (:mod:`fusion.encoders.labels`; ``imagenet`` / ``places`` label files in
    the same format replace them), the AudioSet classes of the ``audioset`` class map (None: no
    AudioSet links) and, with ``benchmark``, :mod:`fusion.benchmark`'s ESC-10 classes; also
    returns the benchmark's vocabulary words (sound nouns, shapes)."""
    objects = parse_imagenet(_label_lines(imagenet, "--imagenet")) if imagenet else imagenet_labels()
    scenes = tuple(place_parts(ln) for ln in _label_lines(places, "--places")) if places else places_parts()
    classes = read_audioset_classes(audioset) if audioset is not None else ()
    esc: dict[str, tuple[str, ...]] = {}
    words: list[str] = []
    if benchmark:
        from fusion.benchmark import SHAPES, SOUND_SOURCES

        esc = {cls: tuple(src.synonyms) for cls, src in SOUND_SOURCES.items()}
        words = [w for src in SOUND_SOURCES.values() for w in src.synonyms]
        words += [w for names in SHAPES.values() for w in names]
    return Sources(tuple(label.wnid for label in objects), scenes, esc, classes), words


@script_main("data_prep.audible_nouns")
def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m data_prep.audible_nouns",
                                     description="Build the audible-noun table of the audio-noun verifier from WordNet 3.0.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="table to write (JSON)")
    parser.add_argument("--vocab", type=Path, nargs="*", default=[], help="extra vocabulary files")
    parser.add_argument("--captions", type=Path, help="default: $FUSION_DATA_DIR/msvd/captions/sents_train_lc_nopunc.txt")
    parser.add_argument("--min-count", type=int, default=2, help="caption words rarer than this are skipped")
    parser.add_argument("--msrvtt", type=Path, default=None,
                        help="MSR-VTT annotations whose train captions join the vocabulary "
                             "(default: $FUSION_DATA_DIR/msrvtt/annotations)")
    parser.add_argument("--msrvtt-min-count", type=int, default=10, help="MSR-VTT words rarer than this are skipped")
    parser.add_argument("--no-msrvtt", action="store_true", help="leave MSR-VTT's captions out of the vocabulary")
    parser.add_argument("--wordnet", type=Path, default=DEFAULT_WORDNET_DIR, help="WordNet 3.0 database folder")
    parser.add_argument("--imagenet", type=Path, default=None, help="SoundNet object labels (default: fusion's)")
    parser.add_argument("--places", type=Path, default=None, help="SoundNet place labels (default: fusion's)")
    parser.add_argument("--no-benchmark", action="store_true", help="leave out fusion.benchmark's ESC-10 words")
    parser.add_argument("--audioset", type=Path, default=None,
                        help="AudioSet class map to link (default: $FUSION_DATA_DIR/yamnet/yamnet_class_map.csv)")
    parser.add_argument("--no-audioset", action="store_true", help="no AudioSet links")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    audioset = None if args.no_audioset else args.audioset or data_dir() / "yamnet" / "yamnet_class_map.csv"
    sources, bench_words = load_sources(args.imagenet, args.places, not args.no_benchmark, audioset)
    captions = args.captions or data_dir() / "msvd" / "captions" / "sents_train_lc_nopunc.txt"
    words, in_use = read_caption_words(captions, args.min_count)
    words += bench_words
    if not args.no_msrvtt:
        more, more_in_use = msrvtt_caption_words(args.msrvtt or data_dir() / "msrvtt" / "annotations",
                                                 args.msrvtt_min_count)
        words, in_use = words + more, in_use | more_in_use
    for path in args.vocab:
        words += read_vocab_file(path)
    with open_wordnet(args.wordnet) as wn:
        table = build_table(wn, words, sources, in_use | set(bench_words))
    atomic_write_text(args.out, dump_table(table))
    logger.info("%d audible nouns, %d other nouns -> %s", len(table["nouns"]), len(table["not_audible"]), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
