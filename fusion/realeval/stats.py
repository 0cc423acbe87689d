"""Paired intervals between systems and leave-one-out choices on the development clips.

With 26 clips a difference is only worth reporting with its interval: :func:`paired` takes
the per-clip differences of two systems on the same clips and returns their mean with the
paired bootstrap 95% percentile interval of that mean (:func:`fusion.ablation.paired_bootstrap`).

Anything chosen by looking at the development clips (a decoding weight, a candidate system,
a threshold) is chosen once per clip without that clip (:func:`loo_select`): the reported
caption of clip *i* comes from the candidate that scores best on the other clips, so every
reported number is a held-out fold's. The folds' choices are returned too, to show how
stable the choice is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fusion.ablation import paired_bootstrap
from fusion.errors import DataError

BOOTSTRAP_SAMPLES = 10_000
BOOTSTRAP_SEED = 0


def paired(system: Mapping[str, float], baseline: Mapping[str, float], ids: Sequence[str] | None = None,
           samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """Mean per-clip difference ``system - baseline`` with its paired bootstrap 95% interval.

    Args:
        system / baseline: clip id -> score; only clips in both (and in ``ids``) count.
        ids: the clips to compare (default: all shared ones).
        samples: bootstrap resamples.
        seed: bootstrap seed (the same for every comparison, so intervals are comparable).

    Returns:
        ``{"mean_delta", "ci95": [low, high], "n_clips", "wins", "losses"}``; ``mean_delta`` is
        None when no clip is shared.
    """
    pool = ids if ids is not None else list(system)
    shared = [i for i in pool if i in system and i in baseline]
    if not shared:
        return {"mean_delta": None, "ci95": [None, None], "n_clips": 0, "wins": 0, "losses": 0}
    diffs = np.array([system[i] - baseline[i] for i in shared], dtype=np.float64)  # (n,)
    low, high = paired_bootstrap(diffs, samples, np.random.default_rng(seed))
    return {"mean_delta": float(diffs.mean()), "ci95": [low, high], "n_clips": len(shared),
            "wins": int((diffs > 0).sum()), "losses": int((diffs < 0).sum())}


@dataclass
class LooChoice:
    """A choice made by leave-one-out over the clips.

    Attributes:
        chosen: clip id -> the candidate chosen on all the other clips.
        predictions: clip id -> that candidate's caption for the held-out clip.
        counts: candidate -> in how many folds it was chosen.
    """

    chosen: dict[str, str]
    predictions: dict[str, str]
    counts: dict[str, int]


def loo_select(scores: Mapping[str, Mapping[str, float]], predictions: Mapping[str, Mapping[str, str]],
               ids: Sequence[str]) -> LooChoice:
    """Choose a candidate per held-out clip by its mean score on the other clips.

    Args:
        scores: candidate -> clip id -> the selection score (higher is better) on every clip
            of ``ids``; per-clip scores must not depend on the other clips' captions (true of
            :func:`fusion.realeval.metrics.score_clips`' CIDEr with its fixed IDF).
        predictions: candidate -> clip id -> caption.
        ids: the clips (at least 2).

    Returns:
        The :class:`LooChoice`. Ties go to the candidate listed first.

    Raises:
        DataError: fewer than 2 clips, or a candidate without a score or caption for a clip.
    """
    ids = list(ids)
    if len(ids) < 2:
        raise DataError("leave-one-out needs at least 2 clips")
    names = list(scores)
    for name in names:
        lacking = [i for i in ids if i not in scores[name] or i not in predictions.get(name, {})]
        if lacking:
            raise DataError(f"candidate {name!r} has no score or caption for clip {lacking[0]}")
    table = np.array([[scores[n][i] for i in ids] for n in names], dtype=np.float64)  # (C, n)
    totals = table.sum(axis=1)  # (C,)
    chosen: dict[str, str] = {}
    for k, clip in enumerate(ids):
        held_out_means = (totals - table[:, k]) / (len(ids) - 1)  # (C,) mean over the other clips
        chosen[clip] = names[int(np.argmax(held_out_means))]  # argmax takes the first of ties
    preds = {clip: predictions[name][clip] for clip, name in chosen.items()}
    return LooChoice(chosen=chosen, predictions=preds, counts=dict(Counter(chosen.values())))
