"""``python -m data_prep.concept_links``: build the link table and report its coverage on real captions."""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from data_prep.audible_nouns.wordnet import DEFAULT_WORDNET_DIR, open_wordnet
from data_prep.concept_links.builder import LabelSpaces, build_links, caption_words, classify_words, dump_links
from data_prep.concept_links.coverage import coverage_report, write_coverage
from data_prep.concept_links.rules import MIN_WORD_COUNT
from fusion.encoders.labels import imagenet_labels, places_parts
from fusion.errors import DataError, script_main
from fusion.io import atomic_write_text
from fusion.paths import data_dir
from fusion.text import tokenize

logger = logging.getLogger(__name__)

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "concept_links.json"  # data_prep/concept_links.json
AUDIOSET_CSV = Path("yamnet/yamnet_class_map.csv")


def read_audioset_names(path: Path) -> tuple[str, ...]:
    """AudioSet display names in output order from YAMNet's ``index,mid,display_name`` CSV."""
    if not path.is_file():
        raise DataError(f"{path}: AudioSet class map not found; set FUSION_DATA_DIR or pass --audioset FILE")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "display_name" not in rows[0]:
        raise DataError(f"{path}: expected an 'index,mid,display_name' header; pass YAMNet's yamnet_class_map.csv")
    return tuple(r["display_name"] for r in rows)


def corpus_sentences(corpus: Path | None) -> list[list[str]]:
    """Tokenised train + val captions of a corpus folder (built in memory from the data folder if None)."""
    if corpus is None:
        from data_prep.caption_corpus import build_corpus

        built = build_corpus()
        return [tokenize(text) for lines in built.lines.values() for _, text in lines]
    out = []
    for split in ("train", "val"):
        path = corpus / f"{split}.txt"
        if not path.is_file():
            raise DataError(f"{path}: corpus file not found; run `python -m data_prep.caption_corpus --out {corpus}`")
        out += [tokenize(line.split("\t", 1)[-1]) for line in path.read_text(encoding="utf-8").splitlines()]
    return out


def dev_sentences() -> list[list[str]]:
    """Tokenised references of the development clips (:mod:`data_prep.devclips`; empty without clips)."""
    import tempfile

    from data_prep.devclips import build_devclips

    try:
        with tempfile.TemporaryDirectory() as tmp:
            entries = build_devclips(Path(tmp) / "devclips.jsonl")
    except DataError as err:
        logger.warning("no development clips to report coverage on: %s", err)
        return []
    return [tokenize(c) for e in entries for c in e.captions]


@script_main("data_prep.concept_links")
def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m data_prep.concept_links",
                                     description="Link caption words to ImageNet, Places2 and AudioSet classes.")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="caption corpus folder (data_prep.caption_corpus); default: built from FUSION_DATA_DIR")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="table to write (JSON)")
    parser.add_argument("--report", type=Path, default=Path("results/concept_links_coverage"),
                        help="coverage report prefix (.json and .md are written)")
    parser.add_argument("--audioset", type=Path, default=None, help="default: $FUSION_DATA_DIR/" + str(AUDIOSET_CSV))
    parser.add_argument("--wordnet", type=Path, default=DEFAULT_WORDNET_DIR, help="WordNet 3.0 database folder")
    parser.add_argument("--min-count", type=int, default=MIN_WORD_COUNT, help="rarer caption words are left out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    audioset_path = args.audioset or data_dir() / AUDIOSET_CSV
    spaces = LabelSpaces(tuple(label.wnid for label in imagenet_labels()), places_parts(),
                         read_audioset_names(audioset_path), tuple(label.name for label in imagenet_labels()))
    sentences = corpus_sentences(args.corpus)
    sources = {"imagenet": "fusion/assets/categories_imagenet.txt",
               "places2": "fusion/assets/categories_places2.txt", "audioset": str(AUDIOSET_CSV)}
    with open_wordnet(args.wordnet) as wn:
        table = build_links(wn, sentences, spaces, sources, args.min_count)
        atomic_write_text(args.out, dump_links(table))
        texts = {"corpus (train + val)": sentences, "development clips' references": dev_sentences()}
        counts, in_use = caption_words(sentences, 1)
        counts.update(w for s in texts["development clips' references"] for w in s)
        nouns, verbs = classify_words(wn, counts, in_use, 1)
    report = coverage_report(table, texts, nouns, verbs)
    write_coverage(report, args.report, "python -m data_prep.concept_links" + (
        f" --corpus {args.corpus}" if args.corpus else ""))
    nouns = sum(e["pos"] == "n" for e in table["words"].values())
    print(f"{nouns} nouns and {len(table['words']) - nouns} verbs linked -> {args.out}; coverage -> {args.report}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
