"""``fusion caption --explain`` for the zero-shot model: which seen and heard concepts drove which words."""

from __future__ import annotations

from typing import Any

import numpy as np

from fusion.concepts import clip_posteriors

TOP_CLASSES = 5


def _top(probs: np.ndarray | None, names: tuple[str, ...], k: int = TOP_CLASSES) -> list[list[Any]] | None:
    if probs is None:
        return None
    order = np.argsort(-np.asarray(probs), kind="stable")[:k]
    return [[names[i].split(" ", 1)[-1] if names[i][:1] == "n" and names[i][1:9].isdigit() else names[i],
             round(float(probs[i]), 4)] for i in order]


NEIGHBOURS_SHOWN = 5


def consensus_report(model: Any, record: Any, config: Any) -> dict[str, Any]:
    """The consensus mode's reasons: the linked words whose evidence chose the neighbour clips, and the
    nearest corpus clips with the first of their captions."""
    return consensus_summary(model.index, model.consensus(record, config.replace(nbest=1)))


def consensus_summary(index: Any, found: Any) -> dict[str, Any]:
    """:func:`consensus_report` of an already found :class:`fusion.zeroshot.neighbours.Consensus`.

    Returns:
        ``{"neighbours_used", "drivers": [[linked word, contribution]], "neighbours": [{"clip", "score",
        "caption"}] (the nearest few, each with the first of its captions), "from_clip": the corpus clip
        of the best candidate}``.
    """
    neighbours = [{"clip": clip, "score": round(score, 3), "caption": index.captions[index.row_of[clip]][0]}
                  for clip, score in found.neighbours[:NEIGHBOURS_SHOWN]]
    return {"neighbours_used": len(found.neighbours), "drivers": [[k, round(v, 3)] for k, v in found.drivers],
            "neighbours": neighbours, "from_clip": found.candidates[0].clip if found.candidates else None}


def explain_caption(model: Any, record: Any, hypothesis: Any, config: Any = None) -> dict[str, Any]:
    """Per word of the caption, its concept's visual and audio evidence and the classes behind it.

    Returns:
        ``{"caption", "scores": weighted per scorer, "words": [{"word", "concept", "seen", "seen_from",
        "heard", "heard_from", "implied_by"}], "seen": top frame classes, "heard": top sound classes per
        space (None: no audio stream)}``, and with ``config`` in the consensus mode ``"consensus"``
        (:func:`consensus_report`).
    """
    seen_ev = model.visual.evidence(record) or {}
    heard_ev = model.audio.evidence(record)
    words = []
    for word in hypothesis.words.split():
        key = model.links.key_of(word)
        if key is None:
            continue
        entry = model.links.entries[key]
        item: dict[str, Any] = {"word": word, "concept": key, "seen": seen_ev.get(key), "heard": None}
        if key in seen_ev:
            item["seen_from"] = model.visual.top_classes(record, key, 2)
        if heard_ev is not None and key in heard_ev:
            item["heard"] = heard_ev[key]
            item["heard_from"] = model.audio.top_classes(record, key, 2)
        if entry.implied_by:
            item["implied_by"] = [n for n, _ in entry.implied_by[:4]]
        words.append(item)
    posteriors = clip_posteriors(record)
    spaces = model.links.spaces
    heard = None
    if record.audio is not None:
        heard = {f"{m}/{s}": _top(p, spaces[s]) for (m, s), p in posteriors.items()
                 if m == "audio" and p is not None and s in spaces}
    report = {"caption": hypothesis.words, "scores": hypothesis.weighted_scores(), "words": words,
              "seen": _top(posteriors.get(("frames", "imagenet")), spaces["imagenet"]), "heard": heard}
    if config is not None and config.mode == "consensus":
        report["consensus"] = consensus_report(model, record, config)
    return report


def _value(v: float | None) -> str:
    return "-" if v is None else f"{v:+.2f}"


def format_explanation(report: dict[str, Any]) -> str:
    """Readable lines of :func:`explain_caption`'s report."""
    lines = ["scores: " + ", ".join(f"{k} {v:+.2f}" for k, v in report["scores"].items())]
    found = report.get("consensus")
    if found:
        drivers = ", ".join(f"{k} {v:+.2f}" for k, v in found["drivers"]) or "nothing in particular (no positive evidence)"
        lines.append(f"a real caption of corpus clip {found['from_clip']}, the one most of the captions of the "
                     f"{found['neighbours_used']} corpus clips nearest in what they name agree with")
        lines.append(f"  the evidence that chose those clips: {drivers}")
        for item in found["neighbours"]:
            lines.append(f"  near: {item['clip']} ({item['score']:+.2f}) {item['caption']!r}")
    for item in report["words"]:
        parts = [f"seen {_value(item['seen'])}"]
        if item.get("seen_from"):
            parts[-1] += " (" + ", ".join(f"{c} {p:.2f}" for _, c, p in item["seen_from"]) + ")"
        parts.append(f"heard {_value(item['heard'])}")
        if item.get("heard_from"):
            parts[-1] += " (" + ", ".join(f"{src.split('/')[1]}: {c} {p:.2f}" for src, c, p in item["heard_from"]) + ")"
        if item.get("implied_by"):
            parts.append("a verb implied by " + ", ".join(item["implied_by"]))
        lines.append(f"  {item['word']!r} [{item['concept']}]: " + "; ".join(parts))
    if not report["words"]:
        lines.append("  no word of this caption is linked to a seen or heard concept: "
                     + ("the neighbours' captions agree on it" if found else "it is the language model's guess"))
    if report["seen"]:
        lines.append("the frames show: " + ", ".join(f"{c} {p:.2f}" for c, p in report["seen"]))
    if report["heard"] is None:
        lines.append("the clip has no audio stream: nothing is heard, and no sound is claimed")
    else:
        for src, top in report["heard"].items():
            lines.append(f"the sound says ({src}): " + ", ".join(f"{c} {p:.2f}" for c, p in top))
    return "\n".join(lines)
