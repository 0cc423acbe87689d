"""Tune the late-fusion weight alpha on validation data, by a command, not by hand.

``tune_lm_weight(run, lm, alphas)`` decodes one manifest split (default ``val``) once per
alpha with the run's caption model plus the LM as scorer ``"lm"`` (log-linear or linear
interpolation, :mod:`fusion.decoding.lm_scorer`), scores every decoding with coco-caption,
and picks the alpha with the best metric (default METEOR; ties go to the smaller alpha, so
an LM that does not help gets alpha 0). The features and the LM are loaded once. The choice
and every alpha's scores are written to ``RUN/tune/lm_<mode>.json`` (or ``out``), with the
``fusion evaluate`` command line that uses it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm import tqdm

from fusion.errors import ConfigError, DataError
from fusion.io import atomic_write_json

logger = logging.getLogger(__name__)

DEFAULT_ALPHAS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7)


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
        command: the ``fusion evaluate`` line that applies the choice.
        seconds: wall time.
        out: the JSON file written.
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _check_alphas(alphas: Sequence[float], mode: str) -> list[float]:
    if not alphas:
        raise ConfigError("--alphas is empty: give the weights to try, e.g. --alphas 0 0.1 0.2 0.3")
    out = sorted({float(a) for a in alphas} | {0.0})  # alpha 0 is always the baseline
    if out[0] < 0 or (mode == "linear" and out[-1] > 1):
        bound = "in [0, 1]" if mode == "linear" else ">= 0"
        raise ConfigError(f"--alphas {alphas}: each alpha must be {bound} for --mode {mode}")
    return out


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
    progress: bool = True,
) -> TuneResult:
    """Pick alpha for late fusion by decoding ``split`` once per alpha.

    Args:
        run_path: the captioner run / checkpoint.
        lm_path: ``fusion lm train`` folder, Hugging Face folder or hub id.
        alphas: weights to try (0 is always added).
        mode: "loglinear" (shallow fusion) or "linear" (interpolated probabilities).
        manifest: manifest to tune on (default: the run's).
        split: the split decoded (default "val": never tune on test).
        metric: coco metric to maximise (METEOR, CIDEr, Bleu_4, ...).
        features: feature store folder (default: beside the manifest / the run's).
        out: JSON file for the result (default ``RUN/tune/lm_<mode>.json``).
        device: torch device.
        beam_size / batch_size: decoding overrides (default: the run's decode config).
        progress: tqdm over alphas.

    Raises:
        ConfigError: bad alphas, mode or metric. DataError: empty split or no references.
        CheckpointError / WeightsError: run or LM unloadable.
    """
    from fusion.checkpoint import load_run
    from fusion.data import open_features
    from fusion.decoding.decoder import CaptionDecoder, DecodeOptions
    from fusion.decoding.lm_scorer import LM_FUSION_MODES, lm_fusion, load_language_model
    from fusion.decoding.scorers import CaptionScorer
    from fusion.evaluation import METRICS, coco_metrics
    from fusion.manifest import load_manifest, split_entries

    if mode not in LM_FUSION_MODES:
        raise ConfigError(f"--mode {mode!r} is not one of {list(LM_FUSION_MODES)}")
    if metric not in METRICS:
        raise ConfigError(f"--metric {metric!r} is not one of {list(METRICS)}")
    grid = _check_alphas(alphas, mode)
    start = time.time()
    run = load_run(run_path, device=device)
    manifest_path = manifest if manifest is not None else run.config.data.manifest
    if manifest_path is None:
        raise ConfigError("the run names no manifest: give --manifest M")
    entries = [e for e in split_entries(load_manifest(manifest_path), split) if e.captions]
    if not entries:
        raise DataError(f"{manifest_path}: split {split!r} has no videos with reference captions; pick one with --split")
    if features is None and manifest is None:
        features = run.config.data.features
    store = open_features(entries, manifest_path, run.extract_config, features, progress=progress)
    records = [store[e.id] for e in entries]
    refs = {e.id: list(e.captions) for e in entries}
    lm = load_language_model(lm_path, device=device)
    decoder = CaptionDecoder(run, DecodeOptions.for_run(run, beam_size=beam_size, batch_size=batch_size), device=device)
    extra_scorers = {k: v for k, v in decoder.scorers.items() if k != "caption"}
    extra_weights = {k: v for k, v in decoder.weights.items() if k != "caption"}
    caption = CaptionScorer(run.model)

    scores: dict[str, dict[str, float]] = {}
    for alpha in tqdm(grid, desc=f"tune lm ({mode})", disable=not progress):
        scorers, weights = lm_fusion(caption, lm, alpha, mode)  # type: ignore[arg-type]
        decoder.scorers, decoder.weights = {**scorers, **extra_scorers}, {**weights, **extra_weights}
        hyps = decoder.decode(records)
        predictions = {e.id: h[0].words for e, h in zip(entries, hyps)}
        scores[str(alpha)] = dict(coco_metrics(predictions, refs).metrics)
        logger.info("alpha %.3f: %s %.4f", alpha, metric, scores[str(alpha)][metric])
    best = max(grid, key=lambda a: (scores[str(a)][metric], -a))  # ties -> smaller alpha
    run_dir = Path(run.checkpoint_dir)
    run_dir = run_dir.parent.parent if run_dir.parent.name == "checkpoints" else run_dir
    out_path = Path(out) if out is not None else run_dir / "tune" / f"lm_{mode}.json"
    command = (f"fusion evaluate {run_path} --lm {lm_path} --lm-weight {best:g} --lm-mode {mode}"
               if best > 0 else f"fusion evaluate {run_path}   # the LM did not help on {split}")
    result = TuneResult(best_alpha=best, best_value=scores[str(best)][metric], baseline_value=scores["0.0"][metric],
                        metric=metric, mode=mode, split=split, n_videos=len(entries), scores=scores, lm=str(lm_path),
                        run=str(run.checkpoint_dir), command=command, seconds=time.time() - start,
                        out=str(out_path))
    atomic_write_json(out_path, result.to_dict())
    logger.info("best alpha %g (%s %.4f, without LM %.4f); wrote %s", best, metric, result.best_value,
                result.baseline_value, out_path)
    return result
