"""The scorers the decoder can fuse, in the order it fuses them: registering a scorer is one line here.

:data:`SCORERS` lists every :class:`~fusion.decoding.spec.ScorerSpec`. The decode
configuration's fields, the command line's decode options, ``fusion ablate``'s conditions,
``fusion tune``'s "LM off" and the web page's sliders and n-best columns are all read from it
(see :mod:`fusion.decoding.spec`). The order is the order of the fused sum and of every
hypothesis's per-scorer breakdown: keep the existing ones first, so captions do not change.

:func:`register` adds a scorer defined outside this package (a plugin, a test); it must run
before :mod:`fusion.decoding.config` is imported, which fixes ``DecodeConfig``'s fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from fusion.decoding.audio_scorer import AUDIO_SPEC
from fusion.decoding.concept_scorer import VISUAL_SPEC
from fusion.decoding.lm_scorer import LM_SPEC
from fusion.decoding.scorers import CAPTION_SPEC, LENGTH_SPEC
from fusion.decoding.spec import ScorerSpec, Setting
from fusion.errors import ConfigError

SCORERS: list[ScorerSpec] = [CAPTION_SPEC, LM_SPEC, AUDIO_SPEC, LENGTH_SPEC, VISUAL_SPEC]
_closed: list[bool] = [False]  # set once DecodeConfig has taken its fields from SCORERS


def register(spec: ScorerSpec) -> None:
    """Add a scorer after the built-in ones (before ``fusion.decoding.config`` is imported).

    Raises:
        ValueError: a scorer or setting of that name exists, or ``DecodeConfig`` was already made.
    """
    taken = {s.name for s in SCORERS}
    fields = {f.name for s in SCORERS for f in s.settings}
    clash = sorted(({spec.name} & taken) | ({f.name for f in spec.settings} & fields))
    if clash:
        raise ValueError(f"scorer {spec.name!r}: the names {clash} are taken by registered scorers")
    if _closed[0]:
        raise ValueError(f"register({spec.name!r}) came after fusion.decoding.config was imported; DecodeConfig's "
                         "fields are fixed by then: register first, or list the scorer in SCORERS")
    SCORERS.append(spec)


def close() -> tuple[Setting, ...]:
    """Every registered scorer's settings, in order; no scorer can be registered afterwards."""
    _closed[0] = True
    return scorer_settings()


def scorer_settings() -> tuple[Setting, ...]:
    """The decode settings of every scorer, in registry order."""
    return tuple(setting for spec in SCORERS for setting in spec.settings)


def scorer_spec(name: str) -> ScorerSpec:
    """The scorer called ``name``.

    Raises:
        ConfigError: no such scorer (the message lists them).
    """
    for spec in SCORERS:
        if spec.name == name:
            return spec
    raise ConfigError(f"unknown scorer {name!r}; scorers are {', '.join(s.name for s in SCORERS)}")


def setting(name: str) -> Setting:
    """The scorer setting called ``name`` (a ``DecodeConfig`` field)."""
    for spec in SCORERS:
        for found in spec.settings:
            if found.name == name:
                return found
    raise ConfigError(f"{name!r} is no scorer's setting; settings are {', '.join(s.name for s in scorer_settings())}")


def ablations() -> dict[str, ScorerSpec]:
    """``fusion ablate`` condition -> the scorer it turns off."""
    return {spec.ablation: spec for spec in SCORERS if spec.ablation is not None}


def sliders() -> list[ScorerSpec]:
    """The scorers whose weight the web page shows as a slider, in order."""
    return [spec for spec in SCORERS if spec.slider and spec.weight is not None]


def without(config: Any, names: Iterable[str]) -> Any:
    """``config`` with the named scorers turned off (each spec's ``off`` values: "LM off" is ``lm``'s)."""
    changes: dict[str, Any] = {}
    for name in names:
        changes.update(scorer_spec(name).turned_off())
    return dataclasses.replace(config, **changes)


def with_weights(config: Any, weights: Mapping[str, float]) -> Any:
    """``config`` with scorer name -> weight applied; a weight of 0 turns the scorer off (``without``).

    Raises:
        ConfigError: an unknown scorer, one without a weight setting, or a weight the
            configuration rejects (a language model's weight on a run without one).
    """
    off = [name for name, weight in weights.items() if float(weight) == 0]
    changes = {}
    for name, weight in weights.items():
        spec = scorer_spec(name)
        if spec.weight is None:
            raise ConfigError(f"the {name!r} scorer has no weight to set")
        if float(weight) != 0:
            changes[spec.weight] = float(weight)
    return dataclasses.replace(without(config, off), **changes)
