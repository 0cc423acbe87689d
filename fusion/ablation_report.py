"""Render and write an ablation report: a markdown table and a bar chart of paired deltas with 95% intervals.

The report (:func:`fusion.ablation.run_ablation`) holds two kinds of comparison per condition:
``delta`` (corpus-level metric minus ``full``'s, no interval) and ``paired`` (mean over videos
of the per-video difference, with the paired bootstrap 95% interval of that same mean). The
table shows each condition's corpus metrics and its paired deltas; the chart plots the paired
deltas with their intervals, so every bar and its error bar are one statistic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# Metrics compared with paired bootstrap intervals (per-video scores exist for these).
PAIRED_METRICS = ("METEOR", "CIDEr", "sound_accuracy")
HEADLINE_METRICS = ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "sound_accuracy", "visual_accuracy", "false_sound_rate")
STATISTIC = ("Δ columns: mean over videos of the per-video difference (condition minus `full`); [low, high]: "
             "paired bootstrap 95% percentile interval of that same mean")


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def render_markdown(report: dict[str, Any]) -> str:
    """The ablation table: corpus metrics per condition, paired per-video deltas vs full with 95% intervals."""
    shown = [m for m in HEADLINE_METRICS if any(m in r["metrics"] and r["metrics"][m] is not None
                                                 for r in report["conditions"])]
    lines = [
        f"# Ablation of `{report['run']}`",
        "",
        f"Split `{report['split']}` of `{report['manifest']}`: {report['n_videos']} videos, "
        f"{report['n_audio_absent']} without an audio stream. Metric columns are corpus-level. {STATISTIC} "
        f"({report['bootstrap_samples']} resamples).",
        "",
        "| condition | " + " | ".join(shown) + " | " + " | ".join(f"Δ{m} per video [95% CI]" for m in PAIRED_METRICS) + " |",
        "|---" * (1 + len(shown) + len(PAIRED_METRICS)) + "|",
    ]
    for row in report["conditions"]:
        cells = [_fmt(row["metrics"].get(m)) for m in shown]
        cells += [paired_cell(row, m) or "-" for m in PAIRED_METRICS]
        name = row["name"] + (" (=full)" if "identical_to_full" in row else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    same = [r for r in report["conditions"] if "identical_to_full" in r]
    if same or report.get("notes"):
        lines += ["", "Notes:"]
        lines += [f"- {note}" for note in report.get("notes", [])]
        lines += [f"- `{r['name']}` equals `full` by construction: {r['identical_to_full']}." for r in same]
    return "\n".join(lines) + "\n"


def paired_cell(row: dict[str, Any], metric: str) -> str:
    """``"+0.0123 [-0.0040, +0.0290]"``: a condition's paired per-video delta of ``metric`` with its
    95% interval, or "" where the row has none. Reads ``row["paired"][metric]`` (``mean_delta``,
    ``ci95``), and a report written before ``paired`` existed (``delta`` and ``ci95`` side by side)."""
    paired = (row.get("paired") or {}).get(metric)
    if isinstance(paired, dict) and paired.get("ci95") and paired.get("mean_delta") is not None:
        delta, (low, high) = paired["mean_delta"], paired["ci95"]
    else:  # the earlier layout: corpus delta beside its interval
        delta, interval = (row.get("delta") or {}).get(metric), (row.get("ci95") or {}).get(metric)
        if delta is None or not interval:
            return ""
        low, high = interval
    return f"{delta:+.4f} [{low:+.4f}, {high:+.4f}]"


def error_bars(estimates: list[float], intervals: list[list[float]]) -> np.ndarray:
    """Matplotlib ``yerr`` (2, n) for point estimates and their [low, high] intervals.

    Distances are clipped at 0 (an estimate outside its interval gets a one-sided bar, never a
    negative length, which matplotlib refuses) and NaN (no interval) becomes 0.
    """
    points = np.asarray(estimates, dtype=np.float64).reshape(-1)
    bounds = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
    bars = np.stack([points - bounds[:, 0], bounds[:, 1] - points])  # (2, n)
    return np.nan_to_num(np.clip(bars, 0.0, None), nan=0.0)


def render_plot(report: dict[str, Any], path: Path) -> None:
    """Bar chart: per paired metric, each condition's mean per-video delta vs full with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["conditions"] if r["name"] != "full"]
    metrics = [m for m in PAIRED_METRICS if any(m in r.get("paired", {}) for r in rows)]
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(4.2 * max(1, len(metrics)), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics or ["METEOR"]):
        chosen = [r for r in rows if metric in r.get("paired", {})]
        names = [r["name"] for r in chosen]
        deltas = [r["paired"][metric]["mean_delta"] for r in chosen]
        yerr = error_bars(deltas, [r["paired"][metric]["ci95"] for r in chosen]) if chosen else None
        colors = ["#c0392b" if d < 0 else "#2e86c1" for d in deltas]
        ax.bar(range(len(names)), deltas, yerr=yerr, color=colors, capsize=3)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
        ax.set_title(f"Δ {metric} per video vs full (95% CI)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def write_report(report: dict[str, Any], results: dict[str, dict[str, Any]], out: Path) -> None:
    """Write ablation.json, ablation.md, ablation.png and the predictions / per-video scores of each condition."""
    from fusion.io import atomic_write_json, atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "ablation.json", report)
    atomic_write_text(out / "ablation.md", render_markdown(report))
    render_plot(report, out / "ablation.png")
    atomic_write_json(out / "predictions.json", {k: v["predictions"] for k, v in results.items()})
    atomic_write_json(out / "per_video.json", {k: v["per_video"] for k, v in results.items()})
