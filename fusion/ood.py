"""How far a clip lies from a run's training data: the training profile and its distance.

A captioner trained on one world (the benchmark's coloured shapes) answers any clip with
words of that world; what it cannot do by itself is say that a clip is unlike anything it
was trained on. The *training profile* of a run is a compact description of its training
features, per modality:

* each clip is pooled over time into ``[mean, std]`` of its steps (frames: (2 Dv,), audio:
  (2 Da,));
* the profile keeps the per-dimension mean and spread of these pooled vectors over the
  training clips, and a clip's *distance* is the root mean square of its standardised
  pooled vector, ``sqrt(mean_d(((v_d - mu_d) / s_d) ** 2))`` (a diagonal Mahalanobis
  distance per dimension; ~1 for a typical training clip);
* the thresholds are calibrated on the run's validation clips so that ``quantile`` (99%) of
  them pass: each modality's threshold is its distances' ``1 - (1 - quantile) / M`` quantile
  for M modalities (a clip fails when any modality does). A clip beyond the threshold of any
  modality it has is *unlike the training data*.

For a captioner saved before it recorded its input cap (the largest standardised step
norm of its training steps; see ``fusion.models.layers.Standardize``), the profile keeps
that cap too, measured on the training steps (:func:`measure_model_bounds`), and gives it
to the loaded model (:func:`bound_model_inputs`).

Files: ``RUN/training_profile.safetensors`` (arrays; the settings and thresholds in its
metadata) beside ``RUN/run_card.json`` (:mod:`fusion.runcard`). ``fusion train`` writes
both at the end of training; for an older run :func:`profile_for_run` computes them from the
run's manifest and feature store on first use, and ``python -m fusion.runcard RUN`` does it
explicitly.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fusion.errors import CheckpointError, DataError
from fusion.io import atomic_write_bytes

logger = logging.getLogger(__name__)

PROFILE_FILE = "training_profile.safetensors"
PROFILE_FORMAT = "fusion.training_profile/1"
MODALITIES = ("frames", "audio")
DEFAULT_QUANTILE = 0.99  # share of validation clips that pass the threshold
SCALE_FLOOR = 0.05  # spreads are floored at this share of the median spread (near-constant dims)


def pool_steps(steps: np.ndarray | None) -> np.ndarray | None:
    """One clip's steps (T, D) pooled over time into ``[mean, std]`` (2 D,) float64; None stays None."""
    if steps is None or len(steps) == 0:
        return None
    x = np.asarray(steps, dtype=np.float64)
    return np.concatenate([x.mean(0), x.std(0)])


def _steps(records: Sequence[Any], name: str) -> list[np.ndarray]:
    """The ``name`` steps (T, D) of each record that has at least one."""
    return [np.asarray(s) for r in records if (s := getattr(r, name, None)) is not None and len(s)]


def pooled(record: Any) -> dict[str, np.ndarray | None]:
    """A feature record's pooled vector per modality (None where the clip lacks it)."""
    return {name: pool_steps(getattr(record, name, None)) for name in MODALITIES}


@dataclass
class ModalityProfile:
    """The training clips of one modality, as the distance needs them.

    Attributes:
        mean: (P,) float64 per-dimension mean of the training clips' pooled vectors.
        scale: (P,) float64 per-dimension spread (floored at ``SCALE_FLOOR`` x the median).
        threshold: the distance that ``quantile`` of the calibration clips stay within.
        n_train: training clips with this modality.
        n_calibration: clips the threshold was calibrated on.
        calibrated_on: ``"val"`` (the run's validation split) or ``"train"`` (no val clips).
        max_rms: the captioner's largest standardised step norm on the training steps, for a
            captioner saved before it recorded one (None: not needed or not measured).
        typical_rms: the median of those norms (None likewise).
    """

    mean: np.ndarray
    scale: np.ndarray
    threshold: float
    n_train: int
    n_calibration: int
    calibrated_on: str = "val"
    max_rms: float | None = None
    typical_rms: float | None = None

    def distance(self, vector: np.ndarray) -> float:
        """The RMS standardised distance of one pooled vector (P,) from the training clips."""
        z = (np.asarray(vector, dtype=np.float64) - self.mean) / self.scale
        return float(np.sqrt(np.mean(z * z)))


@dataclass
class OODReport:
    """How far one clip lies from the training data.

    Attributes:
        distances: modality -> distance (None where the clip lacks the modality).
        thresholds: modality -> the profile's threshold.
        unfamiliar: the modalities beyond their threshold.
    """

    distances: dict[str, float | None]
    thresholds: dict[str, float]
    unfamiliar: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        """True when the clip is unlike the training data in any modality it has."""
        return bool(self.unfamiliar)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"flagged", "unfamiliar", "distance": {m: d}, "threshold": {m: t}, "ratio": {m: d/t}}``."""
        ratio = {m: (None if d is None or self.thresholds[m] <= 0 else round(d / self.thresholds[m], 3))
                 for m, d in self.distances.items()}
        return {"flagged": self.flagged, "unfamiliar": list(self.unfamiliar),
                "distance": {m: (None if d is None else round(d, 3)) for m, d in self.distances.items()},
                "threshold": {m: round(t, 3) for m, t in self.thresholds.items()}, "ratio": ratio}


class TrainingProfile:
    """A run's training features per modality (see the module docstring).

    Args:
        modalities: modality name -> its profile (a modality no training clip had is absent).
        quantile: the calibration quantile the thresholds were set at.
    """

    def __init__(self, modalities: dict[str, ModalityProfile], quantile: float = DEFAULT_QUANTILE) -> None:
        self.modalities = dict(modalities)
        self.quantile = float(quantile)

    # -- fitting -----------------------------------------------------------------------------
    @classmethod
    def fit(cls, train: Sequence[Any], calibration: Sequence[Any], quantile: float = DEFAULT_QUANTILE) -> TrainingProfile:
        """Describe the training records and calibrate the thresholds.

        Args:
            train: the training ``FeatureRecord`` objects.
            calibration: the validation records (empty: calibrate on ``train``, said so).
            quantile: share of the calibration clips that must pass (0 < q <= 1).

        Raises:
            DataError: no training record has any modality.
        """
        if not 0 < quantile <= 1:
            raise DataError(f"ood quantile must be in (0, 1], got {quantile}")
        out: dict[str, ModalityProfile] = {}
        present = [m for m in MODALITIES if any(getattr(r, m, None) is not None for r in train)]
        per_modality = 1 - (1 - quantile) / max(len(present), 1)  # any modality may fail a clip
        for name in MODALITIES:
            steps = _steps(train, name)
            if not steps:
                continue
            vectors = np.stack([pool_steps(s) for s in steps])  # (N, P)
            mean, spread = vectors.mean(0), vectors.std(0)
            scale = np.maximum(spread, SCALE_FLOOR * float(np.median(spread)) + 1e-9)
            calib = [pool_steps(s) for s in _steps(calibration, name)]
            on = "val" if calib else "train"
            calib_vectors = np.stack(calib) if calib else vectors
            profile = ModalityProfile(mean, scale, 0.0, len(steps), len(calib_vectors), on)
            distances = np.array([profile.distance(v) for v in calib_vectors])
            profile.threshold = float(np.quantile(distances, per_modality, method="higher"))  # at least that share pass
            out[name] = profile
            logger.info("training profile %s: %d train clips, threshold %.3f (%d%% of %d %s clips pass)",
                        name, len(steps), profile.threshold, round(100 * quantile), len(calib_vectors), on)
        if not out:
            raise DataError("training profile: no training clip has frame or audio features")
        return cls(out, quantile)

    # -- use ---------------------------------------------------------------------------------
    def assess(self, record: Any) -> OODReport:
        """Distances of one feature record per modality, and whether it is unlike the training data."""
        vectors = pooled(record)
        distances: dict[str, float | None] = {}
        unfamiliar = []
        for name, profile in self.modalities.items():
            vector = vectors.get(name)
            if vector is None or vector.shape != profile.mean.shape:
                distances[name] = None
                continue
            distances[name] = profile.distance(vector)
            if distances[name] > profile.threshold:
                unfamiliar.append(name)
        return OODReport(distances, {n: p.threshold for n, p in self.modalities.items()}, unfamiliar)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """One safetensors file: arrays per modality, settings and thresholds as metadata."""
        from safetensors.numpy import save

        arrays, meta = {}, {}
        for name, p in self.modalities.items():
            for key in ("mean", "scale"):
                arrays[f"{name}.{key}"] = np.ascontiguousarray(getattr(p, key), dtype=np.float32)
            meta[name] = {"threshold": p.threshold, "n_train": p.n_train, "n_calibration": p.n_calibration,
                          "calibrated_on": p.calibrated_on, "max_rms": p.max_rms,
                          "typical_rms": p.typical_rms}
        header = {"format": PROFILE_FORMAT, "quantile": json.dumps(self.quantile), "modalities": json.dumps(meta)}
        atomic_write_bytes(path, save(arrays, metadata=header))

    @classmethod
    def load(cls, path: str | Path) -> TrainingProfile:
        """Read a file written by :meth:`save` (CheckpointError naming the file and the fix)."""
        from safetensors import safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="numpy") as fh:
                header = fh.metadata() or {}
                arrays = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open API)
            if header.get("format") != PROFILE_FORMAT:
                raise ValueError(f"format {header.get('format')!r}")
            out = {name: ModalityProfile(arrays[f"{name}.mean"].astype(np.float64),
                                         arrays[f"{name}.scale"].astype(np.float64), float(m["threshold"]),
                                         int(m["n_train"]), int(m["n_calibration"]), str(m["calibrated_on"]),
                                         m.get("max_rms"), m.get("typical_rms"))
                   for name, m in json.loads(header["modalities"]).items()}
            return cls(out, float(json.loads(header["quantile"])))
        except Exception as err:  # safetensors raises its own error types; any failure means "rebuild it"
            raise CheckpointError(f"{path}: unreadable training profile ({err}); delete it and run "
                                  f"`python -m fusion.runcard {path.parent}` to rebuild it") from None


def annotate(profile: TrainingProfile | None, record: Any) -> OODReport | None:
    """Assess a feature record and keep the result in ``record.meta["ood"]`` (where the audio-noun
    verifier reads it, to abstain on unfamiliar clips). None (and no annotation) without a profile."""
    if profile is None or record is None:
        return None
    report = profile.assess(record)
    if getattr(record, "meta", None) is None:
        record.meta = {}
    record.meta["ood"] = report.to_dict()
    return report


def measure_model_bounds(model: Any, profile: TrainingProfile, train: Sequence[Any]) -> bool:
    """For a captioner saved before it recorded its input cap: measure its largest standardised
    step norm on the training records, set it and keep it in the profile (``max_rms``), so that
    :func:`bound_model_inputs` restores it later. True when done."""
    done = False
    for name, norm in (("frames", getattr(model, "frame_norm", None)), ("audio", getattr(model, "audio_norm", None))):
        p = profile.modalities.get(name)
        if p is None or norm is None or not hasattr(norm, "fit_max_rms") or norm.has_bounds:
            continue
        import torch

        steps = _steps(train, name)
        p.max_rms, p.typical_rms = norm.fit_max_rms(torch.from_numpy(np.concatenate(steps).astype(np.float32)))
        done = True
    return done


def bound_model_inputs(model: Any, profile: TrainingProfile | None) -> bool:
    """Give a captioner that lacks a recorded input cap (trained before it existed) the cap the
    profile measured for it (:func:`measure_model_bounds`). Returns True when set."""
    if profile is None:
        return False
    changed = False
    for name, norm in (("frames", getattr(model, "frame_norm", None)), ("audio", getattr(model, "audio_norm", None))):
        p = profile.modalities.get(name)
        if p is None or p.max_rms is None or p.typical_rms is None or norm is None or not hasattr(norm, "set_max_rms") \
                or norm.has_bounds:
            continue
        norm.set_max_rms(p.max_rms, p.typical_rms)
        changed = True
    if changed:
        logger.info("the captioner's inputs are capped as the training profile measured")
    return changed


def profile_path(run_dir: str | Path) -> Path:
    """``RUN/training_profile.safetensors``."""
    return Path(run_dir) / PROFILE_FILE
