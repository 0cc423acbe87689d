"""Tune the late-fusion weight alpha (and the verifier's beta) on validation data, by a command, not by hand.

``tune_lm_weight(run, lm, alphas)`` decodes one manifest split (default ``val``) once per
alpha with the run's caption model plus the LM as scorer ``"lm"`` (log-linear or linear
interpolation, :mod:`fusion.decoding.lm_scorer`), scores every decoding with coco-caption,
and picks the alpha with the best metric (default METEOR; ties go to the smaller alpha, so
an LM that does not help gets alpha 0). The features, the LM and the verifier are loaded once.

With ``betas``, the LM weight alpha and the audio-noun verifier's weight beta are chosen
together: the split is decoded once per (alpha, beta) of the grid (the whole decoder:
captioner + ``"lm"`` + ``"audio"``), ties go to the smaller alpha, then the smaller beta, and
the choice includes ``audio_weight``. :func:`format_grid` prints the grid as a table.
With ``guard="false_sound_rate"`` (the audio-visual benchmark's judgement) only points that name
no more false sounds on the split than the run's own decoder before tuning, without an LM (its
decode section as it was: beta and penalties) may be chosen: the language model may not buy
METEOR with invented sounds.

The choice is written into the run's ``config.yaml`` decode section (``lm``, ``lm_weight``,
``lm_mode``, and ``audio_weight`` when ``betas`` are tuned; ``lm: null`` when the LM did not help), which ``fusion evaluate`` / ``caption``
/ ``ablate`` then use (:func:`fusion.decoding.config.resolve_decode_config`); ``apply=False``
only reports it. Every alpha's scores are written to ``RUN/tune/lm_<mode>.json`` (or ``out``)
as a record; that file never changes captions by itself.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from fusion.errors import ConfigError
from fusion.io import atomic_write_json
from fusion.progress import progress_bar

logger = logging.getLogger(__name__)

DEFAULT_ALPHAS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7)
GUARDS: tuple[str, ...] = ("false_sound_rate", "false_sound_rate_no_source")  # lower is better


@dataclass
class TuneResult:
    """Outcome of :func:`tune_lm_weight`.

    Attributes:
        best_alpha: the chosen weight (0 = the LM does not help on this split).
        best_value: its metric value.
        baseline_value: the metric without the LM (alpha 0).
        metric: the selection metric (e.g. "METEOR").
        mode: "loglinear" or "linear".
        split: the split decoded.
        n_videos: videos scored per alpha.
        scores: per alpha (as a string key), every coco metric.
        lm: the LM path or hub id.
        run: the checkpoint used.
        command: the ``fusion evaluate`` line that uses the choice.
        seconds: wall time.
        out: the JSON file written.
        config: the run's ``config.yaml`` the choice was written into ("" when not applied).
        best_beta: the chosen verifier weight (None when beta was not tuned: the run's kept).
        grid: every decoded point: ``{"alpha", "beta", "metrics"}`` (coco metrics, plus the
            benchmark's judgements, e.g. ``false_sound_rate``, where the manifest has them).
        guard: the metric the choice may not raise above the run's decoder without the LM, or None.
        guard_reference: that decoder's value of ``guard`` on the split (None without a guard).
        choice: the decode fields chosen (``lm``, ``lm_weight``, ``lm_mode``, and ``audio_weight``
            and the audio penalties where the grid used them): what ``config`` received.
    """

    best_alpha: float
    best_value: float
    baseline_value: float
    metric: str
    mode: str
    split: str
    n_videos: int
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    lm: str = ""
    run: str = ""
    command: str = ""
    seconds: float = 0.0
    out: str = ""
    config: str = ""
    best_beta: float | None = None
    grid: list[dict[str, Any]] = field(default_factory=list)
    guard: str | None = None
    guard_reference: float | None = None
    choice: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _check_weights(values: Sequence[float] | None, name: str, option: str, config: Any) -> list[float] | None:
    """Sorted distinct weights to try, each within the bounds ``config`` accepts for the setting ``name``."""
    from fusion.decoding.registry import setting

    if values is None:
        return None
    if not values:
        raise ConfigError(f"{option} is empty: give the weights to try, e.g. {option} 0 0.5 1")
    bounded = setting(name)
    if not all(bounded.within(float(v), config) for v in values):
        raise ConfigError(f"{option} {list(values)}: each must be {bounded.need(config)} "
                          f"(decode.{name} with --mode {config.lm_mode})")
    return sorted({float(v) for v in values})


def grid_point(options: Any, lm_path: str | Path, mode: str, alpha: float, beta: float) -> Any:
    """The decode configuration of one grid point: the LM at weight ``alpha`` (0 = "LM off"), the verifier at ``beta``."""
    from fusion.decoding.registry import without

    base = dataclasses.replace(without(options, ["lm"]), lm_mode=mode, audio_weight=beta)
    return dataclasses.replace(base, lm=str(lm_path), lm_weight=alpha) if alpha > 0 else base


def _guarded(rows: list[dict[str, Any]], guard: str | None, reference: float | None) -> list[dict[str, Any]]:
    """The grid points that may be chosen: all, or those whose ``guard`` rate is at most ``reference``
    (the alpha-0 points too, so that the choice falls back to no LM rather than to nothing)."""
    if guard is None or reference is None:
        return rows
    kept = [r for r in rows if r["metrics"].get(guard) is not None and r["metrics"][guard] <= reference + 1e-12]
    return kept or [r for r in rows if r["alpha"] == 0]


def format_grid(result: TuneResult, metrics: Sequence[str] = ("METEOR", "false_sound_rate")) -> str:
    """The decoded grid as text tables: one per metric, alpha down, beta across; the choice marked ``*``."""
    betas = sorted({row["beta"] for row in result.grid})
    alphas = sorted({row["alpha"] for row in result.grid})
    cells = {(row["alpha"], row["beta"]): row["metrics"] for row in result.grid}
    chosen = (result.best_alpha, result.best_beta if result.best_beta is not None else betas[0] if betas else None)
    lines: list[str] = []
    for name in metrics:
        if not any(isinstance(m.get(name), (int, float)) for m in cells.values()):
            continue
        lines.append(f"{name} on {result.split} ({result.n_videos} videos), alpha down, beta across:")
        lines.append("alpha \\ beta " + "".join(f"{b:>10g}" for b in betas))
        for a in alphas:
            row = f"{a:<12g}"
            for b in betas:
                value = cells.get((a, b), {}).get(name)
                text = f"{value:.4f}" if isinstance(value, (int, float)) else "-"
                row += f"{text + ('*' if (a, b) == chosen else ' '):>10}"
            lines.append(row)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def tune_lm_weight(
    run_path: str | Path,
    lm_path: str | Path,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    *,
    mode: str = "loglinear",
    manifest: str | Path | None = None,
    split: str = "val",
    metric: str = "METEOR",
    features: str | Path | None = None,
    out: str | Path | None = None,
    device: str | torch.device = "cpu",
    beam_size: int | None = None,
    batch_size: int | None = None,
    apply: bool = True,
    progress: bool = True,
    betas: Sequence[float] | None = None,
    audio_penalty: float | None = None,
    audio_absent_penalty: float | None = None,
    guard: str | None = None,
) -> TuneResult:
    """Pick alpha for late fusion (with ``betas``: alpha and beta together) on ``split``; write it into the run's config.

    Args:
        run_path: the captioner run / checkpoint.
        lm_path: ``fusion lm train`` folder, Hugging Face folder or hub id.
        alphas: weights to try (0 is always added as the baseline).
        mode: "loglinear" (shallow fusion) or "linear" (interpolation; alphas in [0, 1]).
        manifest: manifest to tune on; None = the run's.
        split: the split decoded (default "val": never tune on test).
        metric: coco metric to maximise (METEOR, CIDEr, Bleu_4, ...).
        features: feature store folder (default: beside the manifest / the run's).
        out: JSON file for the result (default ``RUN/tune/lm_<mode>.json``).
        device: torch device.
        beam_size / batch_size: decoding overrides (default: the run's decode config).
        apply: write the choice into the run's ``config.yaml`` decode section.
        progress: progress bars (extraction, alphas).
        betas: verifier weights to try with every alpha (the joint grid); None = keep the run's
            ``audio_weight``.
        audio_penalty: the audio scorer's penalty for contradicted nouns (None = the run's;
            given, it is written into the run's config with the choice).
        audio_absent_penalty: its cost of audible nouns in clips without audio (likewise).
        guard: a benchmark rate (``GUARDS``) the chosen point may not raise above the run's own
            decoder without the LM (its decode section before tuning: beta, penalties); None =
            the metric alone decides.

    Raises:
        ConfigError: bad alphas, mode or metric. DataError: empty split or no references.
        CheckpointError / WeightsError: run or LM unloadable.
    """
    from fusion.checkpoint import write_run_decode
    from fusion.decoding.config import DecodeConfig, resolve_decode_config
    from fusion.decoding.decoder import CaptionDecoder
    from fusion.decoding.lm_scorer import LM_MODES
    from fusion.decoding.registry import without
    from fusion.evaluation import METRICS, benchmark_metrics, coco_metrics, is_benchmark
    from fusion.pipeline import prepare_split

    if mode not in LM_MODES:
        raise ConfigError(f"--mode {mode!r} is not one of {list(LM_MODES)}")
    if metric not in METRICS:
        raise ConfigError(f"--metric {metric!r} is not one of {list(METRICS)}")
    grid = _check_weights([*alphas, 0.0] if alphas else alphas, "lm_weight", "--alphas", DecodeConfig(lm_mode=mode))
    beta_grid = _check_weights(betas, "audio_weight", "--betas", DecodeConfig(lm_mode=mode))
    if guard is not None and guard not in GUARDS:
        raise ConfigError(f"--guard {guard!r} is not one of {list(GUARDS)}")
    start = time.time()
    prepared = prepare_split(run_path, split, manifest=manifest, features=features, device=device,
                             overrides={"beam_size": beam_size, "batch_size": batch_size,
                                        "audio_penalty": audio_penalty, "audio_absent_penalty": audio_absent_penalty},
                             captioned_only=True, progress=progress)
    run, entries = prepared.run, prepared.entries
    if guard is not None and not is_benchmark(entries):
        raise ConfigError(f"--guard {guard} needs the audio-visual benchmark's judgements, which {prepared.manifest} "
                          "lacks (its entries' meta has no objects / audio_kind): drop --guard")
    refs = {e.id: list(e.captions) for e in entries}
    run_beta = prepared.options.audio_weight
    points = [(a, b) for a in grid for b in (beta_grid if beta_grid is not None else [run_beta])]
    shared: dict[Any, Any] = {}  # the LM and the verifier, loaded once for the whole grid
    CaptionDecoder(run, grid_point(prepared.options, lm_path, mode, grid[-1], run_beta), device=device, shared=shared)

    def score(options: Any) -> dict[str, Any]:
        hyps = CaptionDecoder(run, options, device=device, shared=shared).decode(prepared.records)
        predictions = {e.id: h[0].words for e, h in zip(entries, hyps)}
        values = dict(coco_metrics(predictions, refs).metrics)
        values.update(benchmark_metrics(predictions, entries))
        return values

    rows: list[dict[str, Any]] = []
    for alpha, beta in progress_bar(points, desc=f"tune lm ({mode})", disable=not progress):
        values = score(grid_point(prepared.options, lm_path, mode, alpha, beta))
        rows.append({"alpha": alpha, "beta": beta, "metrics": values})
        logger.info("alpha %.3f, beta %.3f: %s %.4f", alpha, beta, metric, values[metric])
    reference = None
    if guard is not None:  # the run's own decoder before tuning, without the LM
        own = without(resolve_decode_config(run, {"beam_size": beam_size, "batch_size": batch_size}), ["lm"])
        same = [r for r in rows if r["alpha"] == 0 and r["beta"] == own.audio_weight and
                (own.audio_penalty, own.audio_absent_penalty) == (prepared.options.audio_penalty,
                                                                  prepared.options.audio_absent_penalty)]
        reference = (same[0]["metrics"] if same else score(own)).get(guard)
        logger.info("guard: %s at most %s (the run's decoder without the LM)", guard, reference)
    best_row = max(_guarded(rows, guard, reference), key=lambda r: (r["metrics"][metric], -r["alpha"], -r["beta"]))
    best, best_beta = best_row["alpha"], best_row["beta"]
    scores = {str(r["alpha"]): {k: v for k, v in r["metrics"].items() if k in METRICS}
              for r in rows if r["beta"] == best_beta}
    base_beta = run_beta if any(r["alpha"] == 0 and r["beta"] == run_beta for r in rows) else best_beta
    baseline = next(r for r in rows if r["alpha"] == 0 and r["beta"] == base_beta)["metrics"][metric]
    out_path = Path(out) if out is not None else run.run_dir / "tune" / f"lm_{mode}.json"
    choice: dict[str, Any] = {"lm": str(lm_path) if best > 0 else None, "lm_weight": best, "lm_mode": mode}
    if beta_grid is not None:
        choice["audio_weight"] = best_beta
    for key, value in (("audio_penalty", audio_penalty), ("audio_absent_penalty", audio_absent_penalty)):
        if value is not None:
            choice[key] = float(value)  # the grid was decoded with it
    config_path = write_run_decode(run, choice) if apply else None
    if config_path is not None:
        command = f"fusion evaluate {run_path}   # decode.{', '.join(choice)} are in {config_path}"
    elif best > 0:
        command = f"fusion evaluate {run_path} --lm {lm_path} --lm-weight {best:g} --lm-mode {mode}"
        command += f" --audio-weight {best_beta:g}" if beta_grid is not None else ""
    elif beta_grid is not None:
        command = f"fusion evaluate {run_path} --audio-weight {best_beta:g}   # the LM did not help on {split}"
    else:
        command = f"fusion evaluate {run_path}   # the LM did not help on {split}"
    result = TuneResult(best_alpha=best, best_value=best_row["metrics"][metric], baseline_value=baseline,
                        metric=metric, mode=mode, split=split, n_videos=len(entries), scores=scores, lm=str(lm_path),
                        run=str(run.checkpoint_dir), command=command, seconds=time.time() - start,
                        out=str(out_path), config=str(config_path or ""),
                        best_beta=best_beta if beta_grid is not None else None, grid=rows, guard=guard,
                        guard_reference=reference, choice=dict(choice))
    atomic_write_json(out_path, result.to_dict())
    logger.info("best alpha %g, beta %g (%s %.4f, without LM %.4f); wrote %s", best, best_beta, metric,
                result.best_value, result.baseline_value, out_path)
    return result
