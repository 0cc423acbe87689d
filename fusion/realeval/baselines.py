"""Baselines for captioning real clips without paired data (issue 20, 3c).

- :func:`most_frequent_caption`: the corpus's most frequent caption, said for every clip.
- :func:`best_constant_caption`: the best constant caption *chosen on the corpus*: among the
  most frequent corpus captions, the one with the highest CIDEr as the caption of every clip
  of the corpus's validation split (references: that clip's corpus captions). The development
  clips play no part in the choice.
- :func:`blind_lm_caption`: beam search with the corpus LM as the only scorer (no evidence):
  the LM's own favourite sentence, the same for every clip.
- :class:`RetrievalIndex`: nearest-caption retrieval by concept overlap: each corpus caption's
  linked words (the concept-link table's keys) are scored by the clip's evidence for them, and
  the caption with the best mean evidence (plus ``prior_weight`` x log of its corpus count) wins.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from fusion.errors import DataError
from fusion.text import tokenize

logger = logging.getLogger(__name__)

CONSTANT_CANDIDATES = 50  # most frequent corpus captions tried as the best constant caption


def caption_counts(captions: Iterable[str]) -> Counter[str]:
    """How often each caption (words joined by one space) occurs."""
    return Counter(" ".join(tokenize(c)) for c in captions if tokenize(c))


def most_frequent_caption(counts: Counter[str]) -> str:
    """The most frequent caption (ties: the first seen). DataError for an empty corpus."""
    if not counts:
        raise DataError("the caption corpus is empty; build it with python -m data_prep.caption_corpus")
    return counts.most_common(1)[0][0]


def constant_cider(caption: str, references: Mapping[str, Sequence[str]]) -> float:
    """CIDEr-D (pycocoevalcap) of ``caption`` as the caption of every clip of ``references``."""
    from pycocoevalcap.cider.cider import Cider

    gts = {k: [" ".join(tokenize(r)) for r in refs] for k, refs in references.items()}
    score, _ = Cider().compute_score(gts, {k: [caption] for k in gts})
    return float(score)


def best_constant_caption(counts: Counter[str], references: Mapping[str, Sequence[str]],
                          candidates: int = CONSTANT_CANDIDATES) -> tuple[str, dict[str, float]]:
    """The frequent corpus caption with the best CIDEr as a constant over the corpus's own clips.

    Args:
        counts: corpus caption counts (the candidates are its ``candidates`` most frequent).
        references: corpus clip -> its captions (the corpus's validation split).
        candidates: how many frequent captions to try.

    Returns:
        (the chosen caption, candidate -> its CIDEr).
    """
    if not references:
        raise DataError("no corpus clips to choose a constant caption on; the corpus needs a val split")
    table = {c: constant_cider(c, references) for c, _ in counts.most_common(candidates)}
    best = max(table, key=lambda c: (table[c], counts[c]))
    logger.info("best constant caption on %d corpus clips: %r (CIDEr %.3f)", len(references), best, table[best])
    return best, table


def blind_lm_caption(lm: Any, beam_size: int = 5, max_len: int = 20, no_repeat_ngram_size: int = 2) -> str:
    """The caption beam search finds with the LM as its only scorer (no evidence at all).

    Args:
        lm: a :class:`fusion.models.lm.WordLM` (its own vocabulary is the caption vocabulary).
        beam_size: beams.
        max_len: the most words.
        no_repeat_ngram_size: ban repeated n-grams of this size (0 = allow).
    """
    from fusion.decoding.beam_search import beam_search
    from fusion.decoding.lm_scorer import LMScorer
    from fusion.decoding.processors import caption_processors
    from fusion.decoding.scorer import DecodeContext

    vocab = lm.vocab
    ctx = DecodeContext(batch_size=1, beam_size=beam_size)
    processors = caption_processors(vocab.pad_id, vocab.bos_id, vocab.unk_id, no_repeat_ngram_size, True)
    hyps = beam_search({"lm": LMScorer(lm, vocab)}, {"lm": 1.0}, ctx, bos_id=vocab.bos_id, eos_id=vocab.eos_id,
                       max_len=max_len, processors=processors, decode_words=vocab.decode)
    return hyps[0][0].words


class RetrievalIndex:
    """Corpus captions indexed by their linked concepts, for retrieval by the clip's evidence.

    Args:
        counts: corpus caption -> count (captions with no linked word are left out).
        key_of: caption word -> its concept key (``dogs`` -> ``dog``), None if unlinked.
        max_words: longer captions are left out.
    """

    def __init__(self, counts: Counter[str], key_of: Callable[[str], str | None], max_words: int = 12) -> None:
        keys: dict[str, int] = {}
        rows: list[list[int]] = []
        kept: list[str] = []
        for caption in counts:
            words = caption.split()
            linked = sorted({keys.setdefault(k, len(keys)) for w in words if (k := key_of(w)) is not None})
            if linked and len(words) <= max_words:
                kept.append(caption)
                rows.append(linked)
        if not kept:
            raise DataError("no corpus caption has a linked word; check the concept-link table")
        self.captions = kept
        self.keys = list(keys)
        self.key_index = keys
        self.rows = rows
        self.log_count = np.array([math.log(counts[c]) for c in kept], dtype=np.float64)  # (M,)
        self._by_key: dict[int, list[int]] = defaultdict(list)
        for r, linked in enumerate(rows):
            for k in linked:
                self._by_key[k].append(r)
        self._sizes = np.array([len(r) for r in rows], dtype=np.float64)  # (M,)
        logger.info("retrieval index: %d captions over %d linked keys", len(kept), len(keys))

    def scores(self, evidence: Mapping[str, float], prior_weight: float = 0.0) -> np.ndarray:
        """(M,) mean evidence of each caption's linked keys (missing evidence = 0) + prior."""
        total = np.zeros(len(self.captions), dtype=np.float64)  # (M,)
        for key, value in evidence.items():
            k = self.key_index.get(key)
            if k is not None and value:
                total[self._by_key[k]] += value
        return total / self._sizes + prior_weight * self.log_count

    def retrieve(self, evidence: Mapping[str, float], prior_weight: float = 0.0) -> str:
        """The best-scoring corpus caption for one clip's evidence (key -> log-odds)."""
        return self.captions[int(np.argmax(self.scores(evidence, prior_weight)))]
