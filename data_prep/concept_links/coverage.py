"""How much of real caption text the link table covers (``results/concept_links_coverage.{json,md}``)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data_prep.concept_links.builder import SPACES
from fusion.io import atomic_write_text


def text_coverage(table: dict[str, Any], sentences: Sequence[Sequence[str]], nouns: dict[str, str],
                  verbs: dict[str, str]) -> dict[str, Any]:
    """Coverage of tokenised ``sentences``: the share of noun tokens (``nouns``: word -> lemma) with a
    link (in any space, and per space), of -ing verb tokens with one, and of captions with a linked noun."""
    form_entry = {f: e for e in table["words"].values() for f in e["forms"]}
    noun_tokens = linked_any = captions_hit = verb_tokens = verbs_linked = 0
    per_space: Counter[str] = Counter()
    unlinked: Counter[str] = Counter()
    for words in sentences:
        hit = False
        for w in words:
            entry = form_entry.get(w)
            if w in nouns:
                noun_tokens += 1
                if entry is not None and entry["pos"] == "n":
                    linked_any += 1
                    hit = True
                    per_space.update(s for s in entry["links"])
                else:
                    unlinked[nouns[w]] += 1
            elif w in verbs:
                verb_tokens += 1
                verbs_linked += entry is not None
        captions_hit += hit
    share = lambda a, b: round(a / b, 4) if b else None  # noqa: E731
    return {"captions": len(sentences), "noun_tokens": noun_tokens, "noun_tokens_linked": share(linked_any, noun_tokens),
            "noun_tokens_linked_per_space": {s: share(per_space[s], noun_tokens) for s in SPACES},
            "captions_with_linked_noun": share(captions_hit, len(sentences)),
            "verb_tokens": verb_tokens, "verb_tokens_linked": share(verbs_linked, verb_tokens),
            "top_unlinked_nouns": [[n, c] for n, c in unlinked.most_common(15)]}


def coverage_report(table: dict[str, Any], texts: dict[str, Sequence[Sequence[str]]], nouns: dict[str, str],
                    verbs: dict[str, str]) -> dict[str, Any]:
    """Table size per space and :func:`text_coverage` of each named text."""
    entries = table["words"].values()
    size = {"nouns": sum(e["pos"] == "n" for e in entries), "verbs": sum(e["pos"] == "v" for e in entries),
            "words_per_space": {s: sum(s in e["links"] for e in entries) for s in SPACES},
            "classes_reached": {s: len({i for e in entries for i in e["links"].get(s, [])}) for s in SPACES},
            "class_counts": {s: table["spaces"][s]["size"] for s in SPACES},
            "implied_verbs": sum("implied_by" in e for e in entries)}
    return {"table": size, "coverage": {name: text_coverage(table, sents, nouns, verbs) for name, sents in texts.items()}}


def write_coverage(report: dict[str, Any], prefix: Path, command: str) -> None:
    """``<prefix>.json`` and a Markdown table ``<prefix>.md``."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(prefix.with_suffix(".json"), json.dumps({"command": command, **report}, indent=1) + "\n")
    t = report["table"]
    lines = [f"# Concept-link coverage\n\nCommand: `{command}`\n",
             f"Table: {t['nouns']} nouns, {t['verbs']} verbs ({t['implied_verbs']} implied by nouns through the corpus); "
             "words / classes reached per space: " + ", ".join(
                 f"{s} {t['words_per_space'][s]} / {t['classes_reached'][s]} of {t['class_counts'][s]}" for s in SPACES) + "\n",
             "| text | captions | noun tokens | linked (any) | imagenet | places2 | audioset | captions with a linked noun | -ing verbs linked |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, c in report["coverage"].items():
        per = c["noun_tokens_linked_per_space"]
        lines.append(f"| {name} | {c['captions']} | {c['noun_tokens']} | {c['noun_tokens_linked']} | {per['imagenet']} | "
                     f"{per['places2']} | {per['audioset']} | {c['captions_with_linked_noun']} | {c['verb_tokens_linked']} |")
    lines.append("")
    for name, c in report["coverage"].items():
        lines.append(f"Most frequent unlinked nouns in {name}: " + ", ".join(f"{n} ({k})" for n, k in c["top_unlinked_nouns"]))
    atomic_write_text(prefix.with_suffix(".md"), "\n".join(lines) + "\n")
