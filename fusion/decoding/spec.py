"""How a scorer is declared: its name, its decode settings, how it is built and what it reads.

One :class:`ScorerSpec` per scorer is the whole truth about it outside its own class. The
registry (:mod:`fusion.decoding.registry`) lists them, and every face reads the list:

* :class:`~fusion.decoding.config.DecodeConfig` gets one field per :class:`Setting` (with
  its default), and checks each against the setting's bounds and the spec's ``validate``;
* :class:`~fusion.decoding.decoder.CaptionDecoder` builds the active scorers in registry
  order (``build``), and per batch hands each the inputs its spec names (``inputs``);
* the command line gets one option per setting (``fusion evaluate / caption / ablate``);
* ``fusion ablate`` gets one condition per spec with an ``ablation`` name, which applies
  the spec's ``off`` values; ``fusion tune`` and the web page turn scorers off the same way;
* the web page shows a weight slider per spec with ``slider=True`` whose range comes from
  the weight setting's bounds, and an n-best column per spec headed by its ``label``.

A scorer holds its own inputs: what it needs for a whole decoder (a model, a vocabulary, a
loaded language model) is given to ``build``; what it needs per batch of videos (the model
batch, the feature records) reaches it through ``with_inputs`` before the search, and the
search passes only its shape (:class:`~fusion.decoding.scorer.DecodeContext`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fusion.decoding.scorer import BATCH_INPUTS, BatchInputs, Scorer
from fusion.errors import ConfigError

if TYPE_CHECKING:
    from fusion.text import Vocabulary

__all__ = ["BatchInputs", "ScorerParts", "ScorerSpec", "Setting"]


@dataclass(frozen=True)
class Setting:
    """One field of the decode configuration that a scorer owns.

    Attributes:
        name: the ``DecodeConfig`` field (and ``decode`` key of a run's ``config.yaml``).
        type: its annotation (``float``, ``str | None``, a ``Literal``).
        default: the value when neither the run nor the command line gives one.
        help: one line for ``--help`` and the ``DecodeConfig`` docstring.
        metavar: the option's placeholder (``ALPHA``); None = argparse's.
        minimum: the smallest value the configuration accepts (numbers only).
        maximum: the largest value, or a function of the configuration giving it (None = no bound).
        choices: the allowed values (empty = any of ``type``).
        scale: where a slider for it ends when the configuration sets no maximum.
        step: a slider's step (None = a 40th of its range).
        option: the command-line option; None = ``--`` + the name with dashes.
        noun: what its value names, for messages ("a language model").
    """

    name: str
    type: Any
    default: Any
    help: str
    metavar: str | None = None
    minimum: float | None = None
    maximum: float | Callable[[Any], float | None] | None = None
    choices: tuple[Any, ...] = ()
    scale: float | None = None
    step: float | None = None
    option: str | None = None
    noun: str | None = None

    @property
    def flag(self) -> str:
        """The command-line option that sets it (``--audio-weight``)."""
        return self.option or "--" + self.name.replace("_", "-")

    def bounds(self, config: Any) -> tuple[float | None, float | None]:
        """(minimum, maximum) the configuration accepts for this setting (None = unbounded)."""
        top = self.maximum(config) if callable(self.maximum) else self.maximum
        return self.minimum, top

    def within(self, value: float, config: Any) -> bool:
        """Whether the number ``value`` is within the bounds under ``config``."""
        low, high = self.bounds(config)
        return not math.isnan(value) and (low is None or value >= low) and (high is None or value <= high)

    def need(self, config: Any) -> str:
        """The bounds under ``config`` as words: ``>= 0``, ``in [0, 1]``, ``<= 2``."""
        low, high = self.bounds(config)
        if high is None:
            return f">= {low:g}" if low is not None else "any number"
        return f"in [{low:g}, {high:g}]" if low is not None else f"<= {high:g}"

    def check(self, config: Any) -> None:
        """Raise a one-line ConfigError when ``config``'s value breaks the bounds or choices."""
        value = getattr(config, self.name)
        if self.choices and value not in self.choices:
            raise ConfigError(f"decode.{self.name}={value!r} is not one of {list(self.choices)}")
        if value is None or isinstance(value, (str, bool)):
            return
        if not self.within(value, config):
            raise ConfigError(f"decode.{self.name}={value} is invalid: give {self.flag} {self.need(config)}")


@dataclass
class ScorerParts:
    """What ``ScorerSpec.build`` may use: the run's model and vocabulary, the configuration, the device,
    the scorers built before it (registry order) and loaded parts shared between decoders.

    Attributes:
        config: the decode configuration (``DecodeConfig``).
        model: the run's captioner (``fusion.models.s2vt.S2VT``).
        vocab: the captioner's vocabulary.
        device: where scores live.
        built: name -> scorer, the scorers built so far.
        shared: loaded parts by key (a language model, a verifier), reused by every decoder
            given the same mapping.
    """

    config: Any
    model: Any
    vocab: Vocabulary
    device: Any = "cpu"
    built: dict[str, Scorer] = field(default_factory=dict)
    shared: dict[Hashable, Any] = field(default_factory=dict)

    def load(self, key: Hashable, loader: Callable[[], Any]) -> Any:
        """``shared[key]``, made by ``loader()`` on first use (a language model is loaded once)."""
        if key not in self.shared:
            self.shared[key] = loader()
        return self.shared[key]


@dataclass(frozen=True)
class ScorerSpec:
    """The declaration of one beam-search scorer (see the module docstring for who reads what).

    Attributes:
        name: the scorer's key in ``weights`` and ``Hypothesis.scores`` (stable: reports keep it).
        label: how pages and tables name it ("LM").
        build: ``build(parts) -> Scorer``, called once per decoder when the scorer is active.
        settings: its decode-config fields, the weight's included.
        weight: the setting holding its weight; None = always on with weight 1 (the captioner).
        inputs: the :class:`BatchInputs` fields its scorer reads per batch (via ``with_inputs``).
        requires: a setting that must be given for a non-zero weight (the LM's path).
        off: the setting values that turn it off (default: its weight 0).
        fused_weight: its weight in the search when that is not the weight setting's value
            (linear LM interpolation fuses with weight 1).
        ablation: the ``fusion ablate`` condition that turns it off, or None.
        slider: whether the web page shows its weight as a slider.
        validate: checks across settings, raising ConfigError (run after the bounds).
    """

    name: str
    label: str
    build: Callable[[ScorerParts], Scorer]
    settings: tuple[Setting, ...] = ()
    weight: str | None = None
    inputs: tuple[str, ...] = ()
    requires: str | None = None
    off: Mapping[str, Any] | None = None
    fused_weight: Callable[[Any], float] | None = None
    ablation: str | None = None
    slider: bool = False
    validate: Callable[[Any], None] | None = None

    def __post_init__(self) -> None:
        names = {s.name for s in self.settings}
        for needed in (self.weight, self.requires, *(self.off or {})):
            if needed is not None and needed not in names:
                raise ValueError(f"scorer {self.name!r}: {needed!r} is not one of its settings {sorted(names)}")
        unknown = sorted(set(self.inputs) - set(BATCH_INPUTS))
        if unknown:
            raise ValueError(f"scorer {self.name!r} reads unknown inputs {unknown}; known: {list(BATCH_INPUTS)}")

    def setting(self, name: str) -> Setting:
        """The setting called ``name``."""
        return next(s for s in self.settings if s.name == name)

    def active(self, config: Any) -> bool:
        """Whether ``config`` turns this scorer on (a weight of 0 removes it)."""
        return self.weight is None or getattr(config, self.weight) != 0

    def weight_of(self, config: Any) -> float:
        """Its weight in the beam search under ``config``."""
        if self.fused_weight is not None:
            return float(self.fused_weight(config))
        return 1.0 if self.weight is None else float(getattr(config, self.weight))

    def turned_off(self) -> dict[str, Any]:
        """The setting values that remove it from the search."""
        if self.off is not None:
            return dict(self.off)
        if self.weight is None:
            raise ConfigError(f"the {self.name!r} scorer cannot be turned off")
        return {self.weight: 0.0}

    def check(self, config: Any) -> None:
        """Its settings' bounds, the ``requires`` rule and ``validate``, on ``config``."""
        for setting in self.settings:
            setting.check(config)
        if self.requires is not None and self.active(config) and getattr(config, self.requires) is None:
            needed = self.setting(self.requires)
            raise ConfigError(f"decode.{self.weight}={getattr(config, self.weight)} is given without "
                              f"{needed.noun or 'decode.' + needed.name}: name it with {needed.flag} "
                              f"{needed.metavar or needed.name.upper()} (or decode.{needed.name} in the run's config.yaml)")
        if self.validate is not None:
            self.validate(config)
