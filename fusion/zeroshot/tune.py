"""Choose the zero-shot model's mode and weights on real clips, with leave-one-out cross-validation.

Every point of a small grid (the consensus mode's neighbour count and evidence weights; the
fused mode's visual weight and negative scale, audio weight, length weight) decodes every development clip once; a clip's caption does not depend on the other clips, so
leave-one-out costs nothing more: for each held-out clip the point with the best mean CIDEr-D
on the *other* clips is chosen and the held-out clip's caption under it is its held-out
caption. The reported numbers are those held-out captions'; the model keeps the point that is
best on all clips (what a fold would choose with one more clip).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from fusion.zeroshot.config import ZeroShotConfig

logger = logging.getLogger(__name__)

# The grids, per mode. Consensus: how many corpus clips vote and how much the sound counts
# beside the frames. Fused: each weight off or at a few strengths; the language model's weight is 1.
CONSENSUS_GRID: dict[str, tuple[Any, ...]] = {
    "mode": ("consensus",),
    "neighbours": (20, 40, 80, 160, 320),
    "audio_weight": (0.0, 1.0, 2.0),
}
FUSED_GRID: dict[str, tuple[Any, ...]] = {
    "mode": ("fused",),
    "visual_weight": (0.0, 1.0, 2.0),
    "visual_negative_scale": (0.0, 0.5),
    "audio_weight": (0.0, 1.0),
    "length_weight": (0.0, 0.5, 1.0),
}
GRID: tuple[Mapping[str, Sequence[Any]], ...] = (CONSENSUS_GRID, FUSED_GRID)


def grid_points(grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Sequence[Any]]] = GRID) -> list[dict[str, Any]]:
    """Every combination of each grid (a negative scale only where its weight is on), grids in order."""
    grids = [grid] if isinstance(grid, Mapping) else list(grid)
    points = []
    for one in grids:
        names = list(one)
        points += [dict(zip(names, values)) for values in itertools.product(*(one[n] for n in names))]
    return [p for p in points if p.get("visual_weight", 1) or not p.get("visual_negative_scale", 0)]


def cider_per_clip(captions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """CIDEr-D of each clip's caption (pycocoevalcap; IDF over these clips' references)."""
    from pycocoevalcap.cider.cider import Cider

    ids = list(captions)
    _, per = Cider().compute_score({i: list(references[i]) for i in ids}, {i: [captions[i] or "<empty>"] for i in ids})
    return {i: float(s) for i, s in zip(ids, per)}


def tune_weights(model: Any, records: Sequence[Any], references: Mapping[str, Sequence[str]],
                 base: ZeroShotConfig, grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Sequence[Any]]] = GRID,
                 progress: bool = True) -> dict[str, Any]:
    """Decode the clips under every grid point and cross-validate the choice (module docstring).

    Returns:
        ``{"points", "chosen": overall best point, "held_out": {id: {"caption", "point", "CIDEr"}},
        "held_out_cider": mean, "per_point_cider": [...]}``.
    """
    from fusion.realeval import loo_select

    ids = [r.id for r in records]
    points = grid_points(grid)
    captions: dict[str, dict[str, str]] = {}
    scores: dict[str, dict[str, float]] = {}
    for p, point in enumerate(tqdm(points, desc="zero-shot weights (leave-one-out)", disable=not progress)):
        config = dataclasses.replace(base, **point)
        captions[str(p)] = {i: nbest[0].words if nbest else "" for i, nbest in zip(ids, model.decode(records, config))}
        scores[str(p)] = cider_per_clip(captions[str(p)], references)
    choice = loo_select(scores, captions, ids)
    means = {p: float(np.mean(list(s.values()))) for p, s in scores.items()}
    best = max(means, key=lambda p: (means[p], -int(p)))  # ties: the earlier point, as loo_select
    held_out = {i: {"caption": choice.predictions[i], "point": points[int(choice.chosen[i])],
                    "CIDEr": round(scores[choice.chosen[i]][i], 4)} for i in ids}
    held_out_cider = float(np.mean([h["CIDEr"] for h in held_out.values()]))
    logger.info("leave-one-out CIDEr-D %.3f; chosen on all clips: %s", held_out_cider, points[int(best)])
    return {"metric": "CIDEr-D (per clip, pycocoevalcap, IDF of all development clips' references)", "points": points,
            "chosen": points[int(best)], "held_out": held_out, "held_out_cider": round(held_out_cider, 4),
            "per_point_cider": [round(means[str(p)], 4) for p in range(len(points))],
            "captions": {str(p): captions[str(p)] for p in range(len(points))}}
