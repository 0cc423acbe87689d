"""``fusion caption --explain``: why a caption won, noun by noun.

For the chosen caption: each audible noun with its audio evidence and a verdict
(supported / contradicted / no evidence); for the runner-up captions: their total and
per-scorer scores, so a user sees what the sound changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fusion.verifier.table import NounTable, default_table

SUPPORT_THRESHOLD = 0.5  # |evidence| below this (about 1.6x odds) is reported as "weak"


def _verdict(value: float | None) -> str:
    if value is None:
        return "no evidence"
    if value >= SUPPORT_THRESHOLD:
        return "supported by the sound"
    if value <= -SUPPORT_THRESHOLD:
        return "contradicted by the sound"
    return "weak evidence"


def noun_evidence(words: str, evidence: Mapping[str, float] | None, table: NounTable) -> list[dict[str, Any]]:
    """The audible nouns of a caption with their evidence (None when audio is absent)."""
    out = []
    for word in words.split():
        noun = table.audible_noun(word)
        if noun is None:
            continue
        value = None if evidence is None else evidence.get(noun)
        out.append({"word": word, "noun": noun, "evidence": value, "verdict": _verdict(value),
                    "esc10": list(table.entries[noun].esc10)})
    return out


def explain(hypotheses: Sequence[Any], evidence: Mapping[str, float] | None, table: NounTable | None = None,
            max_runners_up: int = 4) -> dict[str, Any]:
    """Explain one video's n-best list.

    Args:
        hypotheses: ``fusion.decoding.hypothesis.Hypothesis`` list, best first (``.words``,
            ``.score``, ``.scores``, ``.total``).
        evidence: the video's audio evidence (``AudioNounVerifier.evidence``), None = no audio.
        table: the audible-noun table (default: the committed one).
        max_runners_up: how many runner-up captions to report.

    Returns:
        ``{"audio": "present"|"absent", "caption", "score", "scores", "nouns": [{word, noun,
        evidence, verdict, esc10}], "runners_up": [{caption, score, scores, nouns}],
        "strongest_evidence": [[noun, evidence], ...]}``.
    """
    table = table if table is not None else default_table()
    if not hypotheses:
        return {"audio": "absent" if evidence is None else "present", "caption": "", "nouns": [], "runners_up": []}
    best = hypotheses[0]
    runners = [{"caption": h.words, "score": float(h.score), "scores": dict(getattr(h, "scores", {})),
                "nouns": noun_evidence(h.words, evidence, table)} for h in hypotheses[1:1 + max_runners_up]]
    strongest = sorted((evidence or {}).items(), key=lambda kv: -abs(kv[1]))[:5]
    return {"audio": "absent" if evidence is None else "present", "caption": best.words, "score": float(best.score),
            "scores": dict(getattr(best, "scores", {})), "nouns": noun_evidence(best.words, evidence, table),
            "runners_up": runners, "strongest_evidence": [[n, round(v, 3)] for n, v in strongest]}


def format_explanation(report: Mapping[str, Any]) -> str:
    """The :func:`explain` dict as a few readable lines."""
    lines = [f"caption: {report['caption']}  (score {report.get('score', 0.0):.3f})"]
    if report["audio"] == "absent":
        lines.append("  audio: absent (no audio stream) - the verifier adds nothing")
    elif not report["nouns"]:
        lines.append("  audio: present; the caption names no audible noun")
    for item in report["nouns"]:
        value = "n/a" if item["evidence"] is None else f"{item['evidence']:+.2f}"
        lines.append(f"  {item['word']:<12} audio evidence {value:>6}  {item['verdict']}")
    if report.get("strongest_evidence"):
        lines.append("  strongest audio evidence: " + ", ".join(f"{n} {v:+.2f}" for n, v in report["strongest_evidence"]))
    for i, runner in enumerate(report.get("runners_up", []), start=2):
        parts = " ".join(f"{k}={v:.2f}" for k, v in runner["scores"].items())
        lines.append(f"  #{i} {runner['score']:.3f} {runner['caption']}  [{parts}]")
    return "\n".join(lines)
