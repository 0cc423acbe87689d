"""Caption grammar of the audio-visual benchmark.

All words come from :mod:`fusion.benchmark`, so every caption is judged correct by
:func:`fusion.benchmark.judge_caption` against its own clip (a test checks this). The
grammar varies the sentence frame (the sound clause before or after the picture, "while",
"as", "to the sound of", "there is ...", "we see ..."), the determiner, the shape synonym,
the verb phrase and the sound phrasing; clips without a sound source get no sound clause.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fusion.benchmark import ACTION_PHRASES, SHAPES, SOUND_SOURCES

# Templates: {V} finite visual clause(s), {G} gerund noun phrase(s), {S} finite sound
# clause, {N} sound noun phrase.
SOUND_TEMPLATES: tuple[str, ...] = (
    "{V} while {S}",
    "{S} while {V}",
    "{S} as {V}",
    "{V} as {S}",
    "{V} and {S}",
    "{V} to the sound of {N}",
    "{V} with {N} in the background",
    "you can hear {N} while {V}",
    "there is {G} while {S}",
    "while {S} {V}",
)
SILENT_TEMPLATES: tuple[str, ...] = (
    "{V}",
    "there is {G}",
    "we see {G}",
    "{G}",
    "a video of {G}",
    "{V} on the screen",
)


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _noun_phrase(obj: dict[str, Any], rng: np.random.Generator) -> str:
    det = "a" if rng.random() < 0.75 else "the"
    return f"{det} {obj['color']} {_pick(rng, SHAPES[obj['shape']])}"


def _visual(objects: Sequence[dict[str, Any]], rng: np.random.Generator) -> tuple[str, str]:
    """A finite clause and a gerund phrase for the objects (primary object first)."""
    finite: list[str] = []
    gerund: list[str] = []
    for obj in objects:
        np_ = _noun_phrase(obj, rng)
        fin_options, ger_options = ACTION_PHRASES[obj["action"]]
        finite.append(f"{np_} {_pick(rng, fin_options)}")
        gerund.append(f"{np_} {_pick(rng, ger_options)}")
    if len(finite) == 1:
        return finite[0], gerund[0]
    # "and" only: the sound templates already use "while" / "as" between clauses.
    return f"{finite[0]} and {finite[1]}", f"{gerund[0]} and {gerund[1]}"


def caption(objects: Sequence[dict[str, Any]], sound_class: str | None, rng: np.random.Generator,
            template: str | None = None) -> str:
    """One random caption of a scene.

    Args:
        objects: ``[{"shape", "color", "action"}]``, primary object first.
        sound_class: ESC-10 class heard, or ``None`` for no sound source.
        rng: Random generator (the only source of randomness).
        template: A template of :data:`SOUND_TEMPLATES` / :data:`SILENT_TEMPLATES` to use
            (random when ``None``).

    Returns:
        A lower-case sentence without punctuation.
    """
    visual, gerund = _visual(objects, rng)
    if sound_class is None:
        return (template or _pick(rng, SILENT_TEMPLATES)).format(V=visual, G=gerund)
    source = SOUND_SOURCES[sound_class]
    template = template or _pick(rng, SOUND_TEMPLATES)
    return template.format(V=visual, G=gerund, S=_pick(rng, source.clauses), N=_pick(rng, source.nominals))


def captions(objects: Sequence[dict[str, Any]], sound_class: str | None, rng: np.random.Generator,
             count: int = 5, max_tries: int = 200) -> list[str]:
    """``count`` distinct captions of one scene, each from a different sentence frame.

    Raises:
        RuntimeError: The grammar could not produce ``count`` distinct sentences (a bug).
    """
    frames = SILENT_TEMPLATES if sound_class is None else SOUND_TEMPLATES
    order = [frames[int(i)] for i in rng.permutation(len(frames))]
    out: list[str] = []
    for attempt in range(max_tries):
        sent = caption(objects, sound_class, rng, template=order[attempt % len(order)])
        if sent not in out:
            out.append(sent)
            if len(out) == count:
                return out
    raise RuntimeError(f"grammar produced only {len(out)} distinct captions for {objects}, {sound_class}")
