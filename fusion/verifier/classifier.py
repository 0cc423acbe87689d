"""Learned audio evidence: one calibrated logistic regression per audible noun.

Input: time-pooled SoundNet features (mean and max over the A steps of
``FeatureRecord.audio`` (A, Da) -> (2 * Da,)), standardised with training statistics.
Label: "the video's captions mention the noun or a synonym". Each noun's regression is
fitted class-balanced on the training split (L2 strength chosen on validation by log
loss), then Platt-scaled on validation (Platt, 1999: ``p = sigmoid(a * z + b)``), so its
output is a probability under the validation base rate. The evidence is the calibrated
log-odds minus the log-odds of that base rate: a log likelihood ratio, 0 when the audio
says nothing, positive when it supports the noun, negative when it contradicts it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fusion.errors import CheckpointError, DataError

logger = logging.getLogger(__name__)

CLASSIFIER_FORMAT = "fusion.verifier.classifier/1"
C_GRID = (0.01, 0.1, 1.0)  # inverse L2 strengths tried on validation
SCALE_FLOOR = 0.05  # distance: per-dimension spreads floored at this share of the median spread
_EPS = 1e-6


def pool_audio(audio: np.ndarray) -> np.ndarray:
    """Time-pool one clip's SoundNet features.

    Args:
        audio: (A, Da) float32 features per time step.

    Returns:
        (2 * Da,) float32: the mean over time, then the max over time.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2 or audio.shape[0] == 0:
        raise DataError(f"audio features must be (A, Da) with A >= 1, got shape {audio.shape}")
    return np.concatenate([audio.mean(axis=0), audio.max(axis=0)]).astype(np.float32)  # (2Da,)


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


@dataclass
class NounClassifier:
    """K per-noun calibrated logistic regressions over pooled audio features (D = 2 * Da).

    Attributes:
        nouns: the K nouns, in column order.
        mean: (D,) float32 feature means of the training split.
        std: (D,) float32 feature standard deviations (>= 1e-6).
        weight: (K, D) float32 regression weights on standardised features.
        bias: (K,) float32 regression biases.
        platt_a: (K,) float32 Platt slopes.
        platt_b: (K,) float32 Platt offsets.
        prior_logit: (K,) float32 log-odds of each noun's calibration base rate.
        stats: per noun, training facts (positives, C, validation log loss), JSON-able.
    """

    nouns: list[str]
    mean: np.ndarray
    std: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    platt_a: np.ndarray
    platt_b: np.ndarray
    prior_logit: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        """D, the pooled feature size the classifier expects."""
        return int(self.mean.shape[0])

    def raw_logits(self, pooled: np.ndarray) -> np.ndarray:
        """Uncalibrated scores (B, K) float64 of pooled features (B, D)."""
        pooled = np.asarray(pooled, dtype=np.float64)
        if pooled.ndim != 2 or pooled.shape[1] != self.feature_dim:
            raise DataError(f"the verifier classifier expects pooled audio features (B, {self.feature_dim}), got "
                            f"{pooled.shape}; were the features extracted with the same SoundNet layer?")
        x = (pooled - self.mean) / self.std  # (B, D)
        return x @ self.weight.T.astype(np.float64) + self.bias  # (B, K)

    def calibrated_logits(self, pooled: np.ndarray) -> np.ndarray:
        """Calibrated log-odds (B, K) float64 that each noun is mentioned."""
        return self.platt_a * self.raw_logits(pooled) + self.platt_b  # (B, K)

    def evidence(self, pooled: np.ndarray) -> np.ndarray:
        """Log likelihood ratios (B, K) float64: calibrated log-odds minus the prior's."""
        return self.calibrated_logits(pooled) - self.prior_logit  # (B, K)

    def distance(self, pooled: np.ndarray) -> np.ndarray:
        """How far pooled features (B, D) lie from the training clips: (B,) float64.

        The root mean square of the standardised features, each dimension's spread floored
        at ``SCALE_FLOOR`` x the median spread (dimensions that hardly vary in training would
        otherwise dominate); about 1 for a typical training clip.
        """
        pooled = np.asarray(pooled, dtype=np.float64)
        if pooled.ndim != 2 or pooled.shape[1] != self.feature_dim:
            raise DataError(f"the verifier classifier expects pooled audio features (B, {self.feature_dim}), got "
                            f"{pooled.shape}; were the features extracted with the same SoundNet layer?")
        scale = np.maximum(self.std, SCALE_FLOOR * float(np.median(self.std)))
        z = (pooled - self.mean) / scale  # (B, D)
        return np.sqrt((z * z).mean(axis=1))

    # -- persistence (the verifier file embeds these) -----------------------------------------
    ARRAYS = ("mean", "std", "weight", "bias", "platt_a", "platt_b", "prior_logit")

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays to save, float32, keyed ``classifier.<name>``."""
        return {f"classifier.{n}": np.ascontiguousarray(getattr(self, n), dtype=np.float32) for n in self.ARRAYS}

    def to_meta(self) -> dict[str, Any]:
        """The JSON-able part: nouns and training stats."""
        return {"format": CLASSIFIER_FORMAT, "nouns": self.nouns, "stats": self.stats}

    @classmethod
    def from_parts(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any], source: str) -> NounClassifier:
        """Inverse of :meth:`to_arrays` / :meth:`to_meta` (CheckpointError naming ``source``)."""
        missing = [n for n in cls.ARRAYS if f"classifier.{n}" not in arrays]
        if meta.get("format") != CLASSIFIER_FORMAT or missing:
            raise CheckpointError(f"{source}: incomplete verifier classifier (missing {missing[:2]}); retrain it")
        parts = {n: arrays[f"classifier.{n}"].astype(np.float64) for n in cls.ARRAYS}
        parts["weight"] = parts["weight"].astype(np.float32)
        if parts["weight"].shape != (len(meta["nouns"]), parts["mean"].shape[0]):
            raise CheckpointError(f"{source}: classifier weight {parts['weight'].shape} does not fit "
                                  f"{len(meta['nouns'])} nouns; retrain it")
        return cls(nouns=list(meta["nouns"]), stats=dict(meta.get("stats", {})), **parts)


def _fit_one(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> tuple[Any, float, float]:
    """Best class-balanced logistic regression over C_GRID by validation log loss."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    best: tuple[Any, float, float] | None = None
    for c in C_GRID:
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit(x, y)
        if len(np.unique(y_val)) < 2:  # cannot rank on validation: keep the middle strength
            return model, c, float("nan")
        loss = log_loss(y_val, model.predict_proba(x_val)[:, 1], labels=[0, 1])
        if best is None or loss < best[2]:
            best = (model, c, float(loss))
    assert best is not None
    return best


def _platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling (a, b) of scores z (M,) against labels y (M,) in {0, 1}."""
    from sklearn.linear_model import LogisticRegression

    platt = LogisticRegression(C=1.0, max_iter=1000).fit(z.reshape(-1, 1), y)  # mild L2: small val sets
    a, b = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    if a <= 0:  # the scores do not rank positives above negatives: say nothing
        return 0.0, float(_logit((y.sum() + 1) / (len(y) + 2)))
    return a, b


def fit_classifier(pooled: np.ndarray, labels: np.ndarray, pooled_val: np.ndarray, labels_val: np.ndarray,
                   nouns: list[str], min_positives: int = 3) -> NounClassifier:
    """Fit and calibrate one regression per noun with enough positives.

    Args:
        pooled: (N, D) float32 pooled audio features of the training clips (audio present).
        labels: (N, K) bool, clip n's captions mention noun k.
        pooled_val: (M, D) float32 validation features.
        labels_val: (M, K) bool validation labels.
        nouns: the K noun names.
        min_positives: nouns with fewer training positives (or negatives) are left out.

    Returns:
        The classifier over the kept nouns (DataError if none is left).
    """
    if pooled.shape[0] != labels.shape[0] or labels.shape[1] != len(nouns):
        raise DataError(f"verifier training: {pooled.shape[0]} clips but labels {labels.shape} for {len(nouns)} nouns")
    mean = pooled.mean(axis=0)
    std = np.maximum(pooled.std(axis=0), _EPS)
    x, x_val = (pooled - mean) / std, (pooled_val - mean) / std  # (N, D), (M, D)
    keep, rows, stats = [], [], {}
    for k, noun in enumerate(nouns):
        y, y_val = labels[:, k].astype(int), labels_val[:, k].astype(int)
        if y.sum() < min_positives or (1 - y).sum() < min_positives:
            continue
        model, c, val_loss = _fit_one(x, y, x_val, y_val)
        calib_x, calib_y = (x_val, y_val) if 0 < y_val.sum() < len(y_val) else (x, y)
        z = model.decision_function(calib_x)  # (M,)
        a, b = _platt(z, calib_y)
        prior = float(_logit((calib_y.sum() + 1) / (len(calib_y) + 2)))
        keep.append(noun)
        rows.append((model.coef_[0], model.intercept_[0], a, b, prior))
        stats[noun] = {"train_positives": int(y.sum()), "train_clips": len(y), "val_positives": int(y_val.sum()),
                       "C": c, "val_log_loss": val_loss, "calibrated_on": "val" if calib_x is x_val else "train"}
        logger.info("verifier noun %-12s positives %d/%d, C=%g, Platt a=%.3f b=%.3f", noun, y.sum(), len(y), c, a, b)
    if not keep:
        raise DataError(f"verifier training: no audible noun has {min_positives}+ positive and negative clips; "
                        "use a larger paired training set")
    weight, bias, pa, pb, prior = (np.array(col) for col in zip(*rows))
    return NounClassifier(nouns=keep, mean=mean.astype(np.float64), std=std.astype(np.float64),
                          weight=weight.astype(np.float32), bias=bias.astype(np.float64), platt_a=pa.astype(np.float64),
                          platt_b=pb.astype(np.float64), prior_logit=prior.astype(np.float64), stats=stats)
