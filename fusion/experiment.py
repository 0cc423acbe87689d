"""One experiment's whole configuration: data, features, model, training and decoding.

``ExperimentConfig`` only composes the component configs, each defined beside its
component (``DataConfig`` in :mod:`fusion.data`, ``ExtractConfig`` in
:mod:`fusion.features`, ``S2VTConfig`` in :mod:`fusion.models.s2vt`, ``TrainConfig`` in
:mod:`fusion.training`). ``DecodeConfig`` (the default decoding settings a checkpoint carries
to ``fusion evaluate`` / ``fusion caption``) lives here because no single module owns it.

A YAML file maps one section per component::

    base: base.yaml            # optional, merged under this file
    data: {manifest: data/avsynth/manifest.jsonl}
    model: {audio_mode: early, hidden_size: 256}
    train: {max_epochs: 20}
    lm_fusion: {mode: deep, lm: runs/lm}   # optional: early / deep fusion (EMNLP 2016)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fusion.config import load_config
from fusion.data import DataConfig
from fusion.features import ExtractConfig
from fusion.models.deep_fusion import LMFusionConfig
from fusion.models.s2vt import S2VTConfig
from fusion.training.config import TrainConfig


@dataclass
class DecodeConfig:
    """Default decoding settings stored with a run (command-line options override them).

    Attributes:
        beam_size: beams per video (S2VT's evaluation used beam search; 5 is common).
        max_len: the most words per caption.
        min_len: the fewest words before EOS may be emitted.
        length_norm: rank finished captions by mean log-probability per token.
        length_weight: weight of the ``"length"`` scorer (bonus per emitted token).
        audio_weight: beta, the default weight of the audio-noun verifier ``"audio"`` (0 = off).
        verifier: the verifier's evidence: None = zero-shot (SoundNet posteriors), a file
            (``fusion verifier train``), or ``"learned"``: ``fusion train`` fits it on the run's
            train / val clips at the end of training into ``RUN/verifier.safetensors``.

    The decode section does not bind a run folder: changing it (in the config or with
    ``--set decode.*``) and re-running ``fusion train`` on a finished run keeps the weights, and
    ``RUN/config.yaml``'s decode section is what ``evaluate`` / ``caption`` then use.
    """

    beam_size: int = 5
    max_len: int = 20
    min_len: int = 1
    length_norm: bool = True
    length_weight: float = 0.0
    audio_weight: float = 0.0
    verifier: str | None = None

    def __post_init__(self) -> None:
        if self.audio_weight < 0:
            raise ValueError(f"decode.audio_weight must be >= 0, got {self.audio_weight}")
        if self.beam_size < 1:
            raise ValueError(f"decode.beam_size must be >= 1, got {self.beam_size}")
        if self.max_len < 1 or not 0 <= self.min_len <= self.max_len:
            raise ValueError(f"decode: need 0 <= min_len <= max_len and max_len >= 1, got {self.min_len}, {self.max_len}")


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
