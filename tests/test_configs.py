"""Every file under configs/ loads strictly with its own schema and the current key names.

The files are found by glob, so a new config is checked the day it is added: LM configs
(``configs/lm/*.yaml`` and any ``lm.yaml``, read by ``fusion lm train --config``) as
:class:`~fusion.models.lm.LMConfig`, every other file as an experiment config
(:func:`fusion.experiment.load_experiment`, ``base:`` chains resolved).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fusion.config import load_config
from fusion.experiment import ExperimentConfig, load_experiment
from fusion.models.lm import LMConfig

ROOT = Path(__file__).resolve().parent.parent / "configs"
CONFIGS = sorted([*ROOT.rglob("*.yaml"), *ROOT.rglob("*.yml")])


def is_lm_config(path: Path) -> bool:
    """LM configs: the ``configs/lm/`` folder and files named ``lm.yaml``."""
    return path.parent.name == "lm" or path.stem == "lm"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_loads_with_its_schema_and_current_key_names(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fusion.config"):
        config = load_config(LMConfig, path) if is_lm_config(path) else load_experiment(path)
    assert isinstance(config, LMConfig if is_lm_config(path) else ExperimentConfig)
    assert "is now" not in caplog.text, f"{path} uses a former key name: {caplog.text}"


def test_the_glob_finds_both_kinds() -> None:
    kinds = {is_lm_config(p) for p in CONFIGS}
    assert len(CONFIGS) >= 10 and kinds == {True, False}
    assert any(p.relative_to(ROOT).parts[0] == "msvd" for p in CONFIGS)
