"""WordNet 3.0 through nltk, read from Debian's ``wordnet-base`` files, and the noun helpers.

nltk reads a corpus only under its data path, so :func:`open_wordnet` copies the database into
a private ``<tmp>/corpora/wordnet`` with a ``lexnames`` file, which Debian omits and which is
generated from the ``lexnames(5WN)`` man page. ``nltk.download`` is never used.
"""

from __future__ import annotations

import gzip
import logging
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fusion.errors import DataError

logger = logging.getLogger(__name__)

DEFAULT_WORDNET_DIR = Path("/usr/share/wordnet")
LEXNAMES_MAN_PAGE = Path("/usr/share/man/man5/lexnames.5WN.gz")
WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv", "index.noun", "index.verb",
                 "index.adj", "index.adv", "noun.exc", "verb.exc", "adj.exc", "adv.exc")
PRIMARY_SENSE_SHARE = 0.25  # a sense is primary if first, or >= 25% of the word's tagged noun uses
FUNCTION_WORDS = frozenset(
    "a an the and or but is are was were be been being am do does did has have had it its s t this that these "
    "those there here he she they we you i me him her them his their our your my in on at of to for with from by "
    "into onto over under up down out off about as than then while who what which where when how not no some any "
    "all each other another one two three very too also just can will would could should may might must".split())
WORD_RE = re.compile(r"[a-z][a-z\-]*")


def lexnames_from_man_page(man_page: Path) -> str:
    """The ``lexnames`` file (``NN<TAB>name<TAB>category``) parsed from ``lexnames.5WN.gz``."""
    categories = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}
    text = gzip.open(man_page, "rt", encoding="utf-8").read()
    rows = re.findall(r"^(\d\d)\t(\w+\.\w+)\s*\t", text, flags=re.MULTILINE)
    if len(rows) != 45:  # lexnames(5WN) lists files 00-44
        raise DataError(f"{man_page}: expected 45 lexicographer files, found {len(rows)}; reinstall wordnet-base")
    return "".join(f"{num}\t{name}\t{categories[name.split('.')[0]]}\n" for num, name in rows)


@contextmanager
def open_wordnet(wordnet_dir: Path, man_page: Path = LEXNAMES_MAN_PAGE) -> Iterator[Any]:
    """A WordNet 3.0 reader over a copy of ``wordnet_dir``: nltk only reads corpora under its data
    path, so the files go to a private ``<tmp>/corpora/wordnet`` on ``nltk.data.path`` meanwhile."""
    missing = [f for f in WORDNET_FILES if not (wordnet_dir / f).is_file()]
    if missing:
        raise DataError(f"{wordnet_dir}: WordNet database files missing ({', '.join(missing[:3])}); run "
                        "`apt-get install wordnet-base` or pass --wordnet DIR")
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class _Reader(WordNetCorpusReader):  # type: ignore[misc]
        def map_wn(self, version: str = "wordnet") -> None:  # noqa: ARG002
            return None  # this *is* WordNet 3.0: no cross-version map (would need index.sense)

    root = Path(tempfile.mkdtemp(prefix="fusion_wordnet_"))
    corpus = root / "corpora" / "wordnet"
    corpus.mkdir(parents=True)
    try:
        (corpus / "cntlist.rev").write_text("", encoding="utf-8")  # tag counts: optional
        for name in (*WORDNET_FILES, "cntlist.rev", "lexnames"):
            if (wordnet_dir / name).is_file():
                shutil.copyfile(wordnet_dir / name, corpus / name)
        if not (corpus / "lexnames").is_file():
            if not man_page.is_file():
                raise DataError(f"{wordnet_dir}: no lexnames file and no {man_page}; install wordnet-base")
            (corpus / "lexnames").write_text(lexnames_from_man_page(man_page), encoding="utf-8")
        nltk.data.path.append(str(root))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "multilingual functions are not available"
            yield _Reader(str(corpus), None)
    finally:
        if str(root) in nltk.data.path:
            nltk.data.path.remove(str(root))
        shutil.rmtree(root, ignore_errors=True)


def _tag_count(wn: Any, lemma: str, pos: str) -> tuple[int, int]:
    """(tagged uses, number of senses) of ``lemma`` in part of speech ``pos``."""
    synsets = wn.synsets(lemma, pos)
    uses = sum(lem.count() for s in synsets for lem in s.lemmas() if lem.name().lower() == lemma)
    return uses, len(synsets)


def noun_lemma(wn: Any, word: str, used_as_noun: bool = False) -> str | None:
    """The noun lemma of a caption word (``dogs`` -> ``dog``), or None when it is not a noun.
    ``used_as_noun`` (the captions say "a train is") overrides WordNet's tag counts."""
    if word in FUNCTION_WORDS or len(word) < 2 or not WORD_RE.fullmatch(word):
        return None
    candidates = wn._morphy(word, "n")  # the word itself first, then its singular ("fields", "field")
    if not candidates:
        return None
    lemma = max(candidates, key=lambda c: (_tag_count(wn, c, "n")[0], c != word))
    noun_uses, noun_senses = _tag_count(wn, lemma, "n")
    other_uses = sum(_tag_count(wn, other, pos)[0] for pos in "var" if (other := wn.morphy(word, pos)))
    return lemma if noun_senses and (used_as_noun or noun_uses >= other_uses) else None


def primary_senses(wn: Any, lemma: str) -> list[Any]:
    """The first noun sense plus every sense with a large share of the tagged uses. Captions are
    lower case, so a word's proper-name senses (instances: ``barber`` the composer) yield to its
    common ones (``barber`` the hairdresser); a word with only proper-name senses keeps them."""
    synsets = wn.synsets(lemma, "n")
    common = [s for s in synsets if not s.instance_hypernyms()]
    synsets = common or synsets
    counts = [sum(x.count() for x in s.lemmas() if x.name().lower() == lemma) for s in synsets]
    total = sum(counts)
    return [s for i, (s, c) in enumerate(zip(synsets, counts))
            if i == 0 or (total and c / total >= PRIMARY_SENSE_SHARE)]


def resolve_anchor(wn: Any, anchor: tuple[str, str]) -> Any | None:
    """The first noun sense of ``anchor[0]`` in lexicographer file ``anchor[1]`` (None if absent)."""
    for synset in wn.synsets(anchor[0], "n"):
        if synset.lexname() == anchor[1]:
            return synset
    logger.warning("WordNet has no %s noun sense in %s; anchor skipped", anchor[0], anchor[1])
    return None


def closure(synset: Any) -> set[Any]:
    """The synset with all its hypernyms (instance hypernyms included)."""
    return {synset, *synset.closure(lambda s: s.hypernyms() + s.instance_hypernyms())}


def gloss_nouns(wn: Any, synsets: Iterable[Any]) -> set[str]:
    """Noun lemmas of the content words of the synsets' definitions."""
    return {lemma for synset in synsets for token in WORD_RE.findall(synset.definition().lower())
            if token not in FUNCTION_WORDS and (lemma := wn.morphy(token, "n"))}
