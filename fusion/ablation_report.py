"""Render an ablation report: a markdown table and a bar chart of deltas with 95% intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fusion.ablation import HEADLINE_METRICS, PAIRED_METRICS


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def render_markdown(report: dict[str, Any]) -> str:
    """The ablation table: metrics per condition, deltas vs full with paired 95% CIs."""
    shown = [m for m in HEADLINE_METRICS if any(m in r["metrics"] and r["metrics"][m] is not None
                                                 for r in report["conditions"])]
    lines = [
        f"# Ablation of `{report['run']}`",
        "",
        f"Split `{report['split']}` of `{report['manifest']}`: {report['n_videos']} videos, "
        f"{report['n_audio_absent']} without an audio stream. Deltas are condition minus `full`; "
        f"[low, high] are paired bootstrap 95% intervals over videos ({report['bootstrap_samples']} resamples).",
        "",
        "| condition | " + " | ".join(shown) + " | " + " | ".join(f"Δ{m} [95% CI]" for m in PAIRED_METRICS) + " |",
        "|---" * (1 + len(shown) + len(PAIRED_METRICS)) + "|",
    ]
    for row in report["conditions"]:
        cells = [_fmt(row["metrics"].get(m)) for m in shown]
        for m in PAIRED_METRICS:
            if m in row["ci95"] and m in row["delta"]:
                low, high = row["ci95"][m]
                cells.append(f"{row['delta'][m]:+.4f} [{low:+.4f}, {high:+.4f}]")
            else:
                cells.append("-")
        name = row["name"] + (" (=full)" if "identical_to_full" in row else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    same = [r for r in report["conditions"] if "identical_to_full" in r]
    if same or report.get("notes"):
        lines += ["", "Notes:"]
        lines += [f"- {note}" for note in report.get("notes", [])]
        lines += [f"- `{r['name']}` equals `full` by construction: {r['identical_to_full']}." for r in same]
    return "\n".join(lines) + "\n"


def render_plot(report: dict[str, Any], path: Path) -> None:
    """Bar chart: per paired metric, each condition's delta vs full with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["conditions"] if r["name"] != "full"]
    metrics = [m for m in PAIRED_METRICS if any(m in r["ci95"] for r in rows)]
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(4.2 * max(1, len(metrics)), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics or ["METEOR"]):
        names = [r["name"] for r in rows if metric in r["ci95"]]
        deltas = [r["delta"][metric] for r in rows if metric in r["ci95"]]
        lows = [r["delta"][metric] - r["ci95"][metric][0] for r in rows if metric in r["ci95"]]
        highs = [r["ci95"][metric][1] - r["delta"][metric] for r in rows if metric in r["ci95"]]
        colors = ["#c0392b" if d < 0 else "#2e86c1" for d in deltas]
        ax.bar(range(len(names)), deltas, yerr=[lows, highs], color=colors, capsize=3)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
        ax.set_title(f"Δ {metric} vs full (95% CI)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
