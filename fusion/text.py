"""Tokenization and vocabulary.

The tokenizer follows the S2VT MSVD caption release (``sents_*_lc_nopunc.txt``): lower
case, every punctuation character replaced by a space, split on whitespace. That is why
the release reads "in it s shell" for "in it's shell". Applying :func:`tokenize` to a
release sentence returns its words unchanged.

The :class:`Vocabulary` reserves ids 0-3 for ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``
and orders the other words by decreasing count, ties alphabetically, so the same
sentences always give the same ids. It is saved with every model (``to_dict``/``save``)
and round-trips exactly.
"""

from __future__ import annotations

import json
import logging
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from fusion.errors import DataError
from fusion.io import atomic_write_json

logger = logging.getLogger(__name__)

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS: tuple[str, ...] = (PAD, BOS, EOS, UNK)  # ids 0, 1, 2, 3
VOCAB_FORMAT_VERSION = 1

# Any character that is neither a word character nor whitespace, plus the underscore
# (a word character for ``re`` but punctuation for captions).
_PUNCT_RE = re.compile(r"[^\w\s]|_")


def tokenize(sentence: str) -> list[str]:
    """Split a caption into words the way the S2VT release was normalised.

    Args:
        sentence: Raw caption, e.g. ``"A man's playing the guitar."``.

    Returns:
        Lower-case words without punctuation, e.g. ``["a", "man", "s", "playing",
        "the", "guitar"]``.
    """
    text = unicodedata.normalize("NFKC", sentence).lower()
    return _PUNCT_RE.sub(" ", text).split()


def normalize(sentence: str) -> str:
    """The caption as the S2VT release writes it: ``" ".join(tokenize(sentence))``."""
    return " ".join(tokenize(sentence))


class Vocabulary:
    """A word <-> id mapping with the four special tokens at ids 0-3.

    Build it with :meth:`build`; unknown words map to ``<unk>``.
    """

    def __init__(self, words: Sequence[str], min_count: int = 1) -> None:
        """Create a vocabulary from its full word list.

        Args:
            words: All words in id order; must start with ``<pad> <bos> <eos> <unk>``.
            min_count: The minimum count it was built with (kept for the record).

        Raises:
            DataError: The specials are not first, or a word repeats.
        """
        words = list(words)
        if tuple(words[: len(SPECIALS)]) != SPECIALS:
            raise DataError(f"vocabulary must start with {' '.join(SPECIALS)}, got {words[:4]}; "
                            "rebuild it with Vocabulary.build")
        if len(set(words)) != len(words):
            dup = next(w for w, c in Counter(words).items() if c > 1)
            raise DataError(f"vocabulary repeats the word {dup!r}; rebuild it with Vocabulary.build")
        self._words: list[str] = words
        self._index: dict[str, int] = {w: i for i, w in enumerate(words)}
        self.min_count = int(min_count)

    @classmethod
    def build(cls, sentences: Iterable[str | Sequence[str]], min_count: int = 1) -> Vocabulary:
        """Count words and keep those seen at least ``min_count`` times.

        Args:
            sentences: Captions as strings (tokenized with :func:`tokenize`) or word lists.
            min_count: Minimum number of occurrences to get an id (>= 1).

        Returns:
            The vocabulary, ordered by decreasing count then alphabetically.
        """
        if min_count < 1:
            raise DataError(f"min_count must be >= 1, got {min_count}")
        counts: Counter[str] = Counter()
        for sent in sentences:
            counts.update(tokenize(sent) if isinstance(sent, str) else sent)
        for special in SPECIALS:
            counts.pop(special, None)
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(list(SPECIALS) + kept, min_count=min_count)

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._words == other._words and self.min_count == other.min_count

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)}, min_count={self.min_count})"

    @property
    def words(self) -> tuple[str, ...]:
        """All words in id order, specials first."""
        return tuple(self._words)

    pad_id = property(lambda self: 0, doc="Id of ``<pad>`` (0).")
    bos_id = property(lambda self: 1, doc="Id of ``<bos>`` (1).")
    eos_id = property(lambda self: 2, doc="Id of ``<eos>`` (2).")
    unk_id = property(lambda self: 3, doc="Id of ``<unk>`` (3).")

    def index(self, word: str) -> int:
        """Id of ``word``; ``unk_id`` for a word outside the vocabulary."""
        return self._index.get(word, self.unk_id)

    def word(self, i: int) -> str:
        """Word of id ``i``.

        Raises:
            DataError: ``i`` is out of range.
        """
        i = int(i)
        if not 0 <= i < len(self._words):
            raise DataError(f"token id {i} outside the vocabulary (size {len(self._words)}); "
                            "the model and vocabulary do not belong together")
        return self._words[i]

    def encode(self, sentence: str | Sequence[str], bos: bool = True, eos: bool = True) -> list[int]:
        """Token ids of a caption.

        Args:
            sentence: A raw caption (tokenized with :func:`tokenize`) or a word list.
            bos: Prepend ``<bos>``.
            eos: Append ``<eos>``.

        Returns:
            The ids, e.g. ``[1, 5, 9, 2]``.
        """
        words = tokenize(sentence) if isinstance(sentence, str) else list(sentence)
        ids = [self.index(w) for w in words]
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids: Iterable[int]) -> str:
        """The caption of a token sequence: stops at ``<eos>``, skips ``<pad>`` and ``<bos>``.

        Args:
            ids: Token ids (ints, or a 1-D integer tensor / array).

        Returns:
            Space-joined words (``<unk>`` is kept as the literal token).
        """
        words: list[str] = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            words.append(self.word(i))
        return " ".join(words)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; :meth:`from_dict` restores an equal vocabulary."""
        return {"format": "fusion.vocabulary", "version": VOCAB_FORMAT_VERSION,
                "min_count": self.min_count, "words": list(self._words)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocabulary:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            DataError: The mapping is not a saved vocabulary.
        """
        if not isinstance(data, dict) or not isinstance(data.get("words"), list):
            raise DataError("not a saved vocabulary: expected a mapping with a 'words' list "
                            "(written by Vocabulary.to_dict)")
        version = data.get("version", VOCAB_FORMAT_VERSION)
        if version != VOCAB_FORMAT_VERSION:
            raise DataError(f"vocabulary format version {version} is not supported "
                            f"(this fusion reads version {VOCAB_FORMAT_VERSION})")
        if not all(isinstance(w, str) for w in data["words"]):
            raise DataError("vocabulary 'words' must all be strings")
        return cls(data["words"], min_count=int(data.get("min_count", 1)))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the vocabulary as JSON, atomically."""
        atomic_write_json(path, self.to_dict(), indent=None)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """Read a vocabulary written by :meth:`save`.

        Raises:
            DataError: Missing file or not a vocabulary.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{path}: vocabulary file not found; it is written next to each checkpoint") from None
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: not valid JSON ({err.msg}); the vocabulary file is damaged") from None
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"{path}: unreadable ({type(err).__name__}); the vocabulary file is damaged") from None
        try:
            return cls.from_dict(data)
        except DataError as err:
            raise DataError(f"{path}: {err}") from None
