"""Tune the late-fusion weight alpha on validation data, by a command, not by hand.

``tune_lm_weight(run, lm, alphas)`` decodes one manifest split (default ``val``) once per
alpha with the run's caption model plus the LM as scorer ``"lm"`` (log-linear or linear
interpolation, :mod:`fusion.decoding.lm_scorer`), scores every decoding with coco-caption,
and picks the alpha with the best metric (default METEOR; ties go to the smaller alpha, so
an LM that does not help gets alpha 0). The features, the LM and the verifier are loaded once.

The choice is written into the run's ``config.yaml`` decode section (``lm``, ``lm_weight``,
``lm_mode``; ``lm: null`` when the LM did not help), which ``fusion evaluate`` / ``caption``
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
from tqdm import tqdm

from fusion.errors import ConfigError
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
        command: the ``fusion evaluate`` line that uses the choice.
        seconds: wall time.
        out: the JSON file written.
        config: the run's ``config.yaml`` the choice was written into ("" when not applied).
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
    apply: bool = True,
    progress: bool = True,
) -> TuneResult:
    """Pick alpha for late fusion by decoding ``split`` once per alpha; write it into the run's config.

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

    Raises:
        ConfigError: bad alphas, mode or metric. DataError: empty split or no references.
        CheckpointError / WeightsError: run or LM unloadable.
    """
    from fusion.checkpoint import write_run_decode
    from fusion.decoding.config import LM_MODES
    from fusion.decoding.decoder import CaptionDecoder
    from fusion.decoding.lm_scorer import load_language_model
    from fusion.evaluation import METRICS, coco_metrics
    from fusion.pipeline import prepare_split

    if mode not in LM_MODES:
        raise ConfigError(f"--mode {mode!r} is not one of {list(LM_MODES)}")
    if metric not in METRICS:
        raise ConfigError(f"--metric {metric!r} is not one of {list(METRICS)}")
    grid = _check_alphas(alphas, mode)
    start = time.time()
    prepared = prepare_split(run_path, split, manifest=manifest, features=features, device=device,
                             overrides={"beam_size": beam_size, "batch_size": batch_size}, captioned_only=True,
                             progress=progress)
    run, entries = prepared.run, prepared.entries
    refs = {e.id: list(e.captions) for e in entries}
    lm = load_language_model(lm_path, device=device)
    verifier = None

    scores: dict[str, dict[str, float]] = {}
    for alpha in tqdm(grid, desc=f"tune lm ({mode})", disable=not progress):
        options = dataclasses.replace(prepared.options, lm=str(lm_path) if alpha > 0 else None,
                                      lm_weight=alpha, lm_mode=mode)
        decoder = CaptionDecoder(run, options, device=device, language_model=lm, verifier=verifier)
        verifier = decoder.verifier if options.audio_weight else None  # loaded once, shared
        hyps = decoder.decode(prepared.records)
        predictions = {e.id: h[0].words for e, h in zip(entries, hyps)}
        scores[str(alpha)] = dict(coco_metrics(predictions, refs).metrics)
        logger.info("alpha %.3f: %s %.4f", alpha, metric, scores[str(alpha)][metric])
    best = max(grid, key=lambda a: (scores[str(a)][metric], -a))  # ties -> smaller alpha
    out_path = Path(out) if out is not None else run.run_dir / "tune" / f"lm_{mode}.json"
    choice = {"lm": str(lm_path) if best > 0 else None, "lm_weight": best, "lm_mode": mode}
    config_path = write_run_decode(run, choice) if apply else None
    if config_path is not None:
        command = f"fusion evaluate {run_path}   # decode.lm, lm_weight, lm_mode are in {config_path}"
    elif best > 0:
        command = f"fusion evaluate {run_path} --lm {lm_path} --lm-weight {best:g} --lm-mode {mode}"
    else:
        command = f"fusion evaluate {run_path}   # the LM did not help on {split}"
    result = TuneResult(best_alpha=best, best_value=scores[str(best)][metric], baseline_value=scores["0.0"][metric],
                        metric=metric, mode=mode, split=split, n_videos=len(entries), scores=scores, lm=str(lm_path),
                        run=str(run.checkpoint_dir), command=command, seconds=time.time() - start,
                        out=str(out_path), config=str(config_path or ""))
    atomic_write_json(out_path, result.to_dict())
    logger.info("best alpha %g (%s %.4f, without LM %.4f); wrote %s", best, metric, result.best_value,
                result.baseline_value, out_path)
    return result
