"""The page's decode settings: what its controls set, resolved by the decode configuration itself.

:class:`DecodeSettings` holds the beam size and one weight per slider scorer, nothing else: the
service resolves them with :func:`fusion.decoding.config.resolve_decode_config`, so the page
declares no decode field of its own and refuses exactly what the configuration refuses.
:func:`weight_sliders` lists the sliders of a run (the scorers declared with ``slider=True``
in :mod:`fusion.decoding.registry`), each ranging over its weight setting's own bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fusion.decoding.registry import scorer_spec, sliders


@dataclass(frozen=True)
class DecodeSettings:
    """What the page's controls set; the rest is the run's decode configuration.

    The page declares no decode field of its own: :meth:`CaptionService.decode` resolves these
    with :func:`fusion.decoding.config.resolve_decode_config` (the run's section < the beam size
    < the weights), so the configuration's checks are the page's.

    Attributes:
        beam_size: beams per video (the n-best table shows them all); for a zero-shot model in the
            consensus mode, which searches no beam, the captions listed.
        weights: (scorer name, weight) per slider (``fusion.decoding.registry.sliders``); 0 turns
            the scorer off.
        neighbours: for a zero-shot model in the consensus mode, how many corpus clips vote; None
            for every other run.
    """

    beam_size: int
    weights: tuple[tuple[str, float], ...] = ()
    neighbours: int | None = None

    @classmethod
    def of(cls, beam_size: int, **weights: float) -> DecodeSettings:
        """``DecodeSettings.of(5, lm=0.0, audio=1.0)``."""
        return cls(int(beam_size), tuple((name, float(w)) for name, w in weights.items()))

    def weight(self, scorer: str) -> float:
        """The weight set for ``scorer`` (0 when the page set none)."""
        return dict(self.weights).get(scorer, 0.0)

    def describe(self) -> str:
        """One line for the page's status: ``beam 5, LM weight 0, audio weight 1`` (consensus mode:
        ``40 neighbours, 5 captions listed, ...``)."""
        head = ([f"beam {self.beam_size}"] if self.neighbours is None
                else [f"{self.neighbours} neighbours", f"{self.beam_size} caption{'s' * (self.beam_size != 1)} listed"])
        return ", ".join([*head, *(f"{scorer_spec(n).label} weight {w:g}" for n, w in self.weights)])


@dataclass(frozen=True)
class WeightSlider:
    """One scorer's weight control; its range is what the decode configuration accepts.

    Attributes:
        scorer: the scorer's name (``"lm"``).
        label: what the page calls it ("LM weight").
        value: the run's own weight.
        minimum: the configuration's lower bound.
        maximum: its upper bound, else the setting's declared slider scale.
        step: the slider's step.
        available: False when the run cannot use the scorer (no language model): shown, not movable.
        info: one line under the slider.
    """

    scorer: str
    label: str
    value: float
    minimum: float
    maximum: float
    step: float
    available: bool
    info: str


def weight_sliders(base: Any) -> list[WeightSlider]:
    """The page's weight sliders for a run whose decode configuration is ``base``, in registry order."""
    out = []
    for spec in sliders():
        assert spec.weight is not None  # sliders() keeps the scorers with a weight
        setting = spec.setting(spec.weight)
        low, high = setting.bounds(base)
        low, high = float(low or 0.0), float(high if high is not None else setting.scale or 1.0)
        needed = spec.setting(spec.requires) if spec.requires is not None else None
        available = needed is None or getattr(base, needed.name) is not None
        info = setting.help if available else f"this run decodes without {needed.noun or needed.name}"  # type: ignore[union-attr]
        out.append(WeightSlider(spec.name, f"{spec.label} weight", float(getattr(base, spec.weight)), low, high,
                                setting.step or (high - low) / 40, available, info))
    return out
