"""Train the verifier's per-noun audio classifiers on paired data (manifest + feature store).

A clip is a positive for a noun when at least ``label_threshold`` of its captions mention
the noun or a synonym (:meth:`NounTable.label_words`). Clips without audio are skipped:
they carry no evidence by design. Silent tracks are kept (they are audio, and negatives).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusion.errors import DataError
from fusion.text import tokenize
from fusion.verifier.classifier import fit_classifier, pool_audio
from fusion.verifier.core import AudioNounVerifier, Prior
from fusion.verifier.table import NounTable, default_table

logger = logging.getLogger(__name__)

OOD_QUANTILE = 0.99  # share of the validation clips within the verifier's out-of-distribution threshold


@dataclass
class PairedSplit:
    """One split's audio clips and labels.

    Attributes:
        ids: the K clip ids with audio.
        pooled: (N, D) float32 pooled SoundNet features.
        labels: (N, K) bool, captions mention noun k.
        records: the feature records (for zero-shot priors).
    """

    ids: list[str]
    pooled: np.ndarray
    labels: np.ndarray
    records: list[Any]


def caption_labels(captions: Sequence[str], nouns: Sequence[str], table: NounTable,
                   label_threshold: float = 0.2) -> np.ndarray:
    """(K,) bool: whether >= ``label_threshold`` of the captions mention each noun."""
    if not captions:
        return np.zeros(len(nouns), dtype=bool)
    words = [set(tokenize(c)) for c in captions]
    share = np.array([sum(bool(w & table.label_words(n)) for w in words) / len(words) for n in nouns])
    return share >= label_threshold


def paired_split(entries: Sequence[Any], store: Any, nouns: Sequence[str], table: NounTable,
                 label_threshold: float = 0.2) -> PairedSplit:
    """Pooled features and labels of the entries whose records have audio."""
    ids, pooled, labels, records = [], [], [], []
    for entry in entries:
        if entry.id not in store:
            raise DataError(f"feature store {getattr(store, 'path', '')}: no record for {entry.id!r}; "
                            "extract the manifest's videos first (`fusion extract`)")
        record = store[entry.id]
        if record.audio is None:
            continue
        ids.append(entry.id)
        pooled.append(pool_audio(record.audio))
        labels.append(caption_labels(entry.captions, nouns, table, label_threshold))
        records.append(record)
    dim = pooled[0].shape[0] if pooled else 0
    return PairedSplit(ids, np.stack(pooled) if pooled else np.zeros((0, dim), np.float32),
                       np.stack(labels) if labels else np.zeros((0, len(nouns)), bool), records)


def train_verifier(entries: Sequence[Any], store: Any, table: NounTable | None = None,
                   label_threshold: float = 0.2, min_positives: int = 3) -> tuple[AudioNounVerifier, dict[str, Any]]:
    """Fit the learned evidence on the train split, calibrate it on val.

    Args:
        entries: manifest entries (``fusion.manifest.ManifestEntry``) with splits and captions.
        store: a ``FeatureStore`` holding every entry's record.
        table: the audible-noun table (default: the committed one).
        label_threshold: share of captions that must mention a noun for a positive label.
        min_positives: nouns with fewer training positives are left to zero-shot evidence.

    Returns:
        The verifier and a JSON-able training report.
    """
    table = table if table is not None else default_table()
    train = [e for e in entries if e.split == "train"]
    val = [e for e in entries if e.split == "val"]
    if not train:
        raise DataError("verifier training: the manifest has no train split entries; add split=train clips")
    mentioned = {n for e in train for c in e.captions for n in table.mentions(tokenize(c))}
    nouns = sorted(mentioned)
    if not nouns:
        raise DataError("verifier training: no training caption mentions an audible noun; check the manifest")
    tr = paired_split(train, store, nouns, table, label_threshold)
    va = paired_split(val, store, nouns, table, label_threshold)
    if len(tr.ids) == 0:
        raise DataError("verifier training: no train clip has audio (e.g. MSVD has none); use paired audio data")
    logger.info("verifier training: %d train / %d val clips with audio, %d candidate nouns",
             len(tr.ids), len(va.ids), len(nouns))
    classifier = fit_classifier(tr.pooled, tr.labels, va.pooled, va.labels, nouns, min_positives)
    probe = AudioNounVerifier(table=table)
    prior = zero_shot_prior(probe, tr.records)
    # Out-of-distribution threshold: the distance that OOD_QUANTILE of the validation clips stay within.
    calibration = va.pooled if len(va.ids) else tr.pooled
    threshold = float(np.quantile(classifier.distance(calibration), OOD_QUANTILE, method="higher"))
    verifier = AudioNounVerifier(table=table, classifier=classifier, zero_shot_prior=prior, ood_threshold=threshold)
    report = {"train_clips": len(tr.ids), "val_clips": len(va.ids), "skipped_without_audio":
              len(train) + len(val) - len(tr.ids) - len(va.ids), "nouns": classifier.nouns,
              "stats": classifier.stats, "label_threshold": label_threshold,
              "ood_threshold": {"value": threshold, "quantile": OOD_QUANTILE,
                                "calibrated_on": "val" if len(va.ids) else "train"}}
    if len(va.ids):
        report["val"] = _val_report(verifier, va, nouns)
    return verifier, report


def zero_shot_prior(probe: AudioNounVerifier, records: Sequence[Any]) -> Prior:
    """Per linked noun and label space, the mean zero-shot mass over ``records`` that have that space's posteriors."""
    masses: dict[str, list[np.ndarray]] = {}
    for record in records:
        for space, mass in probe.zero_shot_mass(record).items():
            masses.setdefault(space, []).append(mass)  # (K,)
    prior: Prior = {}
    for space, values in masses.items():
        mean = np.mean(values, axis=0)  # (K,)
        for noun, m in zip(probe.linked, mean):
            if probe.table.entries[noun].links.get(space):
                prior.setdefault(noun, {})[space] = float(m)
    return prior


def _val_report(verifier: AudioNounVerifier, split: PairedSplit, nouns: Sequence[str]) -> dict[str, Any]:
    """Per learned noun on validation: ROC AUC of its evidence, mean evidence on positives/negatives."""
    from sklearn.metrics import roc_auc_score

    assert verifier.classifier is not None
    evidence = verifier.evidence_batch(split.records)
    out: dict[str, Any] = {}
    for noun in verifier.classifier.nouns:
        y = split.labels[:, list(nouns).index(noun)]  # (M,) bool
        ev = np.array([e[noun] for e in evidence if e is not None])  # (M,)
        out[noun] = {
            "positives": int(y.sum()),
            "auc": float(roc_auc_score(y, ev)) if 0 < y.sum() < len(y) else None,
            "mean_evidence_pos": float(ev[y].mean()) if y.any() else None,
            "mean_evidence_neg": float(ev[~y].mean()) if (~y).any() else None,
        }
    return out


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write the training report JSON next to the verifier file (atomic)."""
    from fusion.io import atomic_write_json

    atomic_write_json(path, report)
