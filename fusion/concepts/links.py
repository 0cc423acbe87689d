"""The concept-link table (``data_prep/concept_links.json``, built by ``python -m data_prep.concept_links``)."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusion.errors import DataError

LINKS_FORMAT = "fusion.concept_links/1"
DEFAULT_LINKS_PATH = Path(__file__).resolve().parents[2] / "data_prep" / "concept_links.json"


@dataclass(frozen=True)
class LinkEntry:
    """One linked word: ``key`` (noun lemma, or verb form), part of speech, caption forms, links."""

    key: str
    pos: str
    forms: tuple[str, ...]
    links: dict[str, tuple[int, ...]]
    implied_by: tuple[tuple[str, float], ...] = ()


class ConceptLinks:
    """Caption word -> label-space classes.

    Args:
        entries: the linked words.
        spaces: space -> class names (index = class id).
        source: where the table came from (for messages).
    """

    def __init__(self, entries: Sequence[LinkEntry], spaces: dict[str, Sequence[str]], source: str = "") -> None:
        self.entries = {e.key: e for e in entries}
        self.spaces = {s: tuple(names) for s, names in spaces.items()}
        self.source = source
        self._form = {f: e.key for e in entries for f in e.forms}

    @classmethod
    def load(cls, path: str | Path | None = None) -> ConceptLinks:
        """Read a table file (default: the committed one); DataError naming the file if unusable."""
        path = Path(path) if path is not None else DEFAULT_LINKS_PATH
        if not path.is_file():
            raise DataError(f"{path}: concept-link table not found; build it with `python -m data_prep.concept_links`")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: unreadable concept-link table ({err}); rebuild it with "
                            "`python -m data_prep.concept_links`") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "") -> ConceptLinks:
        """A table from its JSON object (``format`` fusion.concept_links/1)."""
        if not isinstance(data, dict) or data.get("format") != LINKS_FORMAT:
            raise DataError(f"{source}: not a concept-link table (format {data.get('format') if isinstance(data, dict) else None!r}); "
                            "rebuild it with `python -m data_prep.concept_links`")
        entries = [LinkEntry(key, e["pos"], tuple(e["forms"]), {s: tuple(ids) for s, ids in e["links"].items()},
                             tuple((n, float(p)) for n, p in e.get("implied_by", [])))
                   for key, e in data["words"].items()]
        return cls(entries, {s: v["names"] for s, v in data["spaces"].items()}, source)

    def key_of(self, word: str) -> str | None:
        """The entry a caption word belongs to (``dogs`` -> ``dog``), or None."""
        return self._form.get(word)

    def vocab_keys(self, words: Sequence[str]) -> dict[int, str]:
        """Vocabulary id -> entry key, for the ids whose word is linked."""
        return {i: k for i, w in enumerate(words) if (k := self._form.get(w)) is not None}

    def link_matrix(self, keys: Sequence[str], space: str) -> np.ndarray:
        """(K, C) float32 0/1: which classes of ``space`` each key links to (rows of unlinked keys are 0)."""
        out = np.zeros((len(keys), len(self.spaces.get(space, ()))), dtype=np.float32)
        for row, key in enumerate(keys):
            ids = self.entries[key].links.get(space, ())
            out[row, list(ids)] = 1.0
        return out

    def class_names(self, space: str, ids: Sequence[int]) -> list[str]:
        """Readable names of classes of ``space``."""
        names = self.spaces[space]
        return [names[i].split(",")[0].split(" ", 1)[-1] if space == "imagenet" else names[i] for i in ids]


@functools.lru_cache(maxsize=1)
def default_links() -> ConceptLinks:
    """The committed table, loaded once."""
    return ConceptLinks.load()
