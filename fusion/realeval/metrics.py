"""Per-clip scores of captions on the real development clips.

Every system is scored on the same clips in one call of :func:`score_clips`:

- BLEU-4, METEOR, ROUGE-L and CIDEr per clip, from :func:`fusion.evaluation.coco_metrics`
  (pycocoevalcap after the PTB tokenizer). CIDEr's IDF comes from the references of the clips
  scored together (pycocoevalcap counts in how many clips' reference sets an n-gram occurs,
  and ``log(#clips)`` is the ceiling). With 26 clips that IDF is coarse, so it is kept the
  same for every system and every subset: :func:`score_clips` always scores the whole
  development set (every clip needs a caption), and subset figures (the 18 clips with sound)
  are means of those per-clip scores, never a re-run of CIDEr on the subset. A clip's CIDEr
  then depends only on its caption, its references and that fixed IDF table.
- **Noun precision**: the share of the caption's distinct nouns whose lemma occurs among the
  clip's references, where a reference word counts under its own form and every WordNet noun
  lemma ``morphy`` gives it (``dogs`` -> ``dog``). A caption word is a noun when WordNet has a
  noun lemma for it whose tagged noun uses are at least its verb, adjective and adverb uses
  (``man``, ``guitar``; not ``playing`` or ``talking``) and it is not a function word: the
  rule of :func:`data_prep.audible_nouns.wordnet.noun_lemma`, with no part-of-speech tagger
  (none ships offline). A caption without nouns has no noun precision (``None``): means are
  over the clips with one, and the count of clips without is reported beside them.
- **Repeated words**: content words (not function words) said more than once in a caption.

The WordNet side comes in through the small :class:`NounLexicon` protocol, so this module
needs no WordNet files itself (``data_prep.devclips.wordnet_nouns`` builds one).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from fusion.errors import DataError
from fusion.text import tokenize

logger = logging.getLogger(__name__)

CLIP_METRICS: tuple[str, ...] = ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
NOUN_PRECISION = "noun_precision"
REPEATS = "repeated_words"


class NounLexicon(Protocol):
    """What noun precision needs to know about English words."""

    def noun(self, word: str) -> str | None:
        """The noun lemma of a caption word used as a noun (``dogs`` -> ``dog``), else None."""

    def lemmas(self, word: str) -> set[str]:
        """Every noun lemma a reference word may stand for (``dogs`` -> ``{"dog"}``; may be empty)."""

    def function_word(self, word: str) -> bool:
        """Whether the word is a function word (articles, auxiliaries, prepositions, ...)."""


@dataclass
class NounMatch:
    """Noun precision of one caption.

    Attributes:
        nouns: the caption's distinct noun lemmas, in order.
        found: those found among the references.
    """

    nouns: list[str]
    found: list[str]

    @property
    def precision(self) -> float | None:
        """``len(found) / len(nouns)``; None for a caption without nouns."""
        return len(self.found) / len(self.nouns) if self.nouns else None


def reference_lemmas(references: Sequence[str], lexicon: NounLexicon) -> set[str]:
    """Every word of the references under its own form and each of its noun lemmas."""
    words = {w for ref in references for w in tokenize(ref)}
    return words | {lemma for w in words for lemma in lexicon.lemmas(w)}


def noun_match(caption: str, ref_words: set[str], lexicon: NounLexicon) -> NounMatch:
    """The caption's nouns and which of them the references name (see the module docstring)."""
    nouns: list[str] = []
    for word in tokenize(caption):
        lemma = lexicon.noun(word)
        if lemma is not None and lemma not in nouns:
            nouns.append(lemma)
    return NounMatch(nouns=nouns, found=[n for n in nouns if n in ref_words])


def repeated_words(caption: str, lexicon: NounLexicon) -> list[str]:
    """Content words said more than once (``a man and a man`` -> ``["man"]``)."""
    counts = Counter(w for w in tokenize(caption) if not lexicon.function_word(w))
    return sorted(w for w, c in counts.items() if c > 1)


@dataclass
class ClipScores:
    """One system's scores on the development clips.

    Attributes:
        predictions: clip id -> caption.
        per_clip: clip id -> metric -> value (``CLIP_METRICS``, ``noun_precision`` (None
            without nouns), ``repeated_words`` (count)).
        corpus: coco-caption's corpus-level metrics over all the clips (BLEU and METEOR at
            corpus level are not the mean of the per-clip scores).
        nouns: clip id -> :class:`NounMatch`.
    """

    predictions: dict[str, str]
    per_clip: dict[str, dict[str, Any]]
    corpus: dict[str, float]
    nouns: dict[str, NounMatch] = field(default_factory=dict)

    def values(self, metric: str, ids: Sequence[str]) -> dict[str, float]:
        """clip id -> value of ``metric`` for the given clips that have one."""
        return {i: float(v) for i in ids if (v := self.per_clip[i].get(metric)) is not None}

    def mean(self, metric: str, ids: Sequence[str] | None = None) -> float | None:
        """Mean over the clips (all by default) that have a value; None if none has."""
        vals = list(self.values(metric, list(self.per_clip) if ids is None else ids).values())
        return float(np.mean(vals)) if vals else None

    def summary(self, ids: Sequence[str] | None = None) -> dict[str, Any]:
        """Per-clip means of every metric, clips without nouns and with repeats, over ``ids``."""
        ids = list(self.per_clip) if ids is None else list(ids)
        out: dict[str, Any] = {m: self.mean(m, ids) for m in (*CLIP_METRICS, NOUN_PRECISION)}
        out["n_clips"] = len(ids)
        out["clips_without_nouns"] = sum(self.per_clip[i][NOUN_PRECISION] is None for i in ids)
        out["clips_with_repeats"] = sum(bool(self.per_clip[i][REPEATS]) for i in ids)
        return out


def score_clips(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]],
                lexicon: NounLexicon) -> ClipScores:
    """Score one caption per development clip: coco metrics, noun precision, repeats.

    Args:
        predictions: clip id -> caption, for every clip of ``references`` (the fixed CIDEr IDF
            needs the whole set; see the module docstring).
        references: clip id -> reference captions.
        lexicon: the noun lexicon.

    Returns:
        The :class:`ClipScores`. Raises DataError when a clip lacks a caption.
    """
    from fusion.evaluation import coco_metrics

    missing = [i for i in references if i not in predictions]
    if missing:
        raise DataError(f"no caption for {len(missing)} development clip(s) (e.g. {missing[0]}); every system "
                        "captions every clip, so that CIDEr's IDF is the same for all")
    preds = {i: predictions[i] for i in references}
    result = coco_metrics(preds, references)
    per_clip: dict[str, dict[str, Any]] = {}
    nouns: dict[str, NounMatch] = {}
    for i, caption in preds.items():
        nouns[i] = noun_match(caption, reference_lemmas(references[i], lexicon), lexicon)
        row: dict[str, Any] = {m: result.per_video[i][m] for m in CLIP_METRICS}
        row[NOUN_PRECISION] = nouns[i].precision
        row[REPEATS] = len(repeated_words(caption, lexicon))
        per_clip[i] = row
    corpus = {m: result.metrics[m] for m in CLIP_METRICS}
    return ClipScores(predictions=preds, per_clip=per_clip, corpus=corpus, nouns=nouns)
