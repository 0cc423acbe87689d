"""Run folders side by side: discovery, metrics, training curves, decode configs, ablations.

Reads only what training, ``fusion evaluate`` and ``fusion ablate`` wrote (``config.yaml``,
``checkpoints/best.json``, ``metrics.jsonl``, ``eval/<split>/metrics.json``,
``ablation.json``); never loads a model. Pure data out, for any face to render.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MAX_DEPTH = 4  # how deep under --runs to look for run and ablation folders
METRIC_ROWS = ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "sound_accuracy", "visual_accuracy", "false_sound_rate",
               "n_videos", "n_audio_absent", "beam_size")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        logger.info("skipping %s: %s", path, err)
        return None


def is_run(path: Path) -> bool:
    """A run folder: ``checkpoints/`` with a ``best.json`` or ``last.json`` pointer, or a zero-shot model
    folder (``zeroshot.json``, ``fusion zeroshot build``)."""
    ckpt = path / "checkpoints"
    return (ckpt / "best.json").is_file() or (ckpt / "last.json").is_file() or (path / "zeroshot.json").is_file()


def _walk(root: Path, depth: int = 0) -> list[Path]:
    if depth > MAX_DEPTH or not root.is_dir():
        return []
    found = [root]
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "checkpoints", "tb")))
    except OSError:
        return found
    for child in children:
        found.extend(_walk(child, depth + 1))
    return found


def _name(path: Path, root: Path) -> str:
    try:
        rel = path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name
    return rel if rel != "." else path.resolve().name


def discover_runs(root: str | Path) -> dict[str, Path]:
    """Run folders under ``root`` (itself included), name (relative path) -> folder."""
    root = Path(root)
    return {_name(p, root): p.resolve() for p in _walk(root) if is_run(p)}


def discover_ablations(root: str | Path) -> dict[str, Path]:
    """Folders under ``root`` holding an ``ablation.json`` (``fusion ablate --out``)."""
    root = Path(root)
    return {_name(p, root): p.resolve() for p in _walk(root) if (p / "ablation.json").is_file()}


def eval_metrics(run: Path) -> dict[str, dict[str, Any]]:
    """``RUN/eval/<split>/metrics.json`` per split (what ``fusion evaluate`` wrote)."""
    out = {}
    for path in sorted((run / "eval").glob("*/metrics.json")):
        data = _read_json(path)
        if isinstance(data, dict):
            out[path.parent.name] = data
    return out


def metrics_table(runs: dict[str, Path], split: str = "test") -> tuple[list[str], list[list[Any]]]:
    """Metrics side by side: a row per metric, a column per run (its ``split`` evaluation).

    Also the best checkpoint's validation metric, so runs that were never evaluated still
    have a line to compare.
    """
    headers = ["metric", *runs]
    columns = []
    for run in runs.values():
        column: dict[str, Any] = dict(eval_metrics(run).get(split, {}))
        best = _read_json(run / "checkpoints" / "best.json") if (run / "checkpoints" / "best.json").is_file() else None
        if isinstance(best, dict) and "metric" in best:
            column[f"best checkpoint ({best['metric']})"] = best.get("value")
            column["best checkpoint"] = best.get("name")
        columns.append(column)
    names = [m for m in METRIC_ROWS if any(m in c for c in columns)]
    names += sorted({k for c in columns for k in c if k.startswith("best checkpoint")})
    rows = [[name, *[_cell(c.get(name)) for c in columns]] for name in names]
    return headers, rows


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if value is None or isinstance(value, (int, str)):
        return value
    return json.dumps(value)


def training_curves(runs: dict[str, Path]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """From each ``metrics.jsonl``: training loss rows and validation rows.

    Returns:
        (``[{"run", "step", "loss"}]``, ``[{"run", "step", "metric", "value"}]``).
    """
    from fusion.training.metrics_log import MetricsLog

    train, val = [], []
    for name, run in runs.items():
        for rec in MetricsLog(run / "metrics.jsonl").read():
            step = rec.get("step")
            if not isinstance(step, (int, float)):
                continue
            if rec.get("type") == "train" and isinstance(rec.get("loss"), (int, float)):
                train.append({"run": name, "step": int(step), "loss": float(rec["loss"])})
            elif rec.get("type") == "val":
                for key, value in rec.items():
                    if key not in ("type", "step", "epoch") and isinstance(value, (int, float)) and not isinstance(value, bool):
                        val.append({"run": name, "step": int(step), "metric": key, "value": float(value)})
    return train, val


def decode_configs(runs: dict[str, Path]) -> dict[str, Any]:
    """Each run's ``decode`` section of ``config.yaml`` (what its captions are decoded with)."""
    import yaml

    out: dict[str, Any] = {}
    for name, run in runs.items():
        path = run / "config.yaml"
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            out[name] = {"error": f"{path.name}: {str(err).splitlines()[0]}"}
            continue
        out[name] = config.get("decode", {}) if isinstance(config, dict) else {}
    return out


def ablation_report(folder: Path) -> dict[str, Any] | None:
    """The ``ablation.json`` of ``fusion ablate``, or None when unreadable."""
    data = _read_json(folder / "ablation.json")
    return data if isinstance(data, dict) and isinstance(data.get("conditions"), list) else None


def ablation_table(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """A row per condition: headline metrics, then each paired per-video delta with its 95% interval
    (what ``fusion ablate`` writes under ``paired``; see :func:`fusion.ablation_report.paired_cell`)."""
    from fusion.ablation_report import HEADLINE_METRICS, PAIRED_METRICS, paired_cell

    conditions = report["conditions"]
    shown = [m for m in HEADLINE_METRICS if any(c.get("metrics", {}).get(m) is not None for c in conditions)]
    paired = [m for m in PAIRED_METRICS if any(paired_cell(c, m) for c in conditions)]  # no empty columns
    headers = ["condition", *shown, *(f"Δ{m} per video [95% CI]" for m in paired)]
    rows = [[cond["name"], *[_cell(cond.get("metrics", {}).get(m)) for m in shown],
             *[paired_cell(cond, m) for m in paired]] for cond in conditions]
    return headers, rows


def ablation_plot(folder: Path, report: dict[str, Any], workdir: Path) -> Path | None:
    """The ablation's plot: its own ``ablation.png`` if present, else drawn into ``workdir``."""
    own = folder / "ablation.png"
    if own.is_file():
        return own
    from fusion.ablation_report import render_plot

    out = workdir / "ablation" / f"{abs(hash(str(folder)))}.png"
    try:
        render_plot(report, out)
    except (KeyError, ValueError, TypeError) as err:
        logger.info("cannot plot %s: %s", folder, err)
        return None
    return out


EXAMPLES_PER_SOURCE = 6
REAL_CLIP_GLOBS = ("msrvtt/clips/*.mp4", "msvd/clips/*.avi", "msvd/clips/*.mp4")


def example_clips(run: Path, per_source: int = EXAMPLES_PER_SOURCE) -> dict[str, Path]:
    """Clips to try a run on: its manifest's test split, then real clips under ``FUSION_DATA_DIR``.

    Returns:
        label (``"test: <id>"`` / ``"real: <dataset>/<file>"``) -> existing file.
    """
    import yaml

    from fusion.paths import data_dir

    out: dict[str, Path] = {}
    try:
        config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
        manifest = (config.get("data") or {}).get("manifest")
    except (OSError, yaml.YAMLError, AttributeError):
        manifest = None
    if manifest:
        from fusion.errors import FusionError
        from fusion.manifest import load_manifest, split_entries

        try:
            entries = split_entries(load_manifest(manifest), "test")
        except (FusionError, OSError) as err:
            logger.info("no test examples from %s: %s", manifest, err)
            entries = []
        for entry in entries:
            path = Path(entry.video)
            if path.is_file():
                out[f"test: {entry.id}"] = path
            if len(out) >= per_source:
                break
    real = data_dir()
    for pattern in REAL_CLIP_GLOBS:
        for path in sorted(real.glob(pattern))[:per_source]:
            out[f"real: {path.parent.parent.name}/{path.name}"] = path
    return out
