"""Caption a clip by the consensus of the corpus clips whose captions name what it shows and sounds like.

The k-nearest-neighbour consensus captioner of Devlin et al. ("Exploring nearest neighbor
approaches for image captioning", 2015), made zero-shot: with no video of the corpus at hand,
a corpus clip is represented by *what its captions say*, and a real clip by *what its
posteriors say*, both over the same linked caption words (the concept-link table's keys):

- each corpus clip ``j`` (its 20-40 human captions) is a row ``F[j, k]``: the share of its
  captions that use linked word ``k`` (``dog``, ``guitar``, ``talking``, ``kitchen``);
- a real clip's evidence ``e[k]`` is the log-odds evidence of :class:`fusion.concepts.ConceptEvidence`
  (frames' ImageNet; the sound's SoundNet ImageNet / Places2 and YAMNet AudioSet), the frames'
  and the sound's weighted by ``visual_weight`` and ``audio_weight``; a clip without an audio
  stream has only the frames';
- corpus clips are ranked by ``F[j] . e / (sum_k F[j, k] + 1)`` (evidence per linked mention,
  shrunk for clips whose captions name little) and the ``neighbours`` best are kept;
- every caption of those clips is a candidate, scored by its mean similarity to the captions of
  the *other* neighbour clips (CIDEr's sentence similarity: cosine of TF-IDF vectors of 1- to
  4-grams, averaged over n, IDF over the corpus clips). The caption most of the neighbours' captions agree
  with wins: consensus keeps the words the neighbours share (``a man is playing a guitar``) and
  drops one annotator's details.

Candidates that would claim a sound for a clip without an audio stream
(:data:`fusion.decoding.guards.SOUND_CLAIM_WORDS`, :data:`HEARD_WORDS`), or repeat a content word, are never chosen;
they still vote (a silent clip's neighbours' ``a dog is barking`` still supports ``a dog is sitting``).
Where no caption of the neighbours passes, the candidates are those of the nearest corpus clip
beyond them with one that does, and the neighbours vote on them.

The index (:class:`CaptionIndex`) is built once from the caption corpus by ``fusion zeroshot
build`` and saved in the model folder as ``neighbours.npz`` + ``neighbours.json.gz``.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusion.errors import CheckpointError, DataError
from fusion.io import atomic_write_bytes
from fusion.text import tokenize

logger = logging.getLogger(__name__)

INDEX_FORMAT = "fusion.caption_index/1"
MATRIX_FILE = "neighbours.npz"
TEXT_FILE = "neighbours.json.gz"
MAX_N = 4  # n-grams of 1..4 words, as CIDEr
MIN_WORDS, MAX_WORDS = 3, 15  # candidate captions' length


def ngrams(words: Sequence[str], n: int) -> list[str]:
    """The n-grams of ``words`` (joined by spaces)."""
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


@dataclass
class Candidate:
    """One candidate caption: its text, consensus score and the corpus clip it came from."""

    caption: str
    score: float
    clip: str


@dataclass
class Consensus:
    """What :meth:`CaptionIndex.caption` found for one clip.

    Attributes:
        candidates: the best candidates, best first.
        neighbours: ``(corpus clip, score)`` of the nearest clips, nearest first.
        drivers: ``(linked word, contribution)``: how much each word's evidence raised the neighbours'
            scores (the mean over the neighbours of share x evidence), largest first.
    """

    candidates: list[Candidate]
    neighbours: list[tuple[str, float]]
    drivers: list[tuple[str, float]] = field(default_factory=list)


class CaptionIndex:
    """Corpus clips as rows of linked-word shares, with their captions and the corpus's n-gram document counts.

    Args:
        clips: corpus clip keys (``msrvtt:video12``).
        captions: per clip, its candidate captions (tokenised, words joined by spaces).
        keys: the linked words (columns of ``matrix``).
        matrix: (N, K) float32, share of each clip's captions that use each linked word.
        doc_counts: per n (1..4), n-gram -> in how many clips' captions it occurs (only counts >= 2 kept).
    """

    def __init__(self, clips: Sequence[str], captions: Sequence[Sequence[str]], keys: Sequence[str],
                 matrix: Any, doc_counts: Sequence[Mapping[str, int]]) -> None:
        import scipy.sparse as sp

        self.clips = list(clips)
        self.row_of = {c: i for i, c in enumerate(self.clips)}
        self.captions = [list(c) for c in captions]
        self.keys = list(keys)
        self.key_index = {k: i for i, k in enumerate(self.keys)}
        self.matrix = sp.csr_matrix(matrix, dtype=np.float32)  # (N, K)
        self.doc_counts = [dict(d) for d in doc_counts]
        self.n_docs = len(self.clips)
        self._norm = np.asarray(self.matrix.sum(1)).ravel() + 1.0  # (N,)

    # --- building and saving -------------------------------------------------------------------
    @classmethod
    def build(cls, pairs: Iterable[tuple[str, str]], key_of: Callable[[str], str | None],
              keys: Sequence[str]) -> CaptionIndex:
        """Index ``(clip key, caption)`` pairs; ``key_of`` maps a word to its linked word (or None);
        ``keys`` are the linked words the evidence covers. DataError for an empty corpus."""
        import scipy.sparse as sp

        grouped: dict[str, list[str]] = defaultdict(list)
        for clip, caption in pairs:
            words = tokenize(caption)
            text = " ".join(words)
            if MIN_WORDS <= len(words) <= MAX_WORDS and text not in grouped[clip]:
                grouped[clip].append(text)
        clips = sorted(c for c in grouped if grouped[c])
        if not clips:
            raise DataError("the caption corpus has no caption of 3-15 words; build it with python -m data_prep.caption_corpus")
        key_index = {k: i for i, k in enumerate(keys)}
        rows, cols, vals = [], [], []
        doc_counts: list[Counter[str]] = [Counter() for _ in range(MAX_N)]
        for row, clip in enumerate(clips):
            mentions: Counter[int] = Counter()
            seen: list[set[str]] = [set() for _ in range(MAX_N)]
            for caption in grouped[clip]:
                words = caption.split()
                mentions.update({key_index[k] for w in words if (k := key_of(w)) is not None and k in key_index})
                for n in range(MAX_N):
                    seen[n].update(ngrams(words, n + 1))
            for col, count in mentions.items():
                rows.append(row)
                cols.append(col)
                vals.append(count / len(grouped[clip]))
            for n in range(MAX_N):
                doc_counts[n].update(seen[n])
        matrix = sp.csr_matrix((np.array(vals, dtype=np.float32), (rows, cols)), shape=(len(clips), len(keys)))
        kept = [{g: c for g, c in counts.items() if c >= 2} for counts in doc_counts]
        logger.info("caption index: %d corpus clips, %d captions, %d linked words", len(clips),
                    sum(len(grouped[c]) for c in clips), len(keys))
        return cls(clips, [grouped[c] for c in clips], keys, matrix, kept)

    def save(self, folder: str | Path) -> None:
        """Write ``folder/neighbours.npz`` (the matrix) and ``folder/neighbours.json.gz`` (text), atomically."""
        import io

        folder = Path(folder)
        buf = io.BytesIO()
        m = self.matrix
        np.savez_compressed(buf, data=m.data, indices=m.indices, indptr=m.indptr, shape=np.array(m.shape))
        atomic_write_bytes(folder / MATRIX_FILE, buf.getvalue())
        text = {"format": INDEX_FORMAT, "clips": self.clips, "captions": self.captions, "keys": self.keys,
                "doc_counts": self.doc_counts}
        atomic_write_bytes(folder / TEXT_FILE, gzip.compress(json.dumps(text).encode("utf-8"), 6))

    @classmethod
    def load(cls, folder: str | Path) -> CaptionIndex:
        """Read an index :meth:`save` wrote; CheckpointError naming the file if missing or damaged."""
        import zipfile

        import scipy.sparse as sp

        folder = Path(folder)
        fix = f"rebuild the model with `fusion zeroshot build --out {folder}`"
        try:
            text = json.loads(gzip.decompress((folder / TEXT_FILE).read_bytes()).decode("utf-8"))
        except (OSError, ValueError, EOFError) as err:
            raise CheckpointError(f"{folder / TEXT_FILE}: unreadable caption index ({err}); {fix}") from None
        try:
            with np.load(folder / MATRIX_FILE) as z:
                matrix = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
            raise CheckpointError(f"{folder / MATRIX_FILE}: unreadable caption index ({err}); {fix}") from None
        fields = ("clips", "captions", "keys", "doc_counts")
        if (not isinstance(text, dict) or text.get("format") != INDEX_FORMAT or any(f not in text for f in fields)
                or matrix.shape != (len(text["clips"]), len(text["keys"]))):
            raise CheckpointError(f"{folder / TEXT_FILE}: not a caption index matching {MATRIX_FILE}; {fix}")
        return cls(text["clips"], text["captions"], text["keys"], matrix, text["doc_counts"])

    # --- captioning ----------------------------------------------------------------------------
    def evidence_vector(self, *parts: tuple[Mapping[str, float] | None, float]) -> np.ndarray:
        """(K,) ``sum_i w_i * evidence_i`` over ``(evidence, weight)`` parts (None evidence: left out)."""
        out = np.zeros(len(self.keys), dtype=np.float32)
        for evidence, weight in parts:
            if not evidence or not weight:
                continue
            for key, value in evidence.items():
                k = self.key_index.get(key)
                if k is not None:
                    out[k] += weight * value
        return out

    def nearest(self, evidence: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ids and scores of the ``k`` corpus clips the evidence supports best (best first)."""
        scores = (self.matrix @ evidence) / self._norm  # (N,)
        if not np.any(evidence):  # no evidence at all (weights 0, or a silent clip with the frames' weight 0):
            top = np.unique(np.linspace(0, len(scores) - 1, min(k, len(scores))).astype(int))  # an even sample of
            return top, scores[top]  # the corpus, whose consensus is its most agreed-on caption, not row order's
        top = np.lexsort((np.arange(len(scores)), -scores))[:k]  # by score, ties by row: deterministic
        return top, scores[top]

    def _idf(self, n: int, gram: str) -> float:
        return math.log(self.n_docs / self.doc_counts[n].get(gram, 1))

    def consensus_scores(self, pool: Sequence[tuple[int, str]]) -> np.ndarray:
        """(P,) each caption's mean TF-IDF n-gram cosine (mean over n = 1..4) with the captions of the other clips.

        Cosine is linear in the other vector, so the mean over the others is one dot product with
        (sum of all unit vectors - sum of the candidate's own clip's): O(P) per n, not O(P^2).
        """
        import scipy.sparse as sp

        owner = np.unique(np.array([j for j, _ in pool]), return_inverse=True)[1]  # (P,) clip of each candidate
        members = sp.csr_matrix((np.ones(len(pool)), (np.arange(len(pool)), owner)))  # (P, clips)
        others = len(pool) - np.asarray(members.sum(0)).ravel()[owner]  # (P,) candidates of other clips
        words = [caption.split() for _, caption in pool]
        votes = np.zeros(len(pool), dtype=np.float64)  # (P,)
        for n in range(MAX_N):
            columns: dict[str, int] = {}
            rows, cols, vals = [], [], []
            for i, ws in enumerate(words):
                for gram, tf in Counter(ngrams(ws, n + 1)).items():
                    rows.append(i)
                    cols.append(columns.setdefault(gram, len(columns)))
                    vals.append(tf * self._idf(n, gram))
            x = sp.csr_matrix((vals, (rows, cols)), shape=(len(pool), max(1, len(columns))))
            norms = np.sqrt(np.asarray(x.multiply(x).sum(1)).ravel())  # (P,)
            x = sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ x
            total = np.asarray(x.sum(0)).ravel()  # (G,)
            own = members @ (members.T @ x)  # (P, G): each candidate's clip's sum
            votes += (x @ total - np.asarray(x.multiply(own).sum(1)).ravel()) / MAX_N
        return votes / np.maximum(others, 1)

    def caption(self, evidence: np.ndarray, neighbours: int, nbest: int = 1,
                allowed: Callable[[str], bool] | None = None) -> Consensus:
        """The consensus caption of the ``neighbours`` nearest corpus clips (module docstring).

        Args:
            evidence: (K,) from :meth:`evidence_vector`.
            neighbours: how many corpus clips vote.
            nbest: candidates returned.
            allowed: a candidate filter (the caption guards); a rejected caption is never returned, but it votes.
        """
        top, scores = self.nearest(evidence, neighbours)
        pool = [(int(j), c) for j in top for c in self.captions[j]]
        passes = [allowed is None or allowed(c) for _, c in pool]
        if allowed is not None and not any(passes):  # candidates from the nearest clip beyond with one that passes
            further = self.nearest(evidence, self.n_docs)[0][len(top):]
            extra = next(([(int(j), c) for c in self.captions[j] if allowed(c)] for j in further
                          if any(allowed(c) for c in self.captions[j])), [])
            if not extra:
                raise DataError(f"no caption of the {self.n_docs} corpus clips passes the caption guards (no sound "
                                "claimed for a clip without an audio stream, no content word twice); rebuild the "
                                "model from a caption corpus with such captions")
            pool, passes = pool + extra, passes + [True] * len(extra)
        votes = self.consensus_scores(pool)  # every caption of the neighbours votes; only those that pass may win
        chosen: dict[str, Candidate] = {}  # the same caption of two clips is one candidate
        for i in np.lexsort((np.arange(len(pool)), -votes)):
            if passes[i] and pool[i][1] not in chosen:
                chosen[pool[i][1]] = Candidate(pool[i][1], float(votes[i]), self.clips[pool[i][0]])
                if len(chosen) == nbest:
                    break
        contribution = np.asarray(self.matrix[top].mean(0)).ravel() * evidence  # (K,) per neighbour
        drivers = [(self.keys[k], float(contribution[k])) for k in np.argsort(-contribution)[:8] if contribution[k] > 0]
        return Consensus(list(chosen.values()),
                         [(self.clips[j], float(s)) for j, s in zip(top, scores)], drivers)


# Words a human caption uses for what is heard rather than seen. A whole corpus caption is picked or
# not, so for a clip without an audio stream the consensus mode can afford to be stricter than the
# word-by-word guard (fusion.decoding.guards.SOUND_CLAIM_WORDS): "a song plays over a slideshow",
# "music is playing" are never said of a silent clip.
HEARD_WORDS = frozenset(
    "music musical song songs tune tunes melody voice voices voiceover audio soundtrack narrator narrates "
    "narrating narration".split()
)


def caption_filter(audio_present: bool, function_words: frozenset[str]) -> Callable[[str], bool]:
    """The caption guards as a candidate filter: no sound claim without audio (the guard's words and
    :data:`HEARD_WORDS`), no repeated content word."""
    from fusion.decoding.guards import SOUND_CLAIM_WORDS

    silent_banned = SOUND_CLAIM_WORDS | HEARD_WORDS

    def allowed(caption: str) -> bool:
        words = caption.split()
        if not audio_present and any(w in silent_banned for w in words):
            return False
        content = [w for w in words if w not in function_words]
        return len(content) == len(set(content))

    return allowed
