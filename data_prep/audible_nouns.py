"""Build the audible-noun table of the audio-noun verifier from WordNet 3.0.

``python -m data_prep.audible_nouns --out data_prep/audible_nouns.json [--vocab FILE ...]``

For every noun of the vocabulary (MSVD train captions, :mod:`fusion.benchmark`'s words, any
``--vocab`` file) the table records whether it is audible (:data:`RULE`) and, for audible ones:
``objects``, SoundNet conv8 (ImageNet) classes under a primary sense or its part/member
meronyms (``dog`` covers every breed; ``train`` -> locomotive -> steam locomotive);
``places``, conv8_2 (Places2) scenes whose name contains the noun (``train`` ->
train_station), whose synonyms occur in the noun's gloss (``train``: "railway" ->
railroad_track) or whose gloss names it (``sea`` -> beach, coast); ``esc10``, the ESC-10
classes it names (benchmark synonyms, hyponyms: ``puppy`` -> Dog bark, specific direct
hypernyms: ``chicken`` -> Rooster). Other nouns keep only their surface forms, so the runtime
maps plurals and labels captions without WordNet.

WordNet comes from Debian's ``wordnet-base``; nltk reads it once copied under an nltk data
root with a ``lexnames`` file, which Debian omits and which is generated here from the
``lexnames(5WN)`` man page. ``nltk.download`` is never used.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import re
import shutil
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fusion.errors import DataError, FusionError
from fusion.io import atomic_write_text
from fusion.paths import data_dir

log = logging.getLogger(__name__)

TABLE_FORMAT = "fusion.audible_nouns/1"
DEFAULT_WORDNET_DIR = Path("/usr/share/wordnet")
LEXNAMES_MAN_PAGE = Path("/usr/share/man/man5/lexnames.5WN.gz")
DEFAULT_OUT = Path(__file__).with_name("audible_nouns.json")
ASSETS = Path(__file__).resolve().parent.parent / "fusion" / "assets"  # SoundNet label files
WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv", "index.noun", "index.verb",
                 "index.adj", "index.adv", "noun.exc", "verb.exc", "adj.exc", "adv.exc")
MAX_NAMING_HYPONYMS = 12  # a direct hypernym names an ESC-10 class only if it is this specific
PRIMARY_SENSE_SHARE = 0.25  # a sense is primary if first, or >= 25% of the word's tagged noun uses

# Anchors are (lemma, lexicographer file): the lemma's first noun sense in that file. They
# are named this way (not "dog.n.01") so that the same anchors resolve in the tiny test
# WordNet. A noun is audible when a primary sense lies under an AUDIBLE anchor and not under
# a MUTE one, or when it names an ESC-10 class.
AUDIBLE_ANCHORS: tuple[tuple[str, str], ...] = (
    ("animal", "noun.Tops"), ("person", "noun.Tops"),          # calls, voices, footsteps
    ("people", "noun.group"), ("crowd", "noun.group"), ("audience", "noun.group"),
    ("self-propelled_vehicle", "noun.artifact"), ("aircraft", "noun.artifact"),
    ("train", "noun.artifact"), ("vessel", "noun.artifact"),   # engines, rotors, horns
    ("musical_instrument", "noun.artifact"), ("acoustic_device", "noun.artifact"),
    ("noisemaker", "noun.artifact"), ("timepiece", "noun.artifact"), ("power_tool", "noun.artifact"),
    ("engine", "noun.artifact"), ("motor", "noun.artifact"), ("gun", "noun.artifact"),
    ("telephone", "noun.artifact"), ("radio", "noun.artifact"), ("television", "noun.artifact"),
    ("atmospheric_phenomenon", "noun.phenomenon"),             # rain, wind, storms
    ("fire", "noun.event"), ("explosion", "noun.event"), ("sound", "noun.event"),  # sound.n.04: noises, cries
    ("sea", "noun.object"), ("ocean", "noun.object"), ("stream", "noun.object"),
    ("waterfall", "noun.object"), ("wave", "noun.event"), ("surf", "noun.event"),
    ("music", "noun.communication"), ("speech", "noun.communication"), ("sneeze", "noun.state"),
)
MUTE_ANCHORS: tuple[tuple[str, str], ...] = (  # animals without audible calls (insects do buzz)
    ("fish", "noun.animal"), ("mollusk", "noun.animal"), ("worm", "noun.animal"), ("crustacean", "noun.animal"),
    ("coelenterate", "noun.animal"), ("echinoderm", "noun.animal"), ("sponge", "noun.animal"), ("arachnid", "noun.animal"))
ESC10_ANCHORS: dict[str, tuple[tuple[str, str], ...]] = {
    "Dog bark": (("dog", "noun.animal"),), "Rain": (("rain", "noun.phenomenon"),),
    "Sea waves": (("sea", "noun.object"), ("ocean", "noun.object"), ("wave", "noun.event"), ("surf", "noun.event")),
    "Baby cry": (("baby", "noun.person"),), "Clock tick": (("clock", "noun.artifact"),),
    "Person sneeze": (("sneeze", "noun.state"),), "Helicopter": (("helicopter", "noun.artifact"),),
    "Chainsaw": (("chain_saw", "noun.artifact"),), "Rooster": (("rooster", "noun.animal"),),
    "Fire crackling": (("fire", "noun.event"), ("campfire", "noun.event"), ("flame", "noun.process")),
}
RULE = ("A vocabulary word is a noun when WordNet 3.0 knows it as a noun, it is no function word, and its "
        "tagged noun uses are at least its verb/adjective/adverb uses (or the captions use it as a noun: "
        "'a train is'). Primary senses: the first, and any with >= 25% of the tagged noun uses. A noun is "
        "audible when it names an ESC-10 sound source, or its first sense lies under an AUDIBLE anchor "
        "(animals, people, motor vehicles/aircraft/trains/vessels, musical and acoustic devices, clocks, "
        "power tools, engines, guns, phones, weather, fire, explosions, sounds, sea/waves/streams, music, "
        "speech, sneezes) and not under a MUTE one (fish, mollusks, worms, crustaceans, jellyfish, starfish, sponges, spiders).")
FUNCTION_WORDS = frozenset(
    "a an the and or but is are was were be been being am do does did has have had it its s t this that these "
    "those there here he she they we you i me him her them his their our your my in on at of to for with from by "
    "into onto over under up down out off about as than then while who what which where when how not no some any "
    "all each other another one two three very too also just can will would could should may might must".split())
DETERMINERS = frozenset("a an the his her their its some another two".split())
_WORD_RE = re.compile(r"[a-z][a-z\-]*")


@dataclass(frozen=True)
class Sources:
    """What the table indexes into: ``imagenet_wnids`` (1000 "n02084071" ids, conv8 order),
    ``places`` (401 "/t/train_station/platform" names, conv8_2 order) and ``esc10`` (class ->
    benchmark nouns naming it)."""

    imagenet_wnids: tuple[str, ...]
    places: tuple[str, ...]
    esc10: dict[str, tuple[str, ...]]


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
    if word in FUNCTION_WORDS or len(word) < 2 or not _WORD_RE.fullmatch(word):
        return None
    candidates = wn._morphy(word, "n")  # the word itself first, then its singular ("fields", "field")
    if not candidates:
        return None
    lemma = max(candidates, key=lambda c: (_tag_count(wn, c, "n")[0], c != word))
    noun_uses, noun_senses = _tag_count(wn, lemma, "n")
    other_uses = sum(_tag_count(wn, other, pos)[0] for pos in "var" if (other := wn.morphy(word, pos)))
    return lemma if noun_senses and (used_as_noun or noun_uses >= other_uses) else None


def primary_senses(wn: Any, lemma: str) -> list[Any]:
    """The first noun sense plus every sense with a large share of the tagged uses."""
    synsets = wn.synsets(lemma, "n")
    counts = [sum(x.count() for x in s.lemmas() if x.name().lower() == lemma) for s in synsets]
    total = sum(counts)
    return [s for i, (s, c) in enumerate(zip(synsets, counts))
            if i == 0 or (total and c / total >= PRIMARY_SENSE_SHARE)]


def resolve_anchor(wn: Any, anchor: tuple[str, str]) -> Any | None:
    """The first noun sense of ``anchor[0]`` in lexicographer file ``anchor[1]`` (None if absent)."""
    for synset in wn.synsets(anchor[0], "n"):
        if synset.lexname() == anchor[1]:
            return synset
    log.warning("WordNet has no %s noun sense in %s; anchor skipped", anchor[0], anchor[1])
    return None


def _closure(synset: Any) -> set[Any]:
    """The synset with all its hypernyms (instance hypernyms included)."""
    return {synset, *synset.closure(lambda s: s.hypernyms() + s.instance_hypernyms())}


def _names_anchor(sense: Any, sense_closure: set[Any], anchor: Any) -> bool:
    """The sense is the anchor, under it (``puppy`` -> dog), or its direct hypernym with few
    hyponyms (``chicken`` -> rooster) -- not a broad one (``motion`` -> wave, ``animal`` -> dog)."""
    if anchor in sense_closure:
        return True
    return sense in anchor.hypernyms() and len(sense.hyponyms()) <= MAX_NAMING_HYPONYMS


def _gloss_nouns(wn: Any, synsets: Iterable[Any]) -> set[str]:
    """Noun lemmas of the content words of the synsets' definitions."""
    return {lemma for synset in synsets for token in _WORD_RE.findall(synset.definition().lower())
            if token not in FUNCTION_WORDS and (lemma := wn.morphy(token, "n"))}


class TableBuilder:
    """Links vocabulary nouns to SoundNet classes and ESC-10 through one WordNet reader."""

    def __init__(self, wn: Any, sources: Sources) -> None:
        self.wn = wn
        self.sources = sources
        self.audible, self.mute = ([s for a in anchors if (s := resolve_anchor(wn, a)) is not None]
                                   for anchors in (AUDIBLE_ANCHORS, MUTE_ANCHORS))
        self.esc_anchors = {cls: [s for a in anchors if (s := resolve_anchor(wn, a)) is not None]
                            for cls, anchors in ESC10_ANCHORS.items() if cls in sources.esc10}
        self.class_closures = [self._class_closure(wnid) for wnid in sources.imagenet_wnids]
        self.place_terms = [self._place_terms(name) for name in sources.places]

    def _class_closure(self, wnid: str) -> set[Any]:
        try:
            return _closure(self.wn.synset_from_pos_and_offset("n", int(wnid[1:])))
        except Exception:  # nltk raises WordNetError / KeyError / ValueError for unknown offsets
            log.warning("ImageNet class %s is not a WordNet 3.0 noun offset here; unlinked", wnid)
            return set()

    def _place_terms(self, name: str) -> tuple[set[str], set[str], set[str]]:
        """(name tokens, synonyms of its head synset, gloss nouns of its head synset)."""
        parts = [p for p in name.strip("/").split("/")[1:] if p]  # /t/train_station/platform
        tokens = {self.wn.morphy(t, "n") or t for p in parts for t in p.split("_") if t}
        head = self.wn.synsets(parts[0], "n") if parts else []
        if not head and parts:
            head = self.wn.synsets(parts[0].split("_")[-1], "n")
        synonyms = {lem.name().lower() for lem in head[0].lemmas()} if head else set()
        gloss = _gloss_nouns(self.wn, head[:1])
        return tokens, synonyms, gloss

    def entry(self, lemma: str) -> dict[str, Any]:
        """The table entry of one noun lemma (without its surface forms)."""
        senses = primary_senses(self.wn, lemma)
        closures = [_closure(s) for s in senses]
        esc = sorted(cls for cls, words in self.sources.esc10.items() if lemma in words)
        esc += sorted(cls for cls, anchors in self.esc_anchors.items()
                      if cls not in esc and any(_names_anchor(s, c, a) for s, c in zip(senses, closures)
                                                for a in anchors))
        why = f"names ESC-10 {esc[0]}" if esc else None
        first = closures[0]  # audibility follows the dominant sense ("pole" is not a Pole)
        hit = next((a for a in self.audible if a in first), None)
        if why is None and hit is not None and not any(m in first for m in self.mute):
            why = f"under {hit.name()}"
        entry: dict[str, Any] = {"audible": why is not None, "why": why or "no audible anchor",
                                 "synsets": [s.name() for s in senses]}
        if why is None:
            return entry
        targets = set(senses) | {m for s in senses for m in s.part_meronyms() + s.member_meronyms()}
        entry["objects"] = [i for i, c in enumerate(self.class_closures) if targets & c]
        synonyms = {lem.name().lower() for s in senses for lem in s.lemmas()} | {lemma}
        gloss = _gloss_nouns(self.wn, senses)
        entry["places"] = [i for i, (tokens, place_syn, place_gloss) in enumerate(self.place_terms)
                           if lemma in tokens or (place_syn & gloss) or (synonyms & place_gloss)]
        entry["esc10"] = esc
        return entry


def read_caption_words(path: Path, min_count: int) -> tuple[list[str], set[str]]:
    """Words of a caption file (``id<TAB>sentence`` lines) seen >= ``min_count`` times, and those
    of them that end a determiner phrase ("a train is") in >= 30% of their uses (used as nouns)."""
    if not path.is_file():
        raise DataError(f"{path}: caption file not found; pass --captions FILE or set FUSION_DATA_DIR")
    counts: Counter[str] = Counter()
    after_determiner: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        words = line.split("\t")[-1].lower().split()
        counts.update(words)
        ends = [*words[2:], "."]  # "a train is", "the dog ." (not "a white dog")
        after_determiner.update(w for prev, w, nxt in zip(words, words[1:], ends)
                                if prev in DETERMINERS and (nxt == "." or nxt in FUNCTION_WORDS))
    words = sorted(w for w, c in counts.items() if c >= min_count)
    return words, {w for w in words if after_determiner[w] >= 0.3 * counts[w]}


def read_vocab_file(path: Path) -> list[str]:
    """Words of a ``--vocab`` file: a fusion Vocabulary JSON / JSON list, or text (``id<TAB>``caption lines)."""
    if not path.is_file():
        raise DataError(f"{path}: vocabulary file not found; fix --vocab")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
        return [str(w) for w in (data.get("words", list(data)) if isinstance(data, dict) else data)]
    return [w for line in text.splitlines() for w in line.split("\t")[-1].split()]


def load_sources(imagenet: Path = ASSETS / "categories_imagenet.txt", places: Path = ASSETS / "categories_places2.txt",
                 benchmark: bool = True) -> tuple[Sources, list[str]]:
    """SoundNet's label files and, with ``benchmark``, :mod:`fusion.benchmark`'s ESC-10 classes;
    also returns the benchmark's vocabulary words (sound nouns, shapes)."""
    lines = []
    for path in (imagenet, places):
        if not path.is_file():
            raise DataError(f"{path}: label file not found; fix --imagenet / --places")
        lines.append([ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()])
    esc: dict[str, tuple[str, ...]] = {}
    words: list[str] = []
    if benchmark:
        from fusion.benchmark import SHAPES, SOUND_SOURCES

        esc = {cls: tuple(src.synonyms) for cls, src in SOUND_SOURCES.items()}
        words = [w for src in SOUND_SOURCES.values() for w in src.synonyms]
        words += [w for names in SHAPES.values() for w in names]
    return Sources(tuple(ln.split()[0] for ln in lines[0]), tuple(lines[1]), esc), words


def _plural(lemma: str) -> str:
    if lemma.endswith(("s", "x", "z", "ch", "sh")):
        return lemma + "es"
    if lemma.endswith("y") and lemma[-2:-1] not in set("aeiou"):
        return lemma[:-1] + "ies"
    return lemma + "s"


def build_table(wn: Any, words: Sequence[str], sources: Sources,
                nouns_in_use: Iterable[str] = ()) -> dict[str, Any]:
    """The audible-noun table of ``words`` (fields: module docstring) through WordNet reader ``wn``;
    ``nouns_in_use`` are words the captions use as nouns (see :func:`noun_lemma`)."""
    from tqdm import tqdm

    in_use = set(nouns_in_use)
    builder = TableBuilder(wn, sources)
    forms: dict[str, set[str]] = {}
    for word in sorted(set(words)):
        lemma = noun_lemma(wn, word, word in in_use)
        if lemma is not None:
            forms.setdefault(lemma, {lemma, _plural(lemma)}).add(word)
    nouns: dict[str, Any] = {}
    not_audible: dict[str, list[str]] = {}
    for lemma in tqdm(sorted(forms), desc="audible nouns", disable=None):
        entry = builder.entry(lemma)
        if entry["audible"]:
            nouns[lemma] = {"forms": sorted(forms[lemma]), **entry}
        else:
            not_audible[lemma] = sorted(forms[lemma] - {lemma})
    first_sense = {lemma: (primary_senses(wn, lemma)[:1] or [None])[0] for lemma in forms}
    for lemma, entry in nouns.items():  # other nouns whose mention also counts as this one's
        mine = set(entry["synsets"])
        entry["synonyms"] = sorted(o for o, s in first_sense.items()
                                   if o != lemma and s is not None and s.name() in mine)
    return {"format": TABLE_FORMAT, "wordnet": "3.0", "rule": RULE,
            "num_objects": len(sources.imagenet_wnids), "num_places": len(sources.places),
            "esc10": sorted(sources.esc10), "nouns": nouns, "not_audible": not_audible}


def dump_table(table: dict[str, Any]) -> str:
    """Compact, diff-friendly JSON: one line per audible noun."""
    head = json.dumps({k: v for k, v in table.items() if k not in ("nouns", "not_audible")}, ensure_ascii=False)
    nouns = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in table["nouns"].items())
    return f'{head[:-1]}, "nouns": {{\n{nouns}\n}}, "not_audible": {json.dumps(table["not_audible"])}}}\n'


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m data_prep.audible_nouns", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="table to write (JSON)")
    parser.add_argument("--vocab", type=Path, nargs="*", default=[], help="extra vocabulary files")
    parser.add_argument("--captions", type=Path, help="default: $FUSION_DATA_DIR/msvd/captions/sents_train_lc_nopunc.txt")
    parser.add_argument("--min-count", type=int, default=2, help="caption words rarer than this are skipped")
    parser.add_argument("--wordnet", type=Path, default=DEFAULT_WORDNET_DIR, help="WordNet 3.0 database folder")
    parser.add_argument("--imagenet", type=Path, default=ASSETS / "categories_imagenet.txt", help="SoundNet objects")
    parser.add_argument("--places", type=Path, default=ASSETS / "categories_places2.txt", help="SoundNet places")
    parser.add_argument("--no-benchmark", action="store_true", help="leave out fusion.benchmark's ESC-10 words")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        sources, bench_words = load_sources(args.imagenet, args.places, benchmark=not args.no_benchmark)
        captions = args.captions or data_dir() / "msvd" / "captions" / "sents_train_lc_nopunc.txt"
        words, in_use = read_caption_words(captions, args.min_count)
        words += bench_words
        for path in args.vocab:
            words += read_vocab_file(path)
        with open_wordnet(args.wordnet) as wn:
            table = build_table(wn, words, sources, in_use | set(bench_words))
        atomic_write_text(args.out, dump_table(table))
    except FusionError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    log.info("%d audible nouns, %d other nouns -> %s", len(table["nouns"]), len(table["not_audible"]), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
