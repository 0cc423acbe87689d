"""Captions and scores on a held-out split, for model selection during training.

Under torchrun the work is sharded by whole batches (batch i on rank i mod N, so each batch
is computed exactly as one process computes it); the loss sums are all-reduced, the captions
gathered on rank 0, which scores them once (one METEOR JVM) and shares the scores.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from fusion import distributed as dist
from fusion.data import CaptionDataset, collate
from fusion.models.s2vt import S2VT

if TYPE_CHECKING:
    from fusion.text import Vocabulary

log = logging.getLogger(__name__)


@torch.no_grad()
def predict_captions(
    model: S2VT,
    dataset: CaptionDataset,
    vocab: Vocabulary,
    *,
    beam_size: int = 1,
    max_len: int = 20,
    batch_size: int = 64,
    limit: int | None = None,
    device: torch.device | str = "cpu",
    sharded: bool = False,
) -> dict[str, str]:
    """One caption per video of ``dataset`` (greedy for beam 1, else the batched beam search).

    Args:
        sharded: decode only this rank's batches (:func:`fusion.distributed.batch_starts`).

    Returns:
        video id -> caption text.
    """
    was_training = model.training
    model.eval()
    out: dict[str, str] = {}
    n = len(dataset.records) if limit is None else min(limit, len(dataset.records))
    starts = dist.batch_starts(n, batch_size) if sharded else range(0, n, batch_size)
    for start in starts:
        batch = collate(dataset.records[start : min(n, start + batch_size)], model.frame_dim, model.audio_dim)
        batch = batch.to(device)
        if beam_size == 1:
            seqs = model.greedy(batch, vocab.bos_id, vocab.eos_id, max_len)
            out.update({vid: vocab.decode(seq) for vid, seq in zip(batch.ids, seqs)})
            continue
        from fusion.decoding.beam_search import beam_search
        from fusion.decoding.scorer import DecodeContext
        from fusion.decoding.scorers import CaptionScorer

        ctx = DecodeContext(batch_size=len(batch), beam_size=beam_size, device=device)
        hyps = beam_search({"caption": CaptionScorer(model, batch)}, {"caption": 1.0}, ctx, bos_id=vocab.bos_id,
                           eos_id=vocab.eos_id, max_len=max_len, decode_words=vocab.decode)
        out.update({vid: vocab.decode(h[0].tokens) for vid, h in zip(batch.ids, hyps)})
    model.train(was_training)
    return out


@torch.no_grad()
def loss_sums(model: S2VT, dataset: CaptionDataset, batch_size: int = 64, device: torch.device | str = "cpu",
              sharded: bool = False) -> tuple[float, int]:
    """(sum of token cross-entropies, token count) over the pairs (this rank's batches if ``sharded``)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    starts = dist.batch_starts(len(dataset), batch_size) if sharded else range(0, len(dataset), batch_size)
    for start in starts:
        batch = dataset.pair_batch(range(start, min(len(dataset), start + batch_size)), model.frame_dim,
                                   model.audio_dim).to(device)
        logits = model(batch)  # (B, L-1, V)
        targets = batch.tokens[:, 1:]  # (B, L-1)
        loss = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=dataset.vocab.pad_id, reduction="sum")
        total += float(loss)
        count += int((targets != dataset.vocab.pad_id).sum())
    model.train(was_training)
    return total, count


def validate(
    model: S2VT,
    dataset: CaptionDataset,
    vocab: Vocabulary,
    metric: str,
    *,
    beam_size: int = 1,
    max_len: int = 20,
    batch_size: int = 64,
    limit: int | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Validation scores: always ``val_loss``; for a coco metric also all coco metrics.

    Returns:
        ``{"val_loss": float, "value": <the selection metric>, ...coco metrics, "sample": caption}``;
        on the benchmark (entries whose ``meta`` names objects and sound) also its
        ``sound_accuracy``, ``visual_accuracy`` and ``false_sound_rate``.
    """
    preds: dict[str, str] = {}
    with dist.together():  # this rank's share; an error on any rank stops all of them
        total, count = loss_sums(model, dataset, batch_size, device, sharded=True)
        if metric != "loss":
            preds = predict_captions(model, dataset, vocab, beam_size=beam_size, max_len=max_len,
                                     batch_size=batch_size, limit=limit, device=device, sharded=True)
    total, count = dist.all_reduce_sum([total, count])
    result: dict[str, Any] = {"val_loss": total / max(count, 1)}
    if metric == "loss":
        result["value"] = result["val_loss"]
        return result
    parts = dist.gather_to_main(preds)
    with dist.together():
        if dist.is_main():
            assert parts is not None
            merged = {k: v for part in parts for k, v in part.items()}
            result = _score(result, {e.id: merged[e.id] for e in dataset.entries if e.id in merged}, dataset, metric)
    return dist.broadcast(result)


def _score(result: dict[str, Any], preds: dict[str, str], dataset: CaptionDataset, metric: str) -> dict[str, Any]:
    """``result`` with the coco metrics of ``preds`` (and the benchmark's judgements) added."""
    from fusion.evaluation import benchmark_metrics, coco_metrics

    refs = dataset.references()
    scores = coco_metrics(preds, {vid: refs[vid] for vid in preds})
    result.update({k: float(v) for k, v in scores.metrics.items()})
    result["value"] = result[metric]
    judged = benchmark_metrics(preds, dataset.entries)
    result.update({k: judged[k] for k in ("sound_accuracy", "visual_accuracy", "false_sound_rate")
                   if isinstance(judged.get(k), float)})
    first = next(iter(preds))
    result["sample"] = f"{first}: {preds[first]}"
    if not math.isfinite(result["value"]):
        log.warning("validation %s is %s", metric, result["value"])
    return result
