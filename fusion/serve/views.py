"""Render analyses and decodings as the page shows them: HTML bar charts, tables, short texts.

Pure functions of plain data, no web framework: the page puts their output into its
components, and tests read them directly.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)

SCORERS = ("caption", "lm", "visual", "audio", "length")  # the n-best table's columns, in this order
# the scorers' columns hold their weighted shares of the total, in SCORERS order
NBEST_HEADERS = ["#", "caption", "score", "total", "S2VT (caption)", "LM", "seen (visual)", "audio", "length"]
AUDIO_TEXT = {
    "present": "Audio: **present** (SoundNet hears the track; the verifier can weigh audible nouns)",
    "silent": "Audio: **silent** (the file has an audio track, but it holds near-zero samples)",
    "absent": "Audio: **absent** (no audio stream; the audio scorer adds nothing)",
}
_COLOURS = {"places": "#2e86c1", "objects": "#8e44ad", "frames": "#d35400"}


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


def audio_charts(tags: dict[str, Any]) -> str:
    """SoundNet's places and objects, side by side."""
    audio = tags.get("audio")
    empty = "no audio stream: nothing to hear"
    return ('<div class="fusion-charts">'
            + bar_chart("SoundNet hears: places", audio and audio["places"], _COLOURS["places"], empty)
            + bar_chart("SoundNet hears: objects", audio and audio["objects"], _COLOURS["objects"], empty)
            + "</div>")


def frame_chart(tags: dict[str, Any]) -> str:
    """The frame CNN's objects."""
    frames = tags.get("frames")
    return ('<div class="fusion-charts">'
            + bar_chart("The frame CNN sees: objects", frames and frames["objects"], _COLOURS["frames"],
                        "no video stream: nothing to see")
            + "</div>")


def nbest_rows(hypotheses: Sequence[Any]) -> list[list[Any]]:
    """The n-best table: rank, caption, ranking score, total, each scorer's weighted share.

    A scorer the search did not use (weight 0) shows ``None`` (an empty cell), so a zero
    share is never confused with an absent scorer.
    """
    rows = []
    for rank, hyp in enumerate(hypotheses, start=1):
        shares = hyp.weighted_scores()
        row: list[Any] = [rank, hyp.words, round(float(hyp.score), 3), round(float(hyp.total), 3)]
        row += [round(float(shares[name]), 3) if name in shares else None for name in SCORERS]
        rows.append(row)
    return rows


def _verdict_text(item: dict[str, Any]) -> str:
    value = item.get("evidence")
    shown = "n/a" if value is None else f"{value:+.2f}"
    extra = item.get("reason") or item.get("why")
    text = f"**{html.escape(item['word'])}** ({html.escape(item['noun'])}): evidence {shown}, {html.escape(item['verdict'])}"
    return text + (f" ({html.escape(str(extra))})" if extra else "")


def explanation_markdown(hypotheses: Sequence[Any], nouns: Sequence[Sequence[dict[str, Any]]],
                         evidence_available: bool) -> str:
    """Per caption, the verifier's word-by-word report on its audible nouns."""
    if not hypotheses:
        return "No caption was found."
    lines = ["**Why these captions: the verifier on each audible noun**", ""]
    if not evidence_available:
        lines += ["The clip has no audio stream, so the verifier has no evidence for any noun.", ""]
    for rank, (hyp, items) in enumerate(zip(hypotheses, nouns), start=1):
        lines.append(f"{rank}. *{html.escape(hyp.words)}*")
        if not items:
            lines.append("    - names no audible noun")
        for item in items:
            lines.append("    - " + _verdict_text(item))
    return "\n".join(lines)


def model_info_markdown(trained_on: str | None, note: str | None, familiarity: dict[str, Any] | None) -> str:
    """What the model was trained on and how far this clip lies from it, where the run records them.

    Args:
        trained_on: ``fusion.runcard.describe_training`` of the run's card, or None.
        note: why the run has no training profile, or None.
        familiarity: the clip's ``OODReport.to_dict()`` plus ``"warning"`` (a line or None), or None.
    """
    lines = [f"**The model was trained on** {html.escape(trained_on)}." if trained_on
             else "**The model was trained on** an unknown dataset (the run has no run card)."]
    if familiarity is not None:
        if familiarity.get("warning"):
            lines.append(f"**⚠ {html.escape(str(familiarity['warning']))}**")
        parts = [f"{m} distance {d:.2f} (threshold {familiarity['threshold'].get(m, float('nan')):.2f})"
                 for m, d in familiarity.get("distance", {}).items() if d is not None]
        verdict = "unlike the training data" if familiarity.get("flagged") else "within the training data's range"
        lines.append(f"This clip: {verdict}" + (f"; {', '.join(parts)}." if parts else "."))
    elif note:
        lines.append(f"How familiar a clip is cannot be judged: {html.escape(note)}")
    return "\n\n".join(lines)


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
#fusion-caption textarea, #fusion-caption input { font-size: 1.25em; font-weight: 600; }
#fusion-error { color: #b03a2e; font-weight: 600; }
"""
