"""Caption metrics: coco-caption (BLEU-1..4, METEOR, ROUGE-L, CIDEr), benchmark judgements,
and caption diagnostics.

``coco_metrics`` follows pycocoevalcap's ``COCOEvalCap.evaluate`` in memory: PTB
tokenization, then each scorer's ``compute_score(gts, res)``, on pycocoevalcap's scale
(0-1; CIDEr 0-10). METEOR runs in one JVM per process (``fusion.coco.get_meteor``).
SPICE is left out: it downloads Stanford CoreNLP models at first use, which cannot work
offline. Per-video scores are kept for paired significance tests.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fusion.captions_io import describe_ids
from fusion.errors import DataError

logger = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
SPICE_NOTE = "SPICE omitted: it downloads Stanford CoreNLP models at first use and cannot run offline"
# Stands in for an empty caption after tokenization: pycocoevalcap's ROUGE divides by the
# hypothesis length. It matches no reference word, so every metric scores it ~0.
EMPTY_CAPTION = "emptycaption"


@dataclass
class EvalResult:
    """Corpus metrics and per-video scores.

    Attributes:
        metrics: metric name (``METRICS``) -> corpus score.
        per_video: video id -> metric name -> that video's score.
        n_videos: number of scored videos.
        notes: caveats worth showing a user (SPICE left out, empty captions).
    """

    metrics: dict[str, float]
    per_video: dict[str, dict[str, float]]
    n_videos: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """``{"Bleu_1": f, ..., "CIDEr": f, "n_videos": n, "notes": [...]}``."""
        return {**self.metrics, "n_videos": self.n_videos, "notes": list(self.notes)}


def check_ids(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> None:
    """DataError unless predictions and references cover the same ids, each with a reference."""
    if not predictions:
        raise DataError("no predictions to score: give at least one (id, caption)")
    extra = [i for i in predictions if i not in references]
    if extra:
        raise DataError(f"predictions without references, {describe_ids(extra)}; check the ids or the references file")
    missing = [i for i in references if i not in predictions]
    if missing:
        raise DataError(f"references without predictions, {describe_ids(missing)}; caption every video "
                        "or score only the predicted ids (fusion score --ignore-missing)")
    empty = [i for i, refs in references.items() if not refs]
    if empty:
        raise DataError(f"videos without reference captions, {describe_ids(empty)}; give each at least one")


def coco_metrics(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> EvalResult:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr of one caption per video against its references.

    Args:
        predictions: video id -> predicted caption.
        references: video id -> reference captions; the same ids as ``predictions``.

    Returns:
        The corpus metrics and per-video scores. Raises DataError for mismatched ids and
        JavaError when Java is missing (PTB tokenizer, METEOR).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    from fusion.coco import get_meteor, ptb_tokenize

    check_ids(predictions, references)
    ids = list(predictions)
    gts = ptb_tokenize({i: list(references[i]) for i in ids})
    res = ptb_tokenize({i: [predictions[i]] for i in ids})
    notes = [SPICE_NOTE]
    empty = [i for i in ids if not res[i][0]]
    if empty:
        notes.append(f"{len(empty)} empty caption(s) scored as a word matching nothing")
        for i in empty:
            res[i] = [EMPTY_CAPTION]
    gts = {i: [r if r else EMPTY_CAPTION for r in gts[i]] for i in ids}

    metrics: dict[str, float] = {}
    per_video: dict[str, dict[str, float]] = {i: {} for i in ids}
    bleu, bleu_per = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        metrics[f"Bleu_{n + 1}"] = float(bleu[n])
        for i, s in zip(ids, bleu_per[n]):
            per_video[i][f"Bleu_{n + 1}"] = float(s)
    for name, scorer in (("METEOR", get_meteor()), ("ROUGE_L", Rouge()), ("CIDEr", Cider())):
        corpus, per = scorer.compute_score(gts, res)
        metrics[name] = float(corpus)
        for i, s in zip(ids, per):
            per_video[i][name] = float(s)
    logger.info("scored %d videos: %s", len(ids), {k: round(v, 4) for k, v in metrics.items()})
    return EvalResult(metrics=metrics, per_video=per_video, n_videos=len(ids), notes=notes)


def is_benchmark(entries: Iterable[Any]) -> bool:
    """Whether the entries carry the audio-visual benchmark's meta (objects + audio kind)."""
    entries = list(entries)
    return bool(entries) and all("objects" in e.meta and "audio_kind" in e.meta for e in entries)


def benchmark_metrics(predictions: Mapping[str, str], entries: Sequence[Any]) -> dict[str, Any]:
    """The benchmark's judgements (``fusion.benchmark.judge_caption``) over the predicted clips.

    Args:
        predictions: video id -> caption.
        entries: ManifestEntry objects of those videos (``meta`` names objects and sound).

    Returns:
        ``{}`` when the entries are not benchmark clips, else ``sound_accuracy`` (clips with
        a sound source whose caption names it), ``visual_accuracy`` (shape, colour and action
        right), ``false_sound_rate`` (captions naming a source that is not there, over all
        clips), ``false_sound_rate_no_source`` (the same over silent and soundless clips) and
        the counts behind them.
    """
    from fusion.benchmark import judge_caption

    scored = [e for e in entries if e.id in predictions]
    if not is_benchmark(scored):
        return {}
    judged = [(e, judge_caption(predictions[e.id], e.meta)) for e in scored]
    with_source = [j for _, j in judged if j.sound_named is not None]
    no_source = [j for _, j in judged if j.sound_named is None]

    def share(flags: Sequence[bool]) -> float | None:
        return sum(flags) / len(flags) if flags else None

    return {
        "sound_accuracy": share([bool(j.sound_named) for j in with_source]),
        "visual_accuracy": share([j.visual_correct for _, j in judged]),
        "false_sound_rate": share([j.false_sound for _, j in judged]),
        "false_sound_rate_no_source": share([j.false_sound for j in no_source]),
        "n_with_sound_source": len(with_source),
        "n_without_sound_source": len(no_source),
    }


def benchmark_per_video(predictions: Mapping[str, str], entries: Sequence[Any]) -> dict[str, dict[str, float]]:
    """Per benchmark clip: sound_named (1/0, absent without a source), visual_correct, false_sound."""
    from fusion.benchmark import judge_caption

    scored = [e for e in entries if e.id in predictions]
    if not is_benchmark(scored):
        return {}
    out: dict[str, dict[str, float]] = {}
    for e in scored:
        j = judge_caption(predictions[e.id], e.meta)
        row = {"visual_correct": float(j.visual_correct), "false_sound": float(j.false_sound)}
        if j.sound_named is not None:
            row["sound_named"] = float(j.sound_named)
        out[e.id] = row
    return out


def score_predictions(predictions: Mapping[str, str], entries: Sequence[Any]) -> tuple[EvalResult, dict[str, Any], dict[str, dict[str, float]]]:
    """Score predicted captions of manifest entries: coco metrics + the benchmark's judgements.

    Args:
        predictions: video id -> caption, for (at least) every entry with references.
        entries: the ManifestEntry objects decoded (references = their captions).

    Returns:
        (coco result, metrics dict: the coco metrics + n_videos + notes + benchmark metrics
        where the manifest has them, per-video scores: coco metrics + benchmark judgements).

    Raises:
        DataError: no entry has reference captions.
    """
    refs = {e.id: list(e.captions) for e in entries if e.captions}
    if not refs:
        raise DataError("the videos to score have no reference captions: evaluate a split with captions")
    result = coco_metrics({i: predictions[i] for i in refs}, refs)
    metrics: dict[str, Any] = result.to_dict()
    metrics.update(benchmark_metrics(predictions, entries))
    per_video = {vid: dict(scores) for vid, scores in result.per_video.items()}
    for vid, judged in benchmark_per_video(predictions, entries).items():
        per_video.setdefault(vid, {}).update(judged)
    return result, metrics, per_video


def caption_diagnostics(predictions: Mapping[str, str], train_captions: Iterable[str]) -> dict[str, Any]:
    """How varied and how novel the captions are (ImageCaptioning.pytorch-style diagnostics).

    Args:
        predictions: video id -> caption.
        train_captions: the training captions (compared after ``fusion.text.normalize``).

    Returns:
        ``vocab_used`` (distinct words), ``novel_share`` (captions not found verbatim among
        the training captions), ``unique_share`` (distinct captions / captions),
        ``mean_length`` (words), ``n_captions``.
    """
    from fusion.text import normalize

    norm = [normalize(c) for c in predictions.values()]
    train = {normalize(c) for c in train_captions}
    words = [w for c in norm for w in c.split()]
    n = len(norm)
    return {
        "vocab_used": len(set(words)),
        "novel_share": (sum(c not in train for c in norm) / n) if n else 0.0,
        "unique_share": (len(set(norm)) / n) if n else 0.0,
        "mean_length": (len(words) / n) if n else 0.0,
        "n_captions": n,
    }
