"""The audio-noun verifier: how much a clip's sound supports each audible noun.

Two sources of evidence, both in the log domain (a log likelihood ratio: 0 = the sound
says nothing, > 0 supports the noun, < 0 contradicts it), clipped to ``[-clip, clip]``:

* learned (:mod:`fusion.verifier.classifier`), for the nouns it was trained on;
* zero-shot, for every other audible noun with links in the table: in each label space the
  noun links to and the clip has audio posteriors of (SoundNet's ``imagenet`` objects and
  ``places2`` scenes, an AudioSet encoder's ``audioset`` classes), the posteriors summed over
  the noun's linked classes (in a multi-label space, :data:`MULTI_LABEL_SPACES`, whose scores
  are independent sigmoids and do not sum to 1: the largest linked score),
  ``log-odds(mass) - log-odds(prior mass)``, averaged over those spaces. The prior mass is the mean over the training clips when the verifier was trained,
  else the share of linked classes (a uniform head).

A record without audio (``record.audio is None``: no audio stream, every MSVD clip) has no
evidence at all (``None``), so the ``"audio"`` scorer adds exactly 0. A silent track is
present audio and gets the classifier's "none of these sounds" verdict.

The verifier abstains (says "unsure" and adds at most ``abstain_cap`` either way) where its
learned part cannot be trusted:

* *out of distribution*: the clip's pooled audio lies farther from the classifier's training
  clips than ``ood_threshold`` (calibrated when the verifier is trained: 99% of the
  validation clips pass). Learned evidence saturates on sounds it never heard (a chainsaw at
  +3 for people talking), so every noun's evidence is capped for such a clip;
* *an unfamiliar clip*: the run's training profile found the clip far unlike the captioner's
  training data (``record.meta["ood"]``, :func:`fusion.ood.annotate`; at least
  ``UNFAMILIAR_RATIO`` times its threshold): the pairings of sounds and words the classifiers
  learned do not carry over to it;
* *disagreement*: a noun's learned evidence and SoundNet's zero-shot evidence point in
  opposite directions, each at least ``SUPPORT`` / ``DISAGREE_MARGIN`` strong.

:meth:`AudioNounVerifier.evidence` returns a :class:`VerifiedEvidence`: the noun -> value
mapping every caller reads, plus ``unsure`` (noun -> why) and the clip's distance.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusion.errors import CheckpointError
from fusion.features.config import AUDIO
from fusion.io import atomic_write_bytes
from fusion.verifier.classifier import NounClassifier, pool_audio
from fusion.verifier.table import LEGACY_SPACES, NounTable, default_table

logger = logging.getLogger(__name__)

VERIFIER_FORMAT = "fusion.verifier/1"
DEFAULT_CLIP = 3.0  # |evidence| cap: one noun can never outweigh a whole caption's log-prob
ABSTAIN_CAP = 0.25  # |evidence| of an abstaining noun: below the "supported" line (0.5)
SUPPORT = 0.5  # |learned evidence| that counts as a claim (about 1.6x odds)
# The three below: the measurements behind them are in the README ("Where the defaults come from").
# |zero-shot evidence| that counts as SoundNet's contrary opinion (a weaker margin would silence
# the verifier where it is right).
DISAGREE_MARGIN = 1.0
# Verifier files saved before the threshold was calibrated: RMS standardised distance of pooled
# SoundNet pool5 features.
DEFAULT_OOD_THRESHOLD = 1.7
# A clip the run's training profile flags abstains the verifier only this far beyond the threshold:
# the clips the calibration lets fail lie just past it, real videos far beyond.
UNFAMILIAR_RATIO = 2.0
_EPS = 1e-6
# Label spaces scored by one sigmoid per class (YAMNet's AudioSet head, as AudioSet is multi-label):
# a noun's mass there is its best linked class's score, since a sum of independent scores is no probability.
MULTI_LABEL_SPACES = frozenset({"audioset"})

Evidence = dict[str, float]  # audible noun -> clipped log likelihood ratio
Prior = dict[str, dict[str, float]]  # noun -> label space -> prior posterior mass on its linked classes


def read_prior(data: dict[str, Any]) -> Prior:
    """Zero-shot priors from a verifier file: ``{noun: {space: mass}}``, or format 1's ``{noun: [object, place]}``."""
    spaces = tuple(LEGACY_SPACES.values())  # ("imagenet", "places2"): the order of format 1's pairs
    return {noun: ({s: float(m) for s, m in zip(spaces, v)} if isinstance(v, list)
                   else {s: float(m) for s, m in v.items()}) for noun, v in data.items()}


class VerifiedEvidence(dict):  # type: ignore[type-arg]  # dict[str, float] with the verifier's reasons
    """noun -> evidence (a ``dict``, as every caller reads it), plus where the verifier abstained.

    Attributes:
        unsure: noun -> why the verifier abstains on it (its value is capped at ``abstain_cap``).
        distance: the clip's distance from the classifier's training clips (None: no classifier).
        threshold: the distance beyond which the clip is out of the verifier's distribution.
        reason: why the verifier abstains on the whole clip (None when it does not).
    """

    def __init__(self, values: dict[str, float], unsure: dict[str, str] | None = None,
                 distance: float | None = None, threshold: float | None = None, reason: str | None = None) -> None:
        super().__init__(values)
        self.unsure: dict[str, str] = dict(unsure or {})
        self.distance = distance
        self.threshold = threshold
        self.reason = reason

    @property
    def out_of_distribution(self) -> bool:
        """True when the clip's sound is unlike the verifier's training clips."""
        return self.distance is not None and self.threshold is not None and self.distance > self.threshold


def _unfamiliar(record: Any) -> list[str]:
    """The modalities in which the run's training profile found the clip far beyond its threshold
    (``record.meta["ood"]``, set by :func:`fusion.ood.annotate`; ratio >= ``UNFAMILIAR_RATIO``), else []."""
    ood = (getattr(record, "meta", None) or {}).get("ood") or {}
    ratio = ood.get("ratio") or {}
    return [m for m in ood.get("unfamiliar") or [] if (ratio.get(m) or float("inf")) >= UNFAMILIAR_RATIO]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


class AudioNounVerifier:
    """Audio evidence for audible nouns.

    Args:
        table: the audible-noun table (default: the committed one).
        classifier: learned per-noun classifiers, or None for zero-shot only.
        zero_shot: use SoundNet posteriors for nouns the classifier does not cover.
        clip: evidence is clipped to ``[-clip, clip]``.
        zero_shot_scale: multiplies zero-shot evidence (uncalibrated, so damped by default).
        zero_shot_prior: noun -> label space -> prior mass on its linked classes, measured on data.
        ood_threshold: the classifier's distance beyond which a clip is out of its distribution
            (None: ``DEFAULT_OOD_THRESHOLD``, for files saved before it was calibrated).
        abstain_cap: the most ``|evidence|`` a noun the verifier is unsure of may carry.
    """

    def __init__(self, table: NounTable | None = None, classifier: NounClassifier | None = None,
                 zero_shot: bool = True, clip: float = DEFAULT_CLIP, zero_shot_scale: float = 0.5,
                 zero_shot_prior: Prior | None = None,
                 ood_threshold: float | None = None, abstain_cap: float = ABSTAIN_CAP) -> None:
        self.table = table if table is not None else default_table()
        self.classifier = classifier
        self.zero_shot = zero_shot
        self.clip = float(clip)
        self.ood_threshold = float(ood_threshold) if ood_threshold is not None else None
        self.abstain_cap = float(abstain_cap)
        self.zero_shot_scale = float(zero_shot_scale)
        self.zero_shot_prior = dict(zero_shot_prior or {})
        self.linked = [n for n in self.table.nouns if self.table.entries[n].links]
        self._links: dict[str, np.ndarray] = {}  # label space -> (K, C) 0/1 links of the linked nouns
        for space, size in self.table.spaces.items():
            links = np.zeros((len(self.linked), size), dtype=np.float32)  # (K, C)
            for i, noun in enumerate(self.linked):
                links[i, list(self.table.entries[noun].links.get(space, ()))] = 1.0
            if links.any():
                self._links[space] = links

    # -- evidence ---------------------------------------------------------------------------
    def zero_shot_mass(self, record: Any) -> dict[str, np.ndarray]:
        """Per label space the table links and the record has audio posteriors of: the posterior
        mass ``(K,)`` on each linked noun's classes (K = ``len(self.linked)``)."""
        out = {}
        for space, links in self._links.items():
            probs = record.posterior(AUDIO, space)  # (C,) or None
            if probs is None:
                continue
            probs = np.asarray(probs, np.float32)  # (C,)
            out[space] = (links * probs).max(1) if space in MULTI_LABEL_SPACES else links @ probs  # (K,)
        return out

    def _zero_shot(self, record: Any) -> Evidence:
        masses = self.zero_shot_mass(record)
        if not masses or not self.linked:
            return {}
        parts, has = [], []
        for space, mass in masses.items():
            n_links = self._links[space].sum(1)  # (K,) linked classes per noun
            default = n_links / self.table.spaces[space]
            prior = np.array([self.zero_shot_prior.get(n, {}).get(space, default[i]) for i, n in enumerate(self.linked)])
            parts.append(_logit(mass) - _logit(prior))  # (K,)
            has.append(n_links > 0)
        parts_a, has_a = np.stack(parts, 1), np.stack(has, 1)  # (K, spaces)
        count = has_a.sum(1)
        score = (parts_a * has_a).sum(1) / np.maximum(count, 1) * self.zero_shot_scale  # (K,)
        return {n: float(v) for n, v, c in zip(self.linked, score, count) if c > 0}

    def evidence(self, record: Any) -> Evidence | None:
        """Per audible noun, the clip's audio evidence.

        Args:
            record: a ``FeatureRecord`` (``.audio`` (A, Da) and its audio posteriors per label
                space, e.g. ``audio/imagenet`` (1000,), ``audio/places2`` (401,)), or None.

        Returns:
            None when the clip has no audio (no evidence at all); else a
            :class:`VerifiedEvidence`: noun -> evidence in ``[-clip, clip]`` for every noun with a
            source of evidence, within ``[-abstain_cap, abstain_cap]`` where the verifier is unsure.
        """
        if record is None or record.audio is None:
            return None
        zero_shot = self._zero_shot(record)  # SoundNet's own opinion, also to check the learned one
        out: Evidence = dict(zero_shot) if self.zero_shot else {}
        unsure: dict[str, str] = {}
        distance = threshold = reason = None
        if self.classifier is not None:
            pooled = pool_audio(record.audio)[None]  # (1, D)
            learned = {n: float(v) for n, v in zip(self.classifier.nouns, self.classifier.evidence(pooled)[0])}
            out.update(learned)
            distance = float(self.classifier.distance(pooled)[0])
            threshold = self.ood_threshold if self.ood_threshold is not None else DEFAULT_OOD_THRESHOLD
            unfamiliar = _unfamiliar(record)
            if distance > threshold:
                reason = f"the sound is unlike the verifier's training clips (distance {distance:.2f} > {threshold:.2f})"
            elif unfamiliar:
                reason = f"the clip is unlike the captioner's training data ({', '.join(unfamiliar)})"
            if reason is not None:
                unsure = {n: reason for n in out}
            else:
                unsure = {n: f"learned evidence {v:+.2f} but SoundNet's posteriors say {zero_shot[n]:+.2f}"
                          for n, v in learned.items() if n in zero_shot and abs(v) >= SUPPORT
                          and abs(zero_shot[n]) >= DISAGREE_MARGIN and v * zero_shot[n] < 0}
        values = {}
        for noun, value in out.items():
            cap = self.abstain_cap if noun in unsure else self.clip
            values[noun] = float(np.clip(value, -cap, cap))
        return VerifiedEvidence(values, unsure, distance, threshold, reason)

    def evidence_batch(self, records: Sequence[Any]) -> list[Evidence | None]:
        """:meth:`evidence` of each record (None entries stay None)."""
        return [self.evidence(r) for r in records]

    def vocab_nouns(self, words: Sequence[str]) -> dict[int, str]:
        """Vocabulary id -> audible noun, for the ids whose word names one (plurals, synonyms' forms)."""
        out = {}
        for i, word in enumerate(words):
            noun = self.table.audible_noun(word)
            if noun is not None:
                out[i] = noun
        return out

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """One safetensors file: classifier arrays; table, settings and priors as metadata."""
        from safetensors.numpy import save

        arrays = self.classifier.to_arrays() if self.classifier is not None else {}
        arrays = arrays or {"none": np.zeros(1, np.float32)}  # safetensors wants >= 1 tensor
        meta = {"format": VERIFIER_FORMAT, "table": json.dumps(self.table.to_dict()),
                "settings": json.dumps({"zero_shot": self.zero_shot, "clip": self.clip,
                                        "zero_shot_scale": self.zero_shot_scale, "ood_threshold": self.ood_threshold,
                                        "abstain_cap": self.abstain_cap}),
                "zero_shot_prior": json.dumps(self.zero_shot_prior), "extra": json.dumps(extra or {}),
                "classifier": json.dumps(self.classifier.to_meta() if self.classifier is not None else None)}
        atomic_write_bytes(path, save(arrays, metadata=meta))

    @classmethod
    def load(cls, path: str | Path) -> AudioNounVerifier:
        """Read a verifier file written by :meth:`save` (CheckpointError if unusable)."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: verifier file not found; train one with "
                                  f"`python -m fusion.verifier train --manifest M --features STORE --out {path}`")
        try:
            with safe_open(str(path), framework="numpy") as fh:
                meta = fh.metadata() or {}
                arrays = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open API)
        except Exception as err:  # safetensors raises SafetensorError / OSError
            raise CheckpointError(f"{path}: not a verifier file ({err}); retrain it") from err
        if meta.get("format") != VERIFIER_FORMAT:
            raise CheckpointError(f"{path}: not a verifier file (format {meta.get('format')!r}); retrain it")
        table = NounTable.from_dict(json.loads(meta["table"]), str(path))
        cmeta = json.loads(meta.get("classifier", "null"))
        classifier = NounClassifier.from_parts(arrays, cmeta, str(path)) if cmeta else None
        prior = read_prior(json.loads(meta.get("zero_shot_prior", "{}")))
        return cls(table=table, classifier=classifier, zero_shot_prior=prior, **json.loads(meta["settings"]))
