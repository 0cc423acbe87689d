"""Render analyses and decodings as the page shows them: HTML bar charts, tables, short texts.

Pure functions of plain data, no web framework: the page puts their output into its
components, and tests read them directly.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from typing import Any

from fusion.decoding.registry import SCORERS

logger = logging.getLogger(__name__)

# the n-best table: rank, caption, scores, then each registered scorer's weighted share of the total
NBEST_HEADERS = ["#", "caption", "score", "total", *(spec.label for spec in SCORERS)]
AUDIO_TEXT = {
    "present": "Audio: **present** (SoundNet hears the track; the verifier can weigh audible nouns)",
    "silent": "Audio: **silent** (the file has an audio track, but it holds near-zero samples)",
    "absent": "Audio: **absent** (no audio stream; the audio scorer adds nothing)",
}
_COLOURS = {"places2": "#2e86c1", "imagenet": "#8e44ad", "audioset": "#16a085", "frames": "#d35400"}
SPACE_NAMES = {"places2": "places", "imagenet": "objects", "audioset": "AudioSet classes"}  # chart titles


def bar_chart(title: str, items: Sequence[dict[str, Any]] | None, colour: str, empty: str) -> str:
    """One horizontal bar chart as HTML: a bar per label, its width the score.

    Args:
        title: the chart's heading.
        items: ``[{"label", "score"}]`` best first (scores in [0, 1]), or None.
        colour: CSS colour of the bars.
        empty: the text shown when ``items`` is None.
    """
    out = [f'<div class="fusion-chart"><div class="fusion-chart-title">{html.escape(title)}</div>']
    if not items:
        out.append(f'<div class="fusion-chart-empty">{html.escape(empty)}</div>')
    top = max((float(i["score"]) for i in items or []), default=1.0) or 1.0
    for item in items or []:
        score = float(item["score"])
        width = max(1.0, 100.0 * score / top)
        label = html.escape(str(item["label"]).replace("_", " "))
        out.append(
            f'<div class="fusion-bar-row"><span class="fusion-bar-label">{label}</span>'
            f'<span class="fusion-bar-track"><span class="fusion-bar" style="width:{width:.1f}%;background:{colour}">'
            f'</span></span><span class="fusion-bar-value">{score:.3f}</span></div>'
        )
    out.append("</div>")
    return "".join(out)


def _space_charts(part: dict[str, Any] | None, who: str, empty: str, colour: str | None = None) -> str:
    """One chart per label space of ``part`` (space -> top labels), or one empty chart when None."""
    if not part:
        return f'<div class="fusion-charts">{bar_chart(f"{who}: nothing", None, "#999", empty)}</div>'
    charts = [bar_chart(f"{who}: {SPACE_NAMES.get(space, space)}", items,
                        colour or _COLOURS.get(space, "#7f8c8d"), empty) for space, items in part.items()]
    return '<div class="fusion-charts">' + "".join(charts) + "</div>"


def audio_charts(tags: dict[str, Any]) -> str:
    """What the audio encoders hear, a chart per label space (places, objects, AudioSet), side by side."""
    return _space_charts(tags.get("audio"), "The sound", "no audio stream: nothing to hear")


def frame_chart(tags: dict[str, Any]) -> str:
    """The frame CNN's objects."""
    return _space_charts(tags.get("frames"), "The frame CNN sees", "no video stream: nothing to see", _COLOURS["frames"])


def nbest_widths(columns: int) -> list[str]:
    """Column widths of the n-best table: rank, caption, score, total, then the scorers' shares alike
    (wide enough for "-26.81" and the headers on one line; the caption column wraps)."""
    share = 49.0 / max(1, columns - 4)
    return ["4%", "28%", "9%", "10%", *[f"{share:.1f}%"] * (columns - 4)]


def nbest_rows(hypotheses: Sequence[Any]) -> list[list[Any]]:
    """The n-best table: rank, caption, ranking score, total, each scorer's weighted share.

    A scorer the search did not use (weight 0) shows ``None`` (an empty cell), so a zero
    share is never confused with an absent scorer.
    """
    rows = []
    for rank, hyp in enumerate(hypotheses, start=1):
        shares = hyp.weighted_scores()
        # totals and shares with 2 decimals: the columns stay one line wide (the score ranks, 3 decimals)
        row: list[Any] = [rank, hyp.words, round(float(hyp.score), 3), round(float(hyp.total), 2)]
        row += [round(float(shares[spec.name]), 2) if spec.name in shares else None for spec in SCORERS]
        rows.append(row)
    return rows


def nbest_table(hypotheses: Sequence[Any]) -> tuple[list[str], list[list[Any]]]:
    """The n-best table's headers and rows (:func:`nbest_rows`).

    The registered scorers' columns are shown when any caption was scored by one (an empty cell:
    a scorer that is off); a scorer outside the registry (``"consensus"``: a zero-shot model's
    consensus mode) gets a column of its own after them.
    """
    rows = nbest_rows(hypotheses)
    known = {spec.name for spec in SCORERS}
    shares = [hyp.weighted_scores() for hyp in hypotheses]
    extra = list(dict.fromkeys(name for s in shares for name in s if name not in known))
    if not extra:
        return list(NBEST_HEADERS), rows
    registry = any(name in known for s in shares for name in s)
    keep = len(NBEST_HEADERS) if registry else 4
    headers = NBEST_HEADERS[:keep] + extra
    return headers, [row[:keep] + [round(float(s[n]), 3) if n in s else None for n in extra]
                     for row, s in zip(rows, shares)]


def _signed_bar(value: float, scale: float) -> str:
    """A bar from the middle of its track: right and green for evidence for, left and red against."""
    width = min(100.0, 100.0 * abs(value) / scale)
    bar = f'<span class="fusion-concept-bar" style="width:{width:.1f}%"></span>'
    return ('<span class="fusion-concept-track"><span class="fusion-concept-neg">' + (bar if value < 0 else "")
            + '</span><span class="fusion-concept-pos">' + (bar if value >= 0 else "") + "</span></span>")


def concept_bars(items: Sequence[dict[str, Any]] | None, evidence_available: bool, zeroshot: bool,
                 scale: float | None = None) -> str:
    """The evidence behind the winning caption's words, a signed bar each (HTML).

    Args:
        items: the best caption's report: a zero-shot model's linked words (``seen`` and ``heard``
            evidence, either None) or a trained run's audible nouns (the verifier's ``evidence``).
        evidence_available: False when the clip has no audio stream (nothing is heard).
        zeroshot: whether ``items`` are a zero-shot model's.
        scale: the evidence of a full bar; None: the largest shown.
    """
    items = list(items or [])
    rows: list[tuple[str, str, str, float | None]] = []  # (word, concept, source, value)
    for item in items:
        sources = [("seen", item.get("seen")), ("heard", item.get("heard"))] if zeroshot else [("heard", item.get("evidence"))]
        for source, value in sources:
            if source == "heard" and not evidence_available:
                continue
            rows.append((str(item["word"]), str(item["noun"]), source, value))
    title = ("The evidence for each linked word of the caption (log-odds; seen: the frames, heard: the sound)"
             if zeroshot else "The verifier's evidence for each audible noun of the caption (log-odds)")
    out = [f'<div class="fusion-chart fusion-concepts"><div class="fusion-chart-title">{html.escape(title)}</div>']
    if not items:
        empty = "no word of the caption is linked to a seen or heard concept" if zeroshot else "the caption names no audible noun"
        out.append(f'<div class="fusion-chart-empty">{empty}</div>')
    top = scale or max((abs(v) for *_, v in rows if v is not None), default=1.0) or 1.0
    for word, concept, source, value in rows:
        label = html.escape(word if word == concept else f"{word} ({concept})")
        shown = "n/a" if value is None else f"{value:+.2f}"
        bar = '<span class="fusion-bar-track"></span>' if value is None else _signed_bar(value, top)
        out.append(f'<div class="fusion-bar-row fusion-concept-row" data-word="{html.escape(word)}" data-source="{source}">'
                   f'<span class="fusion-bar-label">{label}: {source}</span>{bar}'
                   f'<span class="fusion-bar-value">{shown}</span></div>')
    if items and not evidence_available:
        out.append('<div class="fusion-chart-empty">no audio stream: nothing is heard, and no caption claims a sound</div>')
    out.append("</div>")
    return "".join(out)


def consensus_markdown(found: dict[str, Any] | None) -> str:
    """Why a zero-shot model's consensus caption won: the nearest corpus clips and the words whose evidence
    chose them (``fusion.zeroshot.explain.consensus_summary``); "" for every other model."""
    if not found:
        return ""
    drivers = ", ".join(f"**{html.escape(k)}** {v:+.2f}" for k, v in found["drivers"]) or "nothing in particular (no positive evidence)"
    lines = ["**Why this caption: the consensus of the nearest corpus clips**", "",
             f"A real caption of corpus clip `{html.escape(str(found['from_clip']))}`: of the captions of the "
             f"{found['neighbours_used']} corpus clips nearest in what their captions name, the one the others agree "
             "with most.", "", f"The evidence that chose those clips: {drivers}.", "", "The nearest clips:", ""]
    lines += [f"- `{html.escape(n['clip'])}` ({n['score']:+.2f}): *{html.escape(n['caption'])}*" for n in found["neighbours"]]
    return "\n".join(lines)


def _verdict_text(item: dict[str, Any]) -> str:
    value = item.get("evidence")
    shown = "n/a" if value is None else f"{value:+.2f}"
    extra = item.get("reason") or item.get("why")
    text = f"**{html.escape(item['word'])}** ({html.escape(item['noun'])}): evidence {shown}, {html.escape(item['verdict'])}"
    return text + (f" ({html.escape(str(extra))})" if extra else "")


def explanation_markdown(hypotheses: Sequence[Any], nouns: Sequence[Sequence[dict[str, Any]]],
                         evidence_available: bool, consensus: dict[str, Any] | None = None) -> str:
    """The verifier's report on the audible nouns the n-best captions name (a zero-shot model: the seen and
    heard evidence of their linked words): each noun's verdict once (n-best captions mostly share their
    nouns), then which nouns each caption names. A zero-shot model's consensus caption is explained
    first (:func:`consensus_markdown`)."""
    if not hypotheses:
        return "No caption was found."
    zeroshot = any("seen" in item for items in nouns for item in items) or consensus is not None
    lines = [consensus_markdown(consensus), ""] if consensus else []
    if zeroshot:
        lines += ["**Why these words: the seen and heard evidence of each linked word**", ""]
        if not evidence_available:
            lines += ["The clip has no audio stream: nothing is heard, and no caption claims a sound.", ""]
    else:
        lines += ["**Why these captions: the verifier on each audible noun**", ""]
        if not evidence_available:
            lines += ["The clip has no audio stream, so the verifier has no evidence for any noun.", ""]
    verdicts: dict[str, str] = {}  # verdict line -> first, in order of appearance
    named: list[list[str]] = []
    for items in nouns:
        named.append([])
        for item in items:
            verdicts.setdefault(_verdict_text(item), "")
            if item["word"] not in named[-1]:
                named[-1].append(item["word"])
    lines += [f"- {text}" for text in verdicts] or [f"- no caption names {'a linked word' if zeroshot else 'an audible noun'}"]
    lines.append("")
    for rank, (hyp, words) in enumerate(zip(hypotheses, named), start=1):
        said = ", ".join(f"**{html.escape(w)}**" for w in words) if words else ("no linked word" if zeroshot else "no audible noun")
        lines.append(f"{rank}. *{html.escape(hyp.words)}*: {said}")
    return "\n".join(lines)


def model_info_markdown(trained_on: str | None, note: str | None) -> str:
    """What the model was trained on, where the run records it (the run's panel; said once per page).

    Args:
        trained_on: ``fusion.runcard.describe_training`` of the run's card, or None.
        note: why the run has no training profile (clips cannot be judged familiar), or None.
    """
    lines = [f"**The model was trained on** {html.escape(trained_on)}." if trained_on
             else "**The model was trained on** an unknown dataset (the run has no run card)."]
    if note:
        lines.append(f"How familiar a clip is cannot be judged: {html.escape(note)}")
    return "\n\n".join(lines)


def familiarity_markdown(familiarity: dict[str, Any] | None) -> str:
    """How far this clip lies from the training data, shown beside its caption ("" when not judged).

    Args:
        familiarity: the clip's ``OODReport.to_dict()`` (``flagged``, ``unfamiliar``, ``distance``,
            ``threshold``), or None.
    """
    if familiarity is None:
        return ""
    threshold = familiarity.get("threshold", {})
    parts = [f"{m} distance {d:.2f} (threshold {threshold.get(m, float('nan')):.2f})"
             for m, d in familiarity.get("distance", {}).items() if d is not None]
    detail = f": {', '.join(parts)}" if parts else ""
    if familiarity.get("flagged"):
        far = ", ".join(familiarity.get("unfamiliar") or []) or "its features"
        return (f'<div id="fusion-unfamiliar">⚠ This clip is unlike the training data ({html.escape(far)}); '
                f"this caption is unreliable{html.escape(detail)}.</div>")
    return f"This clip is within the training data's range{html.escape(detail)}."


CSS = """
.fusion-charts { display: flex; gap: 18px; flex-wrap: wrap; }
.fusion-chart { flex: 1 1 260px; min-width: 240px; }
.fusion-chart-title { font-weight: 600; margin-bottom: 6px; }
.fusion-chart-empty { color: #888; font-style: italic; }
.fusion-bar-row { display: flex; align-items: center; gap: 8px; margin: 3px 0; font-size: 0.9em; }
.fusion-bar-label { flex: 0 0 42%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.fusion-bar-track { flex: 1 1 auto; background: #eee; height: 14px; border-radius: 3px; }
.fusion-bar { display: block; height: 14px; border-radius: 3px; }
.fusion-bar-value { flex: 0 0 3.5em; text-align: right; font-variant-numeric: tabular-nums; }
.fusion-concept-track { flex: 1 1 auto; display: flex; background: #eee; height: 14px; border-radius: 3px; }
.fusion-concept-neg, .fusion-concept-pos { flex: 1 1 50%; display: flex; height: 14px; }
.fusion-concept-neg { justify-content: flex-end; border-right: 1px solid #888; }
.fusion-concept-bar { display: block; height: 14px; }
.fusion-concept-pos .fusion-concept-bar { background: #27ae60; border-radius: 0 3px 3px 0; }
.fusion-concept-neg .fusion-concept-bar { background: #c0392b; border-radius: 3px 0 0 3px; }
#fusion-caption textarea, #fusion-caption input { font-size: 1.25em; font-weight: 600; }
#fusion-error, #fusion-unfamiliar { color: #b03a2e; font-weight: 600; }
#fusion-nbest th .cell-wrap, #fusion-nbest th .header, #fusion-nbest td:not(:nth-child(2)) .cell-wrap {
  white-space: nowrap; font-variant-numeric: tabular-nums; }
"""
