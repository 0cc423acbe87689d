"""The real-clip results table as Markdown, from the report :mod:`scripts.zeroshot_real_clips` writes.

The report (a JSON object) holds ``clips`` (counts), ``systems`` and ``paired`` (from
:func:`fusion.realeval.harness.compare_systems`), ``audio_ablation`` (per system: on / off
summaries on the clips with sound and their paired intervals), ``notes`` (what each system is),
``baselines`` (names) and ``command``. :func:`render_markdown` turns it into the README table,
the paired intervals, the ablation and the captions per clip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fusion.realeval.metrics import NOUN_PRECISION

ANCHOR = ("Historical anchor: Thomason et al. (COLING 2014), object / verb / scene detectors + language "
          "statistics, MSVD test METEOR 23.9 (on MSVD's 670 test clips, with corpus METEOR; not comparable "
          "number for number with 26 development clips).")
LIMITS = ("What it cannot do: it has never seen a video paired with a caption, so it can only say what "
          "an ImageNet / Places2 / AudioSet class names and what the captions' language makes likely; "
          "people, actions and anything no class names (a teacher, a lesson, cooking rice) it guesses "
          "from the corpus's habits, and on 26 clips a difference of a few CIDEr points is noise unless "
          "its paired interval excludes 0.")
HEADER_METRICS = ("CIDEr", "METEOR", "Bleu_4", "ROUGE_L", NOUN_PRECISION)


def _f(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _interval(p: Mapping[str, Any]) -> str:
    if p.get("mean_delta") is None:
        return "-"
    low, high = p["ci95"]
    mark = " *" if low > 0 or high < 0 else ""
    return f"{p['mean_delta']:+.3f} [{low:+.3f}, {high:+.3f}]{mark}"


def systems_table(report: Mapping[str, Any], subset: str = "all") -> list[str]:
    """One row per system: per-clip means on ``subset``, corpus METEOR / CIDEr, nouns, repeats."""
    lines = ["| system | CIDEr | METEOR | BLEU-4 | ROUGE-L | noun precision | clips without nouns | "
             "captions with repeats | corpus METEOR | corpus CIDEr |", "|---|" + "---:|" * 9]
    for name, sysrep in report["systems"].items():
        s, c = sysrep["summary"][subset], sysrep["corpus"]
        cells = [_f(s[m]) for m in HEADER_METRICS]
        cells += [f"{s['clips_without_nouns']}/{s['n_clips']}", f"{s['clips_with_repeats']}/{s['n_clips']}",
                  _f(c.get("METEOR")), _f(c.get("CIDEr"))]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def paired_table(report: Mapping[str, Any], metrics: Sequence[str] = ("CIDEr", "METEOR", NOUN_PRECISION)) -> list[str]:
    """Each system minus each baseline: mean per-clip difference [95% paired bootstrap interval]."""
    lines = ["| system | baseline | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for name, against in report["paired"].items():
        for base, per_metric in against.items():
            lines.append(f"| {name} | {base} | " + " | ".join(_interval(per_metric[m]) for m in metrics) + " |")
    return lines


def ablation_table(report: Mapping[str, Any]) -> list[str]:
    """Audio evidence on vs off on the clips with sound, per system that hears."""
    rows = report.get("audio_ablation") or {}
    if not rows:
        return ["(no system with audio evidence was scored)"]
    lines = ["| system | clips | CIDEr on | CIDEr off | on - off CIDEr | METEOR on | METEOR off | on - off METEOR | "
             "captions changed |", "|---|---:|---:|---:|---|---:|---:|---|---:|"]
    for name, ab in rows.items():
        on, off, p = ab["on"], ab["off"], ab["paired"]
        lines.append(f"| {name} | {on['n_clips']} | {_f(on['CIDEr'])} | {_f(off['CIDEr'])} | {_interval(p['CIDEr'])} | "
                     f"{_f(on['METEOR'])} | {_f(off['METEOR'])} | {_interval(p['METEOR'])} | {ab['changed']} |")
    return lines


def captions_table(report: Mapping[str, Any], references: Mapping[str, Sequence[str]]) -> list[str]:
    """Per clip: one reference, then each system's caption with its CIDEr."""
    names = list(report["systems"])
    lines = ["| clip | a reference | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for clip, refs in references.items():
        cells = []
        for n in names:
            sysrep = report["systems"][n]
            cells.append(f"{sysrep['predictions'][clip]} ({sysrep['per_clip'][clip]['CIDEr']:.2f})")
        lines.append(f"| {clip} | {refs[0]} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(report: Mapping[str, Any], references: Mapping[str, Sequence[str]]) -> str:
    """The whole results page (see the module docstring)."""
    clips = report["clips"]
    out = [f"# Captioning real clips without paired data: {clips['all']} development clips "
           f"({clips['with_audio']} MSR-VTT with sound, {clips['without_audio']} MSVD without)", "",
           f"Reproduce: `{report['command']}`", "",
           "Per-clip means (CIDEr with one IDF table from the references of all the clips, the same for every "
           "system; noun precision: share of a caption's nouns found, lemmatised, in its clip's references; "
           "means over the clips whose caption has a noun). Corpus METEOR / CIDEr: coco-caption over all the clips.",
           "", *systems_table(report), "", ANCHOR, "", LIMITS, ""]
    for name, note in report.get("notes", {}).items():
        out.append(f"- **{name}**: {note}")
    out += ["", "## Paired differences (system - baseline, all clips)", "",
            "Mean per-clip difference [paired bootstrap 95% interval]; * = the interval excludes 0.", "",
            *paired_table(report), "", "## Clips with sound only", "", *systems_table(report, "with_audio"), "",
            "## Audio ablation (clips with sound: audio evidence on vs every clip as if it had no audio stream)", "",
            *ablation_table(report), "", "## Captions per clip (CIDEr)", "", *captions_table(report, references), ""]
    goal = report.get("goal")
    if goal:
        out += ["## The issue's goal", "", *[f"- {k}: {v}" for k, v in goal.items()], ""]
    return "\n".join(out)

