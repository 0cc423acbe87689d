"""Build the audible-noun table: link vocabulary nouns to the encoders' label spaces (ImageNet,
Places2, AudioSet) and to ESC-10."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from data_prep.audible_nouns.rules import (AUDIBLE_ANCHORS, CAPTION_SENSES_NOT_AUDIBLE, ESC10_ANCHORS,
                                           MAX_NAMING_HYPONYMS, MUTE_ANCHORS, RULE, TABLE_FORMAT)
from data_prep.audible_nouns.wordnet import (FUNCTION_WORDS, WORD_RE, closure, gloss_nouns, noun_lemma, primary_senses,
                                             resolve_anchor)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sources:
    """What the table indexes into: ``imagenet_wnids`` (1000 "n02084071" ids, conv8 order),
    ``places`` (401 scenes as name parts, ``("train_station", "platform")``, conv8_2 order; see
    :func:`fusion.encoders.labels.place_parts`), ``esc10`` (class -> benchmark nouns naming it) and
    ``audioset`` (521 classes as their display names' comma-separated parts, YAMNet's output
    order: ``("Male speech", "man speaking")``; empty: no AudioSet links)."""

    imagenet_wnids: tuple[str, ...]
    places: tuple[tuple[str, ...], ...]
    esc10: dict[str, tuple[str, ...]]
    audioset: tuple[tuple[str, ...], ...] = ()

    def spaces(self) -> dict[str, int]:
        """Label space -> size, as the table's ``spaces`` header."""
        sizes = {"imagenet": len(self.imagenet_wnids), "places2": len(self.places), "audioset": len(self.audioset)}
        return {space: size for space, size in sizes.items() if size}


# An AudioSet class name whose first WordNet sense is a person names a sound, not a person: "Quack",
# "Printer", "Synthesizer", "Pop" (dad.n.01) would otherwise count as evidence of "person".
CLASS_SENSES_SKIPPED = frozenset({"noun.person"})


@dataclass(frozen=True)
class AudioSetTerms:
    """One AudioSet class as the builder matches it: ``names`` (each display-name part as one
    lemma, ``man_speaking``), ``words`` (the parts' words as noun lemmas) and ``senses`` (the
    WordNet closure of the first noun sense of each part WordNet knows)."""

    names: frozenset[str]
    words: frozenset[str]
    senses: frozenset[Any]


def _names_anchor(sense: Any, sense_closure: set[Any], anchor: Any) -> bool:
    """The sense is the anchor, under it (``puppy`` -> dog), or its direct hypernym with few
    hyponyms (``chicken`` -> rooster) -- not a broad one (``motion`` -> wave, ``animal`` -> dog)."""
    if anchor in sense_closure:
        return True
    return sense in anchor.hypernyms() and len(sense.hyponyms()) <= MAX_NAMING_HYPONYMS


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
        self.place_terms = [self._place_terms(parts) for parts in sources.places]
        self.audioset_terms = [self._audioset_terms(parts) for parts in sources.audioset]

    def _audioset_terms(self, parts: tuple[str, ...]) -> AudioSetTerms:
        plain = [re.sub(r"\(.*?\)", " ", p.lower()) for p in parts]  # "Motor vehicle (road)" -> "motor vehicle"
        names = {"_".join(WORD_RE.findall(p)) for p in plain} - {""}
        words = {self.wn.morphy(w, "n") or w for p in plain for w in WORD_RE.findall(p) if w not in FUNCTION_WORDS}
        senses: set[Any] = set()
        for name in names:
            found = self.wn.synsets(name, "n")
            if found and found[0].lexname() not in CLASS_SENSES_SKIPPED:
                senses |= closure(found[0])
        return AudioSetTerms(frozenset(names), frozenset(words), frozenset(senses))

    def _class_closure(self, wnid: str) -> set[Any]:
        try:
            return closure(self.wn.synset_from_pos_and_offset("n", int(wnid[1:])))
        except Exception:  # nltk raises WordNetError / KeyError / ValueError for unknown offsets
            logger.warning("ImageNet class %s is not a WordNet 3.0 noun offset here; unlinked", wnid)
            return set()

    def _place_terms(self, parts: tuple[str, ...]) -> tuple[set[str], set[str], set[str]]:
        """(name tokens, synonyms of its head synset, gloss nouns of its head synset)."""
        tokens = {self.wn.morphy(t, "n") or t for p in parts for t in p.split("_") if t}
        head = self.wn.synsets(parts[0], "n") if parts else []
        if not head and parts:
            head = self.wn.synsets(parts[0].split("_")[-1], "n")
        synonyms = {lem.name().lower() for lem in head[0].lemmas()} if head else set()
        gloss = gloss_nouns(self.wn, head[:1])
        return tokens, synonyms, gloss

    def entry(self, lemma: str) -> dict[str, Any]:
        """The table entry of one noun lemma (without its surface forms)."""
        senses = primary_senses(self.wn, lemma)
        closures = [closure(s) for s in senses]
        esc = sorted(cls for cls, words in self.sources.esc10.items() if lemma in words)
        esc += sorted(cls for cls, anchors in self.esc_anchors.items()
                      if cls not in esc and any(_names_anchor(s, c, a) for s, c in zip(senses, closures)
                                                for a in anchors))
        why = f"names ESC-10 {esc[0]}" if esc else None
        first = closures[0]  # audibility follows the dominant sense ("pole" is not a Pole)
        hit = next((a for a in self.audible if a in first), None)
        not_why = "no audible anchor"
        if lemma in CAPTION_SENSES_NOT_AUDIBLE:
            not_why = f"caption sense: {CAPTION_SENSES_NOT_AUDIBLE[lemma]}"
        elif senses[0].instance_hypernyms():
            not_why = "a proper name"
        elif hit is not None and not any(m in first for m in self.mute):
            why = why or f"under {hit.name()}"
        entry: dict[str, Any] = {"audible": why is not None, "why": why or not_why,
                                 "synsets": [s.name() for s in senses]}
        if why is None:
            return entry
        targets = set(senses) | {m for s in senses for m in s.part_meronyms() + s.member_meronyms()}
        entry["objects"] = [i for i, c in enumerate(self.class_closures) if targets & c]
        synonyms = {lem.name().lower() for s in senses for lem in s.lemmas()} | {lemma}
        gloss = gloss_nouns(self.wn, senses)
        entry["places"] = [i for i, (tokens, place_syn, place_gloss) in enumerate(self.place_terms)
                           if lemma in tokens or (place_syn & gloss) or (synonyms & place_gloss)]
        entry["audioset"] = [i for i, terms in enumerate(self.audioset_terms)
                             if synonyms & terms.names or lemma in terms.words or set(senses) & terms.senses]
        entry["esc10"] = esc
        return entry


def _plural(lemma: str) -> str:
    if lemma.endswith(("s", "x", "z", "ch", "sh")):
        return lemma + "es"
    if lemma.endswith("y") and lemma[-2:-1] not in set("aeiou"):
        return lemma[:-1] + "ies"
    return lemma + "s"


def build_table(wn: Any, words: Sequence[str], sources: Sources,
                nouns_in_use: Iterable[str] = ()) -> dict[str, Any]:
    """The audible-noun table of ``words`` (fields: the package docstring) through WordNet reader ``wn``;
    ``nouns_in_use`` are words the captions use as nouns (see :func:`~.wordnet.noun_lemma`)."""
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
    first_sense: dict[str, str] = {}
    for lemma in tqdm(sorted(forms), desc="audible nouns", disable=None):
        entry = builder.entry(lemma)
        first_sense[lemma] = entry["synsets"][0]
        if entry["audible"]:
            nouns[lemma] = {"forms": sorted(forms[lemma]), **_with_links(entry, sources)}
        else:
            not_audible[lemma] = sorted(forms[lemma] - {lemma})
    for lemma, entry in nouns.items():  # other nouns whose mention also counts as this one's
        mine = set(entry["synsets"])
        entry["synonyms"] = sorted(o for o, s in first_sense.items() if o != lemma and s in mine)
    return {"format": TABLE_FORMAT, "wordnet": "3.0", "rule": RULE, "spaces": sources.spaces(),
            "esc10": sorted(sources.esc10), "nouns": nouns, "not_audible": not_audible}


def _with_links(entry: dict[str, Any], sources: Sources) -> dict[str, Any]:
    """An audible entry with its per-space class lists gathered under ``links`` (spaces the sources lack left out)."""
    spaces = sources.spaces()
    lists = {"imagenet": entry.pop("objects"), "places2": entry.pop("places"), "audioset": entry.pop("audioset")}
    return {**entry, "links": {space: ids for space, ids in lists.items() if space in spaces}}


def dump_table(table: dict[str, Any]) -> str:
    """Compact, diff-friendly JSON: one line per audible noun."""
    head = json.dumps({k: v for k, v in table.items() if k not in ("nouns", "not_audible")}, ensure_ascii=False)
    nouns = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in table["nouns"].items())
    return f'{head[:-1]}, "nouns": {{\n{nouns}\n}}, "not_audible": {json.dumps(table["not_audible"])}}}\n'
