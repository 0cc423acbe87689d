"""Unfamiliarity for the zero-shot model, calibrated on real clips.

The zero-shot model learned nothing from video, so "unlike its training data" means unlike
real video as the encoders see it. The profile (:class:`fusion.ood.TrainingProfile`) describes
the pooled features of real clips (the development clips in the data folder); each modality's
threshold is the largest *leave-one-out* distance among them (each clip measured against a
profile of the others, so the threshold is what an unseen real clip reaches), times
:data:`MARGIN`: with ~25 clips the largest held-out distance is about their 96th percentile,
and the margin carries it towards the 99% that :mod:`fusion.ood` calibrates runs at.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from fusion.errors import DataError
from fusion.ood import MODALITIES, SCALE_FLOOR, ModalityProfile, TrainingProfile, pooled

logger = logging.getLogger(__name__)

MARGIN = 1.2


def _profile(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and floored spread of pooled vectors (N, P), as TrainingProfile.fit computes them."""
    mean, spread = vectors.mean(0), vectors.std(0)
    return mean, np.maximum(spread, SCALE_FLOOR * float(np.median(spread)) + 1e-9)


def leave_one_out_distances(vectors: np.ndarray) -> np.ndarray:
    """(N,) distance of each pooled vector from a profile of the other N - 1."""
    out = np.zeros(len(vectors))
    for i in range(len(vectors)):
        mean, scale = _profile(np.delete(vectors, i, axis=0))
        z = (vectors[i] - mean) / scale
        out[i] = float(np.sqrt(np.mean(z * z)))
    return out


def real_clip_profile(records: Sequence[Any], margin: float = MARGIN) -> tuple[TrainingProfile, dict[str, list[float]]]:
    """The profile of real clips' records with leave-one-out thresholds, and the held-out distances.

    Raises:
        DataError: fewer than 3 clips carry any modality.
    """
    modalities: dict[str, ModalityProfile] = {}
    held_out: dict[str, list[float]] = {}
    for name in MODALITIES:
        vectors = [v for r in records if (v := pooled(r).get(name)) is not None]
        if len(vectors) < 3:
            continue
        stacked = np.stack(vectors)  # (N, P)
        distances = leave_one_out_distances(stacked)
        mean, scale = _profile(stacked)
        threshold = float(distances.max() * margin)
        modalities[name] = ModalityProfile(mean, scale, threshold, len(vectors), len(vectors), "real clips, leave-one-out")
        held_out[name] = [round(float(d), 4) for d in distances]
        logger.info("zero-shot profile %s: %d real clips, held-out distances %.2f-%.2f, threshold %.2f",
                    name, len(vectors), distances.min(), distances.max(), threshold)
    if not modalities:
        raise DataError("zero-shot calibration needs at least 3 real clips with frames or audio; "
                        "check FUSION_DATA_DIR (msvd/clips, msrvtt/clips)")
    return TrainingProfile(modalities, quantile=1.0), held_out
