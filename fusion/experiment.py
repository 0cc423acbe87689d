"""One experiment's whole configuration: data, features, model, training and decoding.

``ExperimentConfig`` only composes the component configs, each defined beside its
component (``DataConfig`` in :mod:`fusion.data`, ``ExtractConfig`` in
:mod:`fusion.features`, ``S2VTConfig`` in :mod:`fusion.models.s2vt`, ``TrainConfig`` in
:mod:`fusion.training`, ``DecodeConfig`` in :mod:`fusion.decoding.config`). The ``decode``
section does not bind a run folder: ``RUN/config.yaml``'s decode section is what ``fusion
evaluate`` / ``caption`` / ``ablate`` start from (:func:`fusion.decoding.config.resolve_decode_config`),
and ``fusion tune`` writes its choice of language model and weight there.

A YAML file maps one section per component::

    base: base.yaml            # optional, merged under this file
    data: {manifest: data/avsynth/manifest.jsonl}
    model: {audio_mode: early, hidden_size: 256}
    train: {max_epochs: 20}
    decode: {beam_size: 5, audio_weight: 1.0, verifier: learned}
    lm_fusion: {mode: deep, lm: runs/lm}   # optional: early / deep fusion (EMNLP 2016)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fusion.config import load_config
from fusion.data import DataConfig
from fusion.decoding.config import DecodeConfig
from fusion.features import ExtractConfig
from fusion.models.deep_fusion import LMFusionConfig
from fusion.models.s2vt import S2VTConfig
from fusion.training.config import TrainConfig


@dataclass
class ExperimentConfig:
    """Everything a training run needs; saved in the run folder and in every checkpoint."""

    name: str = "s2vt"
    data: DataConfig = field(default_factory=DataConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    model: S2VTConfig = field(default_factory=S2VTConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    lm_fusion: LMFusionConfig = field(default_factory=LMFusionConfig)  # early / deep fusion with a text LM


def load_experiment(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Load an :class:`ExperimentConfig` from YAML (``base:`` chains) plus ``--set`` overrides.

    Raises:
        ConfigError: unknown key, wrong type or bad value, naming the key and the fix.
    """
    return load_config(ExperimentConfig, path, overrides)
