"""``fusion caption --explain``: why a caption won, noun by noun.

For the chosen caption: each audible noun with its audio evidence and a verdict
(supported / contradicted / weak / unsure / not heard); for the runner-up captions: their
total and per-scorer scores, so a user sees what the sound changed. Where the verifier
abstains (:class:`fusion.verifier.core.VerifiedEvidence`), the verdict is "unsure" and the
reason is given; a clip without an audio stream names no sound with confidence: its audible
nouns are "not heard".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fusion.verifier.table import NounTable, default_table

SUPPORT_THRESHOLD = 0.5  # |evidence| below this (about 1.6x odds) is reported as "weak"


NOT_HEARD = "not heard (the clip has no audio stream)"


def _verdict(value: float | None, unsure: bool = False) -> str:
    if value is None:
        return "no evidence"
    if unsure:
        return "unsure"
    if value >= SUPPORT_THRESHOLD:
        return "supported by the sound"
    if value <= -SUPPORT_THRESHOLD:
        return "contradicted by the sound"
    return "weak evidence"


def noun_evidence(words: str, evidence: Mapping[str, float] | None, table: NounTable) -> list[dict[str, Any]]:
    """The audible nouns of a caption with their evidence, verdict and, where unsure, why.

    ``evidence`` None means the clip has no audio: every audible noun is "not heard".
    """
    unsure = getattr(evidence, "unsure", {}) or {}
    out = []
    for word in words.split():
        noun = table.audible_noun(word)
        if noun is None:
            continue
        value = None if evidence is None else evidence.get(noun)
        item = {"word": word, "noun": noun, "evidence": value,
                "verdict": NOT_HEARD if evidence is None else _verdict(value, noun in unsure),
                "esc10": list(table.entries[noun].esc10)}
        if evidence is not None and noun in unsure:
            item["why"] = unsure[noun]
        out.append(item)
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
        evidence, verdict, esc10[, why]}], "runners_up": [{caption, score, scores, nouns}],
        "strongest_evidence": [[noun, evidence], ...], "verifier": {"distance", "threshold",
        "out_of_distribution", "abstains" (why it abstains on the whole clip, or None),
        "unsure_nouns"}}``; ``strongest_evidence`` leaves out the nouns the verifier is unsure of.
    """
    table = table if table is not None else default_table()
    if not hypotheses:
        return {"audio": "absent" if evidence is None else "present", "caption": "", "nouns": [], "runners_up": []}
    best = hypotheses[0]
    runners = [{"caption": h.words, "score": float(h.score), "scores": dict(getattr(h, "scores", {})),
                "nouns": noun_evidence(h.words, evidence, table)} for h in hypotheses[1:1 + max_runners_up]]
    unsure = getattr(evidence, "unsure", {}) or {}
    confident = {n: v for n, v in (evidence or {}).items() if n not in unsure}
    strongest = sorted(confident.items(), key=lambda kv: -abs(kv[1]))[:5]
    report = {"audio": "absent" if evidence is None else "present", "caption": best.words, "score": float(best.score),
              "scores": dict(getattr(best, "scores", {})), "nouns": noun_evidence(best.words, evidence, table),
              "runners_up": runners, "strongest_evidence": [[n, round(v, 3)] for n, v in strongest]}
    distance = getattr(evidence, "distance", None)
    if distance is not None:
        threshold = getattr(evidence, "threshold", None)
        report["verifier"] = {"distance": round(distance, 3), "threshold": threshold,
                              "out_of_distribution": bool(getattr(evidence, "out_of_distribution", False)),
                              "abstains": getattr(evidence, "reason", None), "unsure_nouns": len(unsure)}
    return report


def format_explanation(report: Mapping[str, Any]) -> str:
    """The :func:`explain` dict as a few readable lines."""
    lines = [f"caption: {report['caption']}  (score {report.get('score', 0.0):.3f})"]
    if report["audio"] == "absent":
        lines.append("  audio: absent (no audio stream) - the verifier adds nothing; no sound named here was heard")
    elif not report["nouns"]:
        lines.append("  audio: present; the caption names no audible noun")
    verifier = report.get("verifier") or {}
    if verifier.get("abstains"):
        lines.append(f"  verifier: unsure - {verifier['abstains']}; it adds little either way")
    for item in report["nouns"]:
        value = "n/a" if item["evidence"] is None else f"{item['evidence']:+.2f}"
        why = f" ({item['why']})" if item.get("why") and not verifier.get("abstains") else ""
        lines.append(f"  {item['word']:<12} audio evidence {value:>6}  {item['verdict']}{why}")
    if report.get("strongest_evidence"):
        lines.append("  strongest audio evidence: " + ", ".join(f"{n} {v:+.2f}" for n, v in report["strongest_evidence"]))
    for i, runner in enumerate(report.get("runners_up", []), start=2):
        parts = " ".join(f"{k}={v:.2f}" for k, v in runner["scores"].items())
        lines.append(f"  #{i} {runner['score']:.3f} {runner['caption']}  [{parts}]")
    return "\n".join(lines)
