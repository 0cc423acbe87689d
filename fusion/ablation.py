"""Ablations of one trained run: what each input and scorer is worth, with paired intervals.

``run_ablation`` decodes one test set under named conditions and compares each against
``full``:

- ``full``: the run as it is, with the decoding options given (LM, verifier weights).
- ``audio_absent``: every clip treated as having no audio stream (the learned "absent" input).
- ``audio_zero``: present audio replaced by all-zero SoundNet features, posteriors uniform:
  "zeros pretending to be sound", the thing the absent mask exists to avoid.
- ``audio_shuffled``: each clip gets another clip's sound (a seeded derangement).
- ``audio_noise``: present audio replaced by Gaussian noise with the test set's per-dimension
  feature mean and std; posteriors a random distribution.
- one condition per registered scorer that declares one (:mod:`fusion.decoding.registry`),
  which turns that scorer off as its declaration says: ``lm_off`` (the late-fusion language
  model removed), ``verifier_off`` (the audio-noun verifier's weight set to 0);
- ``lm_and_verifier_off``: both removed (the captioner alone, unless another scorer is on).
- ``video_only_model``: a second run trained without audio, decoded with the same options.

Two kinds of comparison, never mixed:

- ``delta``: corpus-level metric of the condition minus ``full``'s (every headline metric, as
  coco-caption computes it over the whole split), without an interval;
- ``paired``: for METEOR, CIDEr and sound accuracy, the mean over videos of the per-video
  difference (condition minus ``full``) with the paired bootstrap 95% percentile interval of
  that same mean, so a point estimate and its interval are one statistic. (A corpus-level
  delta beside a per-video interval can fall outside it; METEOR's corpus score is not the mean
  of its per-video scores.)

A condition that cannot differ from ``full`` (audio conditions where no clip has audio, as on
MSVD; ``verifier_off`` when the verifier is not in use) is still evaluated and is marked
``identical_to_full`` with the reason, so a report never presents noise as an effect.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from fusion.ablation_report import HEADLINE_METRICS, PAIRED_METRICS, write_report
from fusion.decoding.audio_scorer import AUDIO_SPEC
from fusion.decoding.lm_scorer import LM_SPEC
from fusion.decoding.registry import ablations, scorer_spec, without
from fusion.errors import ConfigError
from fusion.features.config import AUDIO

logger = logging.getLogger(__name__)

AUDIO_CONDITIONS = ("audio_absent", "audio_zero", "audio_shuffled", "audio_noise")
# condition -> the scorers it turns off: one per registered scorer that names a condition, then both fusions
SCORERS_OFF: dict[str, tuple[str, ...]] = {
    **{condition: (spec.name,) for condition, spec in ablations().items()},
    "lm_and_verifier_off": (LM_SPEC.name, AUDIO_SPEC.name),
}
CONDITIONS: tuple[str, ...] = ("full", *AUDIO_CONDITIONS, *SCORERS_OFF, "video_only_model")
PER_VIDEO_KEYS = {"sound_accuracy": "sound_named"}  # a paired metric's key in per_video.json, where it differs


@dataclass
class AblationConfig:
    """What to ablate and how.

    Attributes:
        conditions: names from ``CONDITIONS`` (``video_only_model`` needs ``video_only_run``).
        split: manifest split to evaluate.
        bootstrap_samples: paired bootstrap resamples for the 95% intervals.
        seed: seeds the shuffling, the noise and the bootstrap.
    """

    conditions: tuple[str, ...] = CONDITIONS
    split: str = "test"
    bootstrap_samples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [c for c in self.conditions if c not in CONDITIONS]
        if unknown:
            raise ConfigError(f"unknown ablation condition {unknown[0]!r}; choose from {', '.join(CONDITIONS)}")
        if "full" not in self.conditions:
            self.conditions = ("full",) + tuple(self.conditions)
        if self.bootstrap_samples < 100:
            raise ConfigError(f"bootstrap_samples={self.bootstrap_samples} is too few for 95% intervals: use >= 100")


# ----------------------------------------------------------------- record transforms
def without_audio(record: Any) -> Any:
    """The record as if its file had no audio stream (features and posteriors gone, meta says so)."""
    meta = dict(record.meta, has_audio_stream=False, ablation="audio_absent")
    return record.without_modality(AUDIO, audio=None, meta=meta)


def _uniform(n: int) -> np.ndarray:
    return np.full((n,), 1.0 / n, dtype=np.float32)


def _audio_zero(records: Sequence[Any], rng: np.random.Generator) -> list[Any]:
    out = []
    for r in records:
        if r.audio is None:
            out.append(r)
            continue
        uniform = {s: _uniform(len(r.posterior(AUDIO, s))) for s in r.spaces(AUDIO)}
        out.append(r.replace_posteriors(AUDIO, uniform, {}, audio=np.zeros_like(r.audio)))
    return out


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of ``range(n)`` with no fixed point (n >= 2), seeded by ``rng``."""
    if n < 2:
        return np.arange(n)
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


def _audio_shuffled(records: Sequence[Any], rng: np.random.Generator) -> list[Any]:
    with_audio = [i for i, r in enumerate(records) if r.audio is not None]
    out = list(records)
    for dst, src in zip(with_audio, np.asarray(with_audio)[derangement(len(with_audio), rng)]):
        donor = records[int(src)]
        pooled = {s: donor.posterior(AUDIO, s) for s in donor.spaces(AUDIO)}
        per_step = {k.split("/", 1)[1]: v for k, v in donor.posteriors_per_step.items() if k.startswith(f"{AUDIO}/")}
        out[dst] = records[dst].replace_posteriors(AUDIO, pooled, per_step, audio=donor.audio)
    return out


def _random_posterior(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.dirichlet(np.ones(n)).astype(np.float32)


def _audio_noise(records: Sequence[Any], rng: np.random.Generator) -> list[Any]:
    present = [r.audio for r in records if r.audio is not None]
    if not present:
        return list(records)
    stacked = np.concatenate(present, axis=0)  # (sum A, Da)
    mean, std = stacked.mean(axis=0), stacked.std(axis=0) + 1e-6
    out = []
    for r in records:
        if r.audio is None:
            out.append(r)
            continue
        noise = (mean + std * rng.standard_normal(r.audio.shape)).astype(np.float32)  # (A, Da)
        random = {s: _random_posterior(len(r.posterior(AUDIO, s)), rng) for s in r.spaces(AUDIO)}
        out.append(r.replace_posteriors(AUDIO, random, {}, audio=noise))
    return out


RECORD_TRANSFORMS: dict[str, Callable[[Sequence[Any], np.random.Generator], list[Any]]] = {
    "audio_absent": lambda records, rng: [without_audio(r) for r in records],
    "audio_zero": _audio_zero,
    "audio_shuffled": _audio_shuffled,
    "audio_noise": _audio_noise,
}


# ----------------------------------------------------------------- statistics
def paired_bootstrap(deltas: np.ndarray, samples: int, rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile interval of the mean of paired per-video differences.

    Args:
        deltas: (n,) float, condition minus full, one per video.
        samples: bootstrap resamples.
        rng: random generator.

    Returns:
        (low, high) of the 2.5% and 97.5% percentiles of the resampled means.
    """
    n = len(deltas)
    if n == 0:
        return (float("nan"), float("nan"))
    idx = rng.integers(0, n, size=(samples, n))  # (samples, n)
    means = deltas[idx].mean(axis=1)  # (samples,)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def compare(full: dict[str, Any], cond: dict[str, Any], samples: int,
            seed: int) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """Corpus-level deltas of the headline metrics, and paired per-video deltas with their intervals.

    Args:
        full / cond: outputs of ``_score`` (``metrics`` and ``per_video``).
        samples: bootstrap resamples.
        seed: bootstrap seed (the same for every condition, so intervals are comparable).

    Returns:
        ``delta``: metric -> corpus-level condition minus full (no interval);
        ``paired``: paired metric -> ``{"mean_delta", "ci95": [low, high], "n_videos"}``, where
        ``mean_delta`` is the mean over videos of the per-video difference and ``ci95`` the
        paired bootstrap 95% percentile interval of that same mean.
    """
    delta: dict[str, float] = {}
    for name in HEADLINE_METRICS:
        full_value, cond_value = full["metrics"].get(name), cond["metrics"].get(name)
        if isinstance(full_value, (int, float)) and isinstance(cond_value, (int, float)):
            delta[name] = float(cond_value) - float(full_value)
    paired: dict[str, dict[str, Any]] = {}
    for name in PAIRED_METRICS:
        key = PER_VIDEO_KEYS.get(name, name)
        ids = [i for i, row in full["per_video"].items() if key in row and key in cond["per_video"].get(i, {})]
        if not ids:
            continue
        diffs = np.array([cond["per_video"][i][key] - full["per_video"][i][key] for i in ids], dtype=np.float64)
        low, high = paired_bootstrap(diffs, samples, np.random.default_rng(seed))
        paired[name] = {"mean_delta": float(diffs.mean()), "ci95": [low, high], "n_videos": len(ids)}
    return delta, paired


# ----------------------------------------------------------------- runner
def _score(predictions: dict[str, str], entries: Sequence[Any]) -> dict[str, Any]:
    """coco-caption metrics + the benchmark's judgements, corpus-level and per video."""
    from fusion.evaluation import score_predictions

    _, metrics, per_video = score_predictions(predictions, entries)
    return {"metrics": metrics, "per_video": per_video, "predictions": predictions}


def _identical_reason(name: str, records: Sequence[Any], options: Any, has_video_only: bool) -> str | None:
    """Why ``name`` cannot differ from ``full`` here, or None."""
    n_audio = sum(r.audio is not None for r in records)
    if name in AUDIO_CONDITIONS and n_audio == 0:
        return "no test video has an audio stream, so removing or replacing audio changes nothing"
    if name == "audio_shuffled" and n_audio < 2:
        return "fewer than two videos have audio to swap"
    specs = [scorer_spec(scorer) for scorer in SCORERS_OFF.get(name, ())]
    if specs and not any(spec.active(options) for spec in specs):
        gives = []
        for spec in specs:
            needed = [spec.setting(n) for n in (spec.requires, spec.weight) if n is not None]
            gives.append(" ".join(f"{s.flag} {s.metavar or s.name.upper()}" for s in needed))
        return (f"{' and '.join(s.label for s in specs)} not in use (weight 0): give {' and '.join(gives)} "
                "to ablate it")
    return None


def run_ablation(
    run_path: str | Path,
    out_dir: str | Path,
    config: AblationConfig | None = None,
    manifest: str | Path | None = None,
    features: str | Path | None = None,
    video_only_run: str | Path | None = None,
    device: str = "cpu",
    **decode_overrides: Any,
) -> dict[str, Any]:
    """Evaluate one run under the ablation conditions and write ``ablation.{json,md,png}``.

    Args:
        run_path: the run to ablate (run folder or checkpoint).
        out_dir: where the report goes.
        config: conditions, split, bootstrap settings.
        manifest: test manifest; None = the run's own.
        features: feature store; None = the store beside the manifest.
        video_only_run: a run trained without audio, for ``video_only_model``.
        device: torch device.
        **decode_overrides: DecodeConfig fields (beam_size, lm, lm_weight, audio_weight, ...)
            over the run's decode section.

    Returns:
        The ``ablation.json`` content: ``{"conditions": [{"name", "metrics", "delta", "paired",
        "identical_to_full"?}], "n_videos", "n_audio_absent", "notes", "decode", ...}``.
    """
    from fusion.checkpoint import load_run
    from fusion.decoding.decoder import CaptionDecoder
    from fusion.distributed import broadcast, is_main, setup
    from fusion.pipeline import decode_records, prepare_split

    device = str(setup(device))  # under torchrun: join the job; "cuda" is this rank's GPU
    config = config or AblationConfig()
    conditions = [c for c in config.conditions if c != "video_only_model" or video_only_run is not None]
    if "video_only_model" in config.conditions and video_only_run is None:
        logger.warning("video_only_model skipped: give --video-only-run RUN (a run trained without audio)")
    video_only = load_run(video_only_run, device=device) if video_only_run is not None else None
    prepared = prepare_split(run_path, config.split, manifest=manifest, features=features,
                             overrides=decode_overrides, device=device)
    run, options, entries, records = prepared.run, prepared.options, prepared.entries, prepared.records

    results: dict[str, dict[str, Any]] = {}
    reasons: dict[str, str] = {}
    for name in conditions:
        rng = np.random.default_rng(config.seed)
        logger.info("ablation condition %s", name)
        cond_records, cond_run, cond_options = records, run, options
        if name in RECORD_TRANSFORMS:
            cond_records = RECORD_TRANSFORMS[name](records, rng)
        elif name in SCORERS_OFF:
            cond_options = without(options, SCORERS_OFF[name])
        elif name == "video_only_model" and video_only is not None:
            cond_run = video_only
        reason = _identical_reason(name, records, options, video_only_run is not None)
        if reason is not None:
            reasons[name] = reason
        hyps = decode_records(CaptionDecoder(cond_run, cond_options, device=device), cond_records)
        if not is_main():  # under torchrun the ranks share the decoding; rank 0 scores and reports
            continue
        results[name] = _score({e.id: h[0].words for e, h in zip(entries, hyps)}, entries)
        # The fused score of the chosen captions: moves even where the words do not.
        results[name]["metrics"]["mean_score"] = float(np.mean([h[0].score for h in hyps]))

    if not is_main():
        return broadcast(None)
    rows = []
    for name in conditions:
        delta, paired = compare(results["full"], results[name], config.bootstrap_samples, config.seed)
        row: dict[str, Any] = {"name": name, "metrics": results[name]["metrics"], "delta": delta, "paired": paired}
        if name in reasons:
            row["identical_to_full"] = reasons[name]
        rows.append(row)
    n_absent = sum(r.audio is None for r in records)
    notes = []
    if n_absent == len(records):
        same = [n for n in conditions if n in AUDIO_CONDITIONS]
        notes.append(f"No test video has an audio stream (as on MSVD), so {', '.join(same) or 'the audio conditions'} "
                     "are identical to full by construction.")
    report = {
        "run": str(run.checkpoint_dir), "manifest": str(prepared.manifest), "split": config.split,
        "n_videos": len(entries), "n_audio_absent": n_absent, "decode": options.to_dict(),
        "bootstrap_samples": config.bootstrap_samples, "seed": config.seed, "conditions": rows, "notes": notes,
    }
    write_report(report, results, Path(out_dir))
    return broadcast(report)


def rescore_report(out_dir: str | Path) -> dict[str, Any]:
    """Recompute a written report's comparisons from its saved per-video scores; no decoding.

    Reads ``ablation.json``, ``per_video.json`` and ``predictions.json`` in ``out_dir`` (also a
    report written before ``paired`` existed, whose ``ci95`` stood beside corpus-level deltas),
    recomputes every row's ``delta`` and ``paired`` with the report's bootstrap settings, and
    rewrites the report files.

    Raises:
        DataError: a file is missing or unreadable.
    """
    import json

    from fusion.errors import DataError

    out = Path(out_dir)
    try:
        report = json.loads((out / "ablation.json").read_text())
        per_video = json.loads((out / "per_video.json").read_text())
        predictions = json.loads((out / "predictions.json").read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{out}: cannot read the saved ablation ({err}); run `fusion ablate` again") from None
    results = {row["name"]: {"metrics": row["metrics"], "per_video": per_video[row["name"]],
                             "predictions": predictions[row["name"]]} for row in report["conditions"]}
    for row in report["conditions"]:
        row.pop("ci95", None)
        row["delta"], row["paired"] = compare(results["full"], results[row["name"]], report["bootstrap_samples"],
                                              report["seed"])
    write_report(report, results, out)
    return report

