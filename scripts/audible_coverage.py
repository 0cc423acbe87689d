"""How well the audible-noun table covers real captions (MSR-VTT), and what the audio encoders hear on real clips.

Nouns: every caption token (``fusion.text.tokenize``) that WordNet 3.0 makes a noun the way
the table generator decides (:func:`data_prep.audible_nouns.wordnet.noun_lemma`, with the
generator's "used as a noun" evidence from the same captions). A noun mention is audible when
the table (:class:`fusion.verifier.table.NounTable`, as the verifier reads it) maps the word to
an audible noun. The report gives the share of noun mentions that are audible, the most
frequent audible nouns, the most frequent other nouns, and the table's misses: nouns the
table's own rule calls audible but its vocabulary lacks, plus a fixed list of sound words
(music, singing, talking, crowd, engine, ...) with what the table does with each.

Label spaces: the share of audible noun mentions whose noun the table links to classes of each
label space (``imagenet``, ``places2``: SoundNet's heads; ``audioset``: an AudioSet encoder such
as YAMNet), i.e. which mentions each encoder can give zero-shot evidence for, and how many of each
space's classes some table noun links to.

On the real MSR-VTT clips with sound (``--clips``), each audio encoder's top classes per label
space (``--audio-encoders``, default ``soundnet8``; e.g. ``soundnet8,yamnet``) sit next to the
audible nouns each clip's 20 references name; ``linked`` says whether one of the top-5 classes
is a class the table links to that noun. Small n: read it as examples.

Usage: ``python scripts/audible_coverage.py [--table FILE] [--baseline-table FILE]
[--audio-encoders soundnet8,yamnet] [--out results/audible_coverage]``; writes ``OUT.json`` and ``OUT.md``. The committed results
compare with the table before the MSR-VTT fixes: ``git show fa39dd0:data_prep/audible_nouns.json >
audible_nouns_before.json``.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

from fusion.io import atomic_write_json, atomic_write_text
from fusion.paths import data_dir
from fusion.text import tokenize
from fusion.verifier.table import NounTable

logger = logging.getLogger("audible_coverage")
SOUND_WORDS = ("music", "song", "singing", "singer", "talking", "voice", "speech", "crowd", "audience", "engine",
               "car", "applause", "laughter", "cheering", "narrator", "announcer", "commentator", "band", "concert",
               "vehicle", "dog", "baby")
TOP = 30


def caption_nouns(wn: Any, sentences: list[list[str]]) -> tuple[Counter[str], dict[str, str]]:
    """Word counts of the captions and each word's noun lemma (only words WordNet makes nouns)."""
    from data_prep.audible_nouns.cli import caption_word_stats
    from data_prep.audible_nouns.wordnet import noun_lemma

    words, in_use, counts = caption_word_stats(sentences, min_count=1)
    lemma_of = {w: lemma for w in words if (lemma := noun_lemma(wn, w, w in in_use)) is not None}
    return counts, lemma_of


def coverage(table: NounTable, counts: Counter[str], lemma_of: dict[str, str]) -> dict[str, Any]:
    """Noun mentions, audible ones, the share, and the most frequent audible / other nouns."""
    audible: Counter[str] = Counter()
    other: Counter[str] = Counter()
    for word, lemma in lemma_of.items():
        noun = table.audible_noun(word)
        if noun is not None:
            audible[noun] += counts[word]
        else:
            other[lemma] += counts[word]
    mentions = sum(audible.values()) + sum(other.values())
    return {"noun_mentions": mentions, "audible_mentions": sum(audible.values()),
            "audible_share": sum(audible.values()) / max(mentions, 1), "audible_nouns_used": len(audible),
            "top_audible": audible.most_common(TOP), "top_other": other.most_common(TOP), "_other": other}


def space_coverage(table: NounTable, counts: Counter[str], lemma_of: dict[str, str]) -> dict[str, Any]:
    """Per label space: the audible noun mentions whose noun links to it, and the space's classes linked at all."""
    mentions: Counter[str] = Counter()
    spaces = list(table.spaces)
    total = 0
    for word in lemma_of:
        noun = table.audible_noun(word)
        if noun is None:
            continue
        total += counts[word]
        links = table.entries[noun].links
        for space in spaces:
            mentions[space] += counts[word] if links.get(space) else 0
        mentions["any"] += counts[word] if links else 0
        mentions["soundnet"] += counts[word] if links.get("imagenet") or links.get("places2") else 0
    classes = {space: len({i for e in table.entries.values() for i in e.links.get(space, ())}) for space in spaces}
    return {"audible_mentions": total,
            "linked_mentions": {k: {"mentions": v, "share": v / max(total, 1)} for k, v in mentions.items()},
            "classes_linked": {s: {"linked": classes[s], "of": table.spaces[s]} for s in spaces},
            "nouns_linked": {s: sum(bool(e.links.get(s)) for e in table.entries.values()) for s in spaces}}


def rule_misses(wn: Any, other: Counter[str], table: NounTable, min_mentions: int = 20) -> list[list[Any]]:
    """Nouns the table does not hold as audible although its own rule calls them audible (the
    table's vocabulary lacks them): ``[lemma, mentions, why]``, most frequent first."""
    from data_prep.audible_nouns.builder import TableBuilder
    from data_prep.audible_nouns.cli import load_sources

    builder = TableBuilder(wn, load_sources()[0])
    misses = []
    for lemma, count in other.most_common():
        if count < min_mentions:
            break
        if table.lemma(lemma) is None and (entry := builder.entry(lemma))["audible"]:
            misses.append([lemma, count, entry["why"]])
    return misses


def sound_words(wn: Any, table: NounTable, counts: Counter[str], lemma_of: dict[str, str]) -> list[dict[str, Any]]:
    """What the table does with each of :data:`SOUND_WORDS`."""
    from data_prep.audible_nouns.wordnet import noun_lemma

    rows = []
    for word in SOUND_WORDS:
        noun = table.audible_noun(word)
        if noun is not None:
            status = f"audible noun ({noun})"
        elif word in lemma_of:
            status = "noun, not audible in the table" if table.lemma(word) else "noun, not in the table's vocabulary"
        elif noun_lemma(wn, word, used_as_noun=True) is not None:
            status = "used as a verb or adjective in the captions (no noun mention)"
        else:
            status = "not a WordNet noun"
        rows.append({"word": word, "mentions": counts[word], "status": status})
    return rows


def encoders_on_clips(table: NounTable, clips_dir: Path, captions: dict[str, list[str]],
                      encoders: list[str]) -> list[dict[str, Any]]:
    """Each audio encoder's top-3 classes per label space on every clip, beside the audible nouns
    its references name (``linked``: top-5 classes the table links to the noun)."""
    from fusion.media import decode
    from fusion.tags import Tagger

    tagger = Tagger(top_k=5, audio_encoders={name: None for name in encoders})
    names = {s: labels for b in tagger.audio_bundles.values() for s, labels in b.label_spaces.items()}
    rows = []
    for path in sorted(clips_dir.glob("*.mp4"), key=lambda p: int(p.stem.removeprefix("video"))):
        media = decode(path, frames=False)
        tags = tagger.tag_audio(media.audio, int(media.sample_rate_hz))
        heard = {(space, t["label"]) for space, items in tags.items() for t in items}
        named: Counter[str] = Counter()
        for caption in captions.get(path.stem, []):
            named.update(list(dict.fromkeys(table.mentions(tokenize(caption)))))  # once per caption, in order
        nouns = []
        for noun, refs in named.most_common():
            linked = {(s, names[s][i]) for s, ids in table.entries[noun].links.items() if s in names for i in ids}
            nouns.append({"noun": noun, "references": refs, "linked": sorted(f"{s}:{n}" for s, n in heard & linked),
                          "classes": len(linked)})
        rows.append({"clip": path.stem, "seconds": round(media.audio.size / media.sample_rate_hz, 1),
                     "top": {space: [[t["label"], round(t["score"], 3)] for t in items[:3]] for space, items in tags.items()},
                     "named": nouns})
    return rows


def markdown(report: dict[str, Any]) -> str:
    """The report as a readable page."""
    cov = report["coverage"]
    lines = ["# Audible-noun table on MSR-VTT captions\n",
             f"{report['captions']:,} captions ({report['source']}), {cov['noun_mentions']:,} noun mentions; "
             f"audible: {cov['audible_mentions']:,} = **{cov['audible_share']:.1%}** "
             f"({cov['audible_nouns_used']} distinct audible nouns) with `{report['table']}`."]
    if "baseline" in report:
        base = report["baseline"]
        lines.append(f"Before the fix (`{base['table']}`): {base['audible_mentions']:,} = {base['audible_share']:.1%} "
                     f"({base['audible_nouns_used']} distinct audible nouns).")
    lines += ["\n## Most frequent audible nouns\n", ", ".join(f"{n} {c:,}" for n, c in cov["top_audible"]),
              "\n## Most frequent other nouns\n", ", ".join(f"{n} {c:,}" for n, c in cov["top_other"]),
              "\n## Sound words\n", "| word | mentions (tokens) | table |", "|---|---|---|"]
    lines += [f"| {r['word']} | {r['mentions']:,} | {r['status']} |" for r in report["sound_words"]]
    lines += ["\n## Misses: audible by the table's rule, absent from its vocabulary (>= 20 mentions)\n",
              ", ".join(f"{n} {c:,}" for n, c, _ in report["rule_misses"]) or "none"]
    spaces = report["spaces"]
    lines += ["\n## Label spaces: which audible mentions each encoder can give zero-shot evidence for\n",
              "| label space | audible mentions linked | share | table nouns linked | classes linked |", "|---|---|---|---|---|"]
    for key, row in spaces["linked_mentions"].items():
        classes = spaces["classes_linked"].get(key)
        lines.append(f"| {key} | {row['mentions']:,} | {row['share']:.1%} | {spaces['nouns_linked'].get(key, '')} | "
                     + (f"{classes['linked']} of {classes['of']} |" if classes else " |"))
    lines.append("\n`soundnet` = imagenet or places2 (SoundNet's two heads); `any` = a link in some space.")
    if report.get("clips"):
        spaces_heard = list(report["clips"][0]["top"])
        lines += [f"\n## {report['audio_encoders']} on the real clips next to the audible nouns their references name\n",
                  "Top-3 classes per label space (posteriors averaged over each encoder's output steps); nouns with the "
                  "number of the clip's 20 references naming them; `[...]` = a top-5 class the table links to that "
                  "noun.\n", "| clip | s | " + " | ".join(spaces_heard) + " | audible nouns in the references |",
                  "|---|---|" + "---|" * len(spaces_heard) + "---|"]
        for row in report["clips"]:
            tops = " | ".join(", ".join(f"{n} {s:.2f}" for n, s in row["top"][space]) for space in spaces_heard)
            nouns = ", ".join(f"{n['noun']} {n['references']}" + (f" [{', '.join(n['linked'])}]" if n["linked"] else "")
                              for n in row["named"][:8])
            lines.append(f"| {row['clip']} | {row['seconds']} | {tops} | {nouns} |")
        s = report["clips_summary"]
        lines.append(f"\n{s['pairs_linked']} of {s['pairs']} (clip, noun named by >= 5 references) pairs have a "
                     f"linked class in the encoders' top 5; {s['clips_with_link']} of {s['clips']} clips have at least "
                     f"one. {s['pairs_without_classes']} of the {s['pairs']} pairs name a noun the table links to no "
                     f"class of these label spaces ({', '.join(spaces_heard)}), so those encoders can support them only "
                     "through the learned verifier, not through a linked label.")
    lines.append(f"\nCommand: `{report['command']}`")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line; returns the exit status."""
    from data_prep.audible_nouns.wordnet import DEFAULT_WORDNET_DIR, open_wordnet

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", type=Path, default=None, help="audible-noun table (default: the committed one)")
    parser.add_argument("--baseline-table", type=Path, default=None, help="a table to compare with (e.g. before a fix)")
    parser.add_argument("--source", type=Path, default=None, help="MSR-VTT annotations (default FUSION_DATA_DIR/msrvtt/annotations)")
    parser.add_argument("--clips", type=Path, default=None, help="real MSR-VTT clips (default FUSION_DATA_DIR/msrvtt/clips)")
    parser.add_argument("--no-soundnet", action="store_true", help="skip the audio encoders on the clips")
    parser.add_argument("--audio-encoders", default="soundnet8",
                        help="comma-separated audio encoders run on the clips (default soundnet8; e.g. soundnet8,yamnet)")
    parser.add_argument("--wordnet", type=Path, default=DEFAULT_WORDNET_DIR, help="WordNet 3.0 folder")
    parser.add_argument("--out", type=Path, default=Path("results/audible_coverage"), help="writes OUT.json and OUT.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from data_prep.msrvtt import read_msrvtt

    start = time.time()
    layout, _, captions, _ = read_msrvtt(args.source or data_dir() / "msrvtt" / "annotations")
    sentences = [tokenize(c) for caps in captions.values() for c in caps]
    table = NounTable.load(args.table)
    report: dict[str, Any] = {"source": f"MSR-VTT {layout} annotations, all splits", "captions": len(sentences),
                              "table": str(args.table or "data_prep/audible_nouns.json")}
    with open_wordnet(args.wordnet) as wn:
        counts, lemma_of = caption_nouns(wn, sentences)
        cov = coverage(table, counts, lemma_of)
        report["rule_misses"] = rule_misses(wn, cov.pop("_other"), table)
        report["coverage"] = cov
        report["sound_words"] = sound_words(wn, table, counts, lemma_of)
        report["spaces"] = space_coverage(table, counts, lemma_of)
    if args.baseline_table is not None:
        base = coverage(NounTable.load(args.baseline_table), counts, lemma_of)
        base.pop("_other")
        report["baseline"] = {"table": args.baseline_table.name, **{k: base[k] for k in
                              ("audible_mentions", "audible_share", "audible_nouns_used")}}
    clips_dir = args.clips or data_dir() / "msrvtt" / "clips"
    if not args.no_soundnet and clips_dir.is_dir():
        report["audio_encoders"] = args.audio_encoders
        report["clips"] = encoders_on_clips(table, clips_dir, captions, args.audio_encoders.split(","))
        pairs = [n for row in report["clips"] for n in row["named"] if n["references"] >= 5]
        report["clips_summary"] = {"clips": len(report["clips"]), "pairs": len(pairs),
                                   "pairs_linked": sum(bool(n["linked"]) for n in pairs),
                                   "pairs_without_classes": sum(n["classes"] == 0 for n in pairs),
                                   "clips_with_link": sum(any(n["linked"] for n in row["named"]) for row in report["clips"])}
    report["seconds"] = round(time.time() - start, 1)
    report["command"] = "python scripts/audible_coverage.py" + (f" --baseline-table {args.baseline_table.name}"
                                                                if args.baseline_table else "") + \
        (f" --audio-encoders {args.audio_encoders}" if args.audio_encoders != "soundnet8" else "")
    atomic_write_json(args.out.with_suffix(".json"), report)
    atomic_write_text(args.out.with_suffix(".md"), markdown(report))
    print(f"audible share of MSR-VTT noun mentions: {cov['audible_share']:.1%} "
          f"({cov['audible_mentions']:,} / {cov['noun_mentions']:,}); {len(report['rule_misses'])} rule misses "
          f"-> {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
