"""Link caption nouns and verbs to ImageNet, Places2 and AudioSet classes (rules: :mod:`.rules`)."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from data_prep.audible_nouns.wordnet import FUNCTION_WORDS, closure, noun_lemma, primary_senses
from data_prep.concept_links.rules import (LINKS_FORMAT, MAX_AUDIOSET_CLASSES, MAX_IMAGENET_CLASSES,
                                           MAX_VERBS_PER_NOUN, MIN_PAIR_COUNT, MIN_PMI, RULES)

SPACES = ("imagenet", "places2", "audioset")


@dataclass(frozen=True)
class LabelSpaces:
    """The classes linked to: ImageNet wnids (``n02084071``), Places2 names as parts
    (``("train_station", "platform")``), AudioSet display names (``"Male speech, man speaking"``)."""

    imagenet_wnids: tuple[str, ...]
    places: tuple[tuple[str, ...], ...]
    audioset: tuple[str, ...]
    imagenet_names: tuple[str, ...] = ()


def _index(closures: Iterable[set[Any]]) -> dict[Any, list[int]]:
    """synset -> ids of the classes whose closure holds it (the classes below the synset)."""
    below: dict[Any, list[int]] = defaultdict(list)
    for i, synsets in enumerate(closures):
        for s in synsets:
            below[s].append(i)
    return below


def _name_parts(name: str) -> list[str]:
    """An AudioSet display name's alternatives: ``"Male speech, man speaking"`` -> two."""
    return [p.strip().lower() for p in name.split(",") if p.strip()]


class LinkBuilder:
    """Links one caption word at a time, through one WordNet reader."""

    def __init__(self, wn: Any, spaces: LabelSpaces) -> None:
        self.wn = wn
        self.spaces = spaces
        synsets = [self._wnid_synset(w) for w in spaces.imagenet_wnids]
        self.imagenet_below = _index(closure(s) if s is not None else set() for s in synsets)
        self.imagenet_lemmas = [{n.lower() for n in s.lemma_names()} if s is not None else set() for s in synsets]
        self.place_tokens = [{wn.morphy(t, "n") or t for p in parts for t in p.split("_") if t} for parts in spaces.places]
        heads = [self._first_noun(parts[0]) if parts else None for parts in spaces.places]
        self.place_below = _index(closure(h) if h is not None else set() for h in heads)
        self.person = wn.synset("person.n.01")
        self.audio_tokens: list[set[str]] = []
        self.audio_verbs: list[set[str]] = []
        audio_closures = []
        for name in spaces.audioset:
            parts = [[t for t in part.replace("-", " ").split() if t not in FUNCTION_WORDS] for part in _name_parts(name)]
            tokens = {t for part in parts for t in part}
            # the head noun of each alternative (its last word): "Electric guitar" is a guitar, not an electric car
            nouns = [s for part in parts if part and (s := self._first_noun(part[-1])) is not None
                     and self.person not in closure(s)]  # "Printer", "Quack", "Pop": sounds, not people
            self.audio_tokens.append({self.wn.morphy(t, "n") or t for t in tokens})
            audio_closures.append(set().union(*(closure(s) for s in nouns)) if nouns else set())
            self.audio_verbs.append(self._verbs_of(tokens, nouns))
        self.audio_below = _index(audio_closures)

    def _wnid_synset(self, wnid: str) -> Any | None:
        try:
            return self.wn.synset_from_pos_and_offset("n", int(wnid[1:]))
        except Exception:  # nltk raises WordNetError / KeyError / ValueError for unknown offsets
            return None

    def _first_noun(self, token: str) -> Any | None:
        lemma = self.wn.morphy(token, "n")
        senses = self.wn.synsets(lemma, "n") if lemma else []
        return senses[0] if senses else None

    def _verbs_of(self, tokens: set[str], nouns: list[Any]) -> set[str]:
        """Verb lemmas a class's names state (``speaking``) or derive from its nouns (``laughter``),
        with the synonyms of their first verb sense (``speak`` -> ``talk``)."""
        lemmas = {v for t in tokens if t.endswith("ing") and (v := self.wn.morphy(t, "v"))}
        for noun in nouns:
            for lemma in noun.lemmas():
                lemmas |= {d.name().lower() for d in lemma.derivationally_related_forms()
                           if d.synset().pos() == "v"}
        out = set()
        for lemma in lemmas:
            senses = self.wn.synsets(lemma, "v")
            out |= {lemma} | ({n.lower() for n in senses[0].lemma_names() if "_" not in n} if senses else set())
        return out

    def noun_links(self, lemma: str) -> dict[str, list[int]]:
        """Space -> class ids of one noun lemma (spaces without a link left out)."""
        senses = primary_senses(self.wn, lemma)
        imagenet: set[int] = set()
        for sense in senses:
            below = self.imagenet_below.get(sense, [])
            if len(below) <= MAX_IMAGENET_CLASSES:
                imagenet |= set(below)
        imagenet |= {i for i, names in enumerate(self.imagenet_lemmas) if lemma in names}
        places = {i for i, tokens in enumerate(self.place_tokens) if lemma in tokens}
        places |= {i for s in senses for i in self.place_below.get(s, [])}
        audio = {i for i, tokens in enumerate(self.audio_tokens) if lemma in tokens}
        for sense in senses:
            below = self.audio_below.get(sense, [])
            if len(below) <= MAX_AUDIOSET_CLASSES:
                audio |= set(below)
        found = {"imagenet": imagenet, "places2": places, "audioset": audio}
        return {space: sorted(ids) for space, ids in found.items() if ids}

    def verb_links(self, lemma: str) -> dict[str, list[int]]:
        """Space -> class ids of one verb lemma: the AudioSet classes whose names state or derive it."""
        audio = [i for i, verbs in enumerate(self.audio_verbs) if lemma in verbs]
        return {"audioset": audio} if audio else {}


def caption_words(sentences: Iterable[Sequence[str]], min_count: int) -> tuple[Counter[str], set[str]]:
    """Word counts of tokenised captions, and the words used as nouns (after a determiner, >= 30%)."""
    from data_prep.audible_nouns.cli import caption_word_stats

    _, in_use, counts = caption_word_stats(sentences, min_count)
    return counts, in_use


def classify_words(wn: Any, counts: Counter[str], in_use: set[str], min_count: int) -> tuple[dict[str, str], dict[str, str]]:
    """Caption word -> noun lemma, and -ing caption word -> verb lemma, for words used >= ``min_count`` times."""
    nouns, verbs = {}, {}
    for word, count in counts.items():
        if count < min_count:
            continue
        lemma = noun_lemma(wn, word, word in in_use)
        if lemma is not None:
            nouns[word] = lemma
        elif word.endswith("ing") and word not in FUNCTION_WORDS and (verb := wn.morphy(word, "v")):
            verbs[word] = verb
    return nouns, verbs


def implied_verbs(sentences: Sequence[Sequence[str]], nouns: dict[str, str], verbs: dict[str, str],
                  linked: set[str]) -> dict[str, list[tuple[str, float]]]:
    """Verb word -> [(noun lemma, PMI)] for the linked nouns that imply it in the corpus (rules: :mod:`.rules`)."""
    n_sent = len(sentences)
    noun_count: Counter[str] = Counter()
    verb_count: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    for words in sentences:
        ns = {nouns[w] for w in words if w in nouns and nouns[w] in linked}
        vs = {w for w in words if w in verbs}
        noun_count.update(ns)
        verb_count.update(vs)
        pairs.update((n, v) for n in ns for v in vs)
    by_noun: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for (noun, verb), c in pairs.items():
        if c >= MIN_PAIR_COUNT:
            pmi = math.log(c * n_sent / (noun_count[noun] * verb_count[verb]))
            if pmi >= MIN_PMI:
                by_noun[noun].append((verb, pmi))
    out: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for noun, cands in by_noun.items():
        for verb, pmi in sorted(cands, key=lambda x: (-x[1], x[0]))[:MAX_VERBS_PER_NOUN]:
            out[verb].append((noun, round(pmi, 3)))
    return {v: sorted(ns, key=lambda x: (-x[1], x[0])) for v, ns in sorted(out.items())}


def build_links(wn: Any, sentences: Sequence[Sequence[str]], spaces: LabelSpaces, sources: dict[str, str],
                min_count: int) -> dict[str, Any]:
    """The link table (format: the package docstring) of the tokenised corpus ``sentences``."""
    from tqdm import tqdm

    counts, in_use = caption_words(sentences, min_count)
    nouns, verbs = classify_words(wn, counts, in_use, min_count)
    builder = LinkBuilder(wn, spaces)
    words: dict[str, dict[str, Any]] = {}
    forms: dict[str, list[str]] = defaultdict(list)
    for word, lemma in nouns.items():
        forms[lemma].append(word)
    for lemma in tqdm(sorted(forms), desc="noun links", disable=None):
        links = builder.noun_links(lemma)
        if links:
            words[lemma] = {"pos": "n", "forms": sorted(forms[lemma]),
                            "count": sum(counts[f] for f in forms[lemma]), "links": links}
    implied = implied_verbs(sentences, nouns, verbs, set(words))
    for word in sorted(verbs):
        links = {space: set(ids) for space, ids in builder.verb_links(verbs[word]).items()}
        for noun, _ in implied.get(word, []):
            for space, ids in words[noun]["links"].items():
                links.setdefault(space, set()).update(ids)
        if links:
            entry: dict[str, Any] = {"pos": "v", "forms": [word], "count": counts[word],
                                     "links": {s: sorted(links[s]) for s in SPACES if s in links}}
            if word in implied:
                entry["implied_by"] = [list(x) for x in implied[word]]
            words[word if word not in words else f"{word}#v"] = entry
    names = {"imagenet": [f"{w} {n}".strip() for w, n in zip(spaces.imagenet_wnids, spaces.imagenet_names
                                                               or [""] * len(spaces.imagenet_wnids))], "places2": ["/".join(p) for p in spaces.places],
             "audioset": list(spaces.audioset)}
    return {"format": LINKS_FORMAT, "wordnet": "3.0", "min_count": min_count, "rules": RULES,
            "spaces": {s: {"size": len(names[s]), "source": sources[s], "names": names[s]} for s in SPACES},
            "words": words}


def dump_links(table: dict[str, Any]) -> str:
    """Compact, diff-friendly JSON: one line per word."""
    head = json.dumps({k: v for k, v in table.items() if k not in ("spaces", "words")}, ensure_ascii=False)
    spaces = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in table["spaces"].items())
    words = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in table["words"].items())
    return f'{head[:-1]}, "spaces": {{\n{spaces}\n}}, "words": {{\n{words}\n}}}}\n'
