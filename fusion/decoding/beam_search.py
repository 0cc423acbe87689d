"""One batched beam search over weighted scorers (videos x beams flattened to N rows).

At every step each active scorer ``s`` (weight != 0) scores all next tokens of the N rows,
the scores are fused as ``sum_s weights[s] * score_s``, the processors mask forbidden
tokens, and for each video the best ``2K`` of its ``K * V`` candidates are kept: those that
end with EOS (and rank within the top K) become finished hypotheses, the first ``K`` others
are the next running beams. A video stops when it has ``K`` finished hypotheses (the
"early stopping" rule of Hugging Face's beam search) or at ``max_len`` words, where EOS is
forced. Every row carries its per-scorer sums beside the fused total, so every finished
hypothesis reports why it won.

At the start all ``K`` beams of a video hold the same BOS prefix; beams 1..K-1 start at
``-inf`` so the first step expands beam 0 only (Hugging Face does the same).

Anchors: ESPnet ``espnet/nets/batch_beam_search.py`` (scorers and weights as dicts,
``weighted_scores``, ``final_score``) and Hugging Face ``BeamSearchScorer`` (fixed-size
beams with ``2K`` candidates). There is no second, per-video implementation: decoding one
video is this function with ``batch_size=1``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor

from fusion.decoding.config import DecodeConfig
from fusion.decoding.hypothesis import Hypothesis
from fusion.decoding.processors import (
    MaxLengthProcessor,
    MinLengthProcessor,
    Processor,
    apply_processors,
)
from fusion.decoding.scorer import DecodeContext, Scorer, final_score_of
from fusion.errors import ConfigError

logger = logging.getLogger(__name__)

NEG_INF = float("-inf")


def _active_scorers(scorers: Mapping[str, Scorer], weights: Mapping[str, float]) -> dict[str, float]:
    """Validate names once (never inside the loop) and keep the scorers of non-zero weight."""
    unknown = sorted(set(weights) - set(scorers))
    if unknown:
        raise ConfigError(f"weights name unknown scorer(s) {unknown}; scorers are {sorted(scorers)}")
    missing = sorted(set(scorers) - set(weights))
    if missing:
        raise ConfigError(f"no weight for scorer(s) {missing}: give each scorer a weight (0 disables it)")
    active = {name: float(w) for name, w in weights.items() if float(w) != 0.0}
    if not active:
        raise ConfigError("every scorer has weight 0: give at least one scorer (e.g. 'caption') a weight")
    return active


def _validate(ctx: DecodeContext, max_len: int, min_len: int, nbest: int) -> None:
    """The decode configuration's own checks (:class:`DecodeConfig`), for callers that pass the values here."""
    if ctx.batch_size < 1:
        raise ConfigError(f"batch_size={ctx.batch_size} is invalid: decode at least one video")
    DecodeConfig(beam_size=ctx.beam_size, nbest=nbest, max_len=max_len, min_len=min_len)


@torch.no_grad()
def beam_search(
    scorers: Mapping[str, Scorer],
    weights: Mapping[str, float],
    ctx: DecodeContext,
    *,
    bos_id: int,
    eos_id: int,
    max_len: int = 20,
    min_len: int = 1,
    length_norm: bool = True,
    nbest: int = 1,
    processors: Sequence[Processor] = (),
    decode_words: Callable[[list[int]], str] | None = None,
) -> list[list[Hypothesis]]:
    """Decode ``ctx.batch_size`` videos with ``ctx.beam_size`` beams each.

    Args:
        scorers: name -> scorer (see ``fusion.decoding.scorer``).
        weights: name -> weight, one per scorer; a weight of 0 removes the scorer.
        ctx: batch size, beam size, device and the inputs the scorers read.
        bos_id: begin-of-sentence id (the first token of every prefix).
        eos_id: end-of-sentence id.
        max_len: the most words per caption (EOS forced after them).
        min_len: the fewest words before EOS is allowed.
        length_norm: rank finished hypotheses by total / (words + 1) instead of total.
        nbest: captions returned per video (<= beam size).
        processors: extra next-token constraints (``fusion.decoding.processors``).
        decode_words: word ids -> caption text (e.g. ``Vocabulary.decode``).

    Returns:
        Per video, ``nbest`` hypotheses, best first.
    """
    _validate(ctx, max_len, min_len, nbest)
    active = _active_scorers(scorers, weights)
    names = list(active)
    B, K, device = ctx.batch_size, ctx.beam_size, ctx.device
    N = B * K
    weight_vec = torch.tensor([active[n] for n in names], dtype=torch.float64, device=device)  # (S,)
    finals = {n: final_score_of(scorers[n]) for n in names}
    constraints = [*processors, MinLengthProcessor(min_len, eos_id), MaxLengthProcessor(max_len, eos_id)]
    pool = _Finished(B, K, names, dict(active), weight_vec, length_norm, decode_words)

    states: dict[str, Any] = {n: scorers[n].init_state(ctx) for n in names}
    tokens = torch.full((N, 1), bos_id, dtype=torch.long, device=device)  # (N, 1)
    total = torch.zeros(B, K, dtype=torch.float64, device=device)
    total[:, 1:] = NEG_INF  # all beams hold the same BOS: expand beam 0 only at the first step
    total = total.view(N)  # (N,)
    per_scorer = torch.zeros(len(names), N, dtype=torch.float64, device=device)  # (S, N) unweighted sums
    video_offset = (torch.arange(B, device=device) * K).unsqueeze(1)  # (B, 1)

    for _ in range(max_len + 1):
        step_scores = []
        for n in names:
            s, states[n] = scorers[n].score(tokens, states[n])
            step_scores.append(s.to(torch.float64))
        stacked = torch.stack(step_scores)  # (S, N, V)
        V = stacked.shape[-1]
        fused = (weight_vec.view(-1, 1, 1) * stacked).sum(0)  # (S, N, V) -> (N, V)
        allowed = apply_processors(constraints, tokens, fused)  # (N, V), banned tokens at -inf
        cand = (total.unsqueeze(1) + allowed).view(B, K * V)  # (B, K*V)
        top_scores, top_flat = cand.topk(min(2 * K, K * V), dim=1)  # (B, 2K)
        parent = video_offset + torch.div(top_flat, V, rounding_mode="floor")  # (B, 2K) global rows
        word = top_flat % V  # (B, 2K)
        is_eos = word == eos_id

        # EOS candidates ranked within their video's top K end hypotheses.
        ranks = torch.arange(parent.shape[1], device=device)  # (2K,)
        ending = is_eos & (ranks < K) & torch.isfinite(top_scores)  # (B, 2K)
        if bool(ending.any()):
            bonus = _final_bonus(names, finals, states, tokens, eos_id)  # (S, N) or None
            for b, j in ending.nonzero().tolist():
                row, w = int(parent[b, j]), int(word[b, j])
                breakdown = per_scorer[:, row] + stacked[:, row, w]  # (S,)
                pool.add(b, tokens[row, 1:].tolist(), breakdown, None if bonus is None else bonus[:, row])
        if pool.all_done:
            break
        # Running beams: the first K non-EOS candidates of each video, in rank order.
        order = torch.where(is_eos, ranks + parent.shape[1], ranks).argsort(dim=1)[:, :K]  # (B, K)
        sel_parent = parent.gather(1, order).reshape(N)  # (N,)
        sel_word = word.gather(1, order).reshape(N)  # (N,)
        total = top_scores.gather(1, order).reshape(N)  # (N,)
        per_scorer = per_scorer[:, sel_parent] + stacked[:, sel_parent, sel_word]  # (S, N)
        tokens = torch.cat([tokens[sel_parent], sel_word.unsqueeze(1)], dim=1)  # (N, t+1)
        states = {n: scorers[n].select_state(states[n], sel_parent) for n in names}
    return pool.best(nbest)


def _final_bonus(names: list[str], finals: dict[str, Any], states: dict[str, Any], tokens: Tensor,
                 eos_id: int) -> Tensor | None:
    """Per scorer, ``final_score`` of every row if it ended now: (S, N) float64, or None."""
    if not any(finals.values()):
        return None
    ended = torch.cat([tokens, torch.full_like(tokens[:, :1], eos_id)], dim=1)  # (N, t+1)
    zeros = torch.zeros(tokens.shape[0], dtype=torch.float64, device=tokens.device)  # (N,)
    return torch.stack([finals[n](ended, states[n]).to(torch.float64) if finals[n] else zeros for n in names])


class _Finished:
    """The finished hypotheses of every video; a video is done once it holds K of them."""

    def __init__(self, batch_size: int, beam_size: int, names: list[str], weights: dict[str, float],
                 weight_vec: Tensor, length_norm: bool, decode_words: Callable[[list[int]], str] | None) -> None:
        self.hyps: list[list[Hypothesis]] = [[] for _ in range(batch_size)]
        self.done = [False] * batch_size
        self.beam_size, self.names, self.weights, self.weight_vec = beam_size, names, weights, weight_vec
        self.length_norm, self.decode_words = length_norm, decode_words

    @property
    def all_done(self) -> bool:
        return all(self.done)

    def add(self, video: int, ids: list[int], breakdown: Tensor, final: Tensor | None) -> None:
        """Add a hypothesis: word ids, per-scorer sums (S,) incl. the EOS step, final scores (S,)."""
        if self.done[video]:
            return
        if final is not None:
            breakdown = breakdown + final
        total = float((self.weight_vec * breakdown).sum())
        length = len(ids) + 1
        self.hyps[video].append(Hypothesis(
            tokens=ids,
            words=self.decode_words(ids) if self.decode_words else " ".join(map(str, ids)),
            score=total / length if self.length_norm else total,
            scores={n: float(v) for n, v in zip(self.names, breakdown.tolist())},
            total=total,
            weights=dict(self.weights),
        ))
        self.done[video] = len(self.hyps[video]) >= self.beam_size

    def best(self, nbest: int) -> list[list[Hypothesis]]:
        """Per video, the ``nbest`` best hypotheses by ranking score."""
        return [sorted(h, key=lambda x: x.score, reverse=True)[:nbest] for h in self.hyps]
