"""Semantics of the audio-visual benchmark (``data_prep.avsynth``), shared with evaluation.

The benchmark's clips show 1-2 coloured shapes doing one action each while one ESC-10
sound source may be heard. This module is the single source of truth for the words that
name each thing, so the generator's captions and :func:`judge_caption` can never drift.

Word sets are built to be unambiguous: no word identifies two sound sources, and no sound
word is a shape, colour or action cue (e.g. rain "pours" rather than "falls", because
"falls" means *moves down*). ``tests/test_avsynth.py`` checks these disjointness rules.

Judging a caption (:func:`judge_caption`):

* ``sound_named``: ``None`` when the clip has no sound source (silent track or no audio
  stream); otherwise whether any word of the true source (its nouns and cue verbs) occurs.
* ``false_sound``: the caption names a sound source that is not there (any other source's
  word, or any sound word at all in a clip without a source).
* ``visual_correct``: the caption describes the *primary* object (``meta["objects"][0]``)
  with the right shape, colour and action. A mention is a shape word; its colour is the
  last colour word between the previous mention and it; its action is the first action
  cue between it and the next mention. For 2-object clips the reference captions always
  name the primary object first; a caption is visually correct when *any* of its mentions
  matches the primary object in all three, so a caption that also describes the second
  object (right or wrong) or names the objects in the other order still counts, while one
  that describes only the secondary object does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fusion.text import tokenize


@dataclass(frozen=True)
class SoundSource:
    """How captions talk about one ESC-10 class.

    Attributes:
        esc_class: ESC-10 class name, e.g. ``"Dog bark"``.
        noun: The canonical source noun (``meta["sound_noun"]``), e.g. ``"dog"``.
        synonyms: Nouns that name the source, canonical first (``meta["sound_synonyms"]``).
        cues: Other words that identify the source (verbs such as ``"barking"``).
        clauses: Finite clauses, e.g. ``"a dog barks"``.
        nominals: Noun phrases, e.g. ``"a barking dog"`` (used in "to the sound of ...").
            Every clause and nominal contains one of ``synonyms`` as a word, so each
            reference caption of a clip with a sound names the source by a listed noun.
    """

    esc_class: str
    noun: str
    synonyms: tuple[str, ...]
    cues: tuple[str, ...]
    clauses: tuple[str, ...]
    nominals: tuple[str, ...]

    @property
    def keywords(self) -> frozenset[str]:
        """Every word that, alone, names this source."""
        return frozenset(self.synonyms) | frozenset(self.cues)


# ESC-10 classes in the dataset's folder order (001 - Dog bark ... 010 - Fire crackling).
SOUND_SOURCES: dict[str, SoundSource] = {
    s.esc_class: s
    for s in (
        SoundSource("Dog bark", "dog", ("dog", "puppy"), ("barks", "barking", "bark"),
                    ("a dog barks", "a dog is barking", "a puppy barks", "a dog can be heard barking"),
                    ("a barking dog", "a dog barking", "a dog")),
        SoundSource("Rain", "rain", ("rain", "rainfall"), ("raining", "rains", "downpour"),
                    ("rain is pouring", "the rain pours", "rain is pattering", "rain can be heard"),
                    ("rain", "heavy rain", "rainfall")),
        SoundSource("Sea waves", "waves", ("waves", "sea", "ocean", "surf"), ("crash", "crashing"),
                    ("waves crash", "the sea roars", "ocean waves are crashing", "waves can be heard"),
                    ("ocean waves", "the sea", "crashing waves")),
        SoundSource("Baby cry", "baby", ("baby", "infant"), ("cries", "crying", "cry", "wails"),
                    ("a baby cries", "a baby is crying", "an infant wails", "a baby can be heard crying"),
                    ("a crying baby", "a baby crying", "a baby")),
        SoundSource("Clock tick", "clock", ("clock",), ("ticks", "ticking", "tick"),
                    ("a clock ticks", "a clock is ticking", "a clock can be heard ticking"),
                    ("a ticking clock", "a clock ticking", "a clock")),
        SoundSource("Person sneeze", "person", ("person", "someone"), ("sneezes", "sneezing", "sneeze"),
                    ("a person sneezes", "someone sneezes", "someone is sneezing",
                     "a person can be heard sneezing"),
                    ("a person sneezing", "someone sneezing", "a person sneezing loudly")),
        SoundSource("Helicopter", "helicopter", ("helicopter", "chopper"), ("hovers", "hovering", "flies"),
                    ("a helicopter flies overhead", "a helicopter is hovering", "a chopper hovers",
                     "a helicopter can be heard"),
                    ("a helicopter", "a hovering helicopter", "a chopper")),
        SoundSource("Chainsaw", "chainsaw", ("chainsaw",), ("buzzes", "buzzing", "cutting", "cuts"),
                    ("a chainsaw buzzes", "a chainsaw is running", "a chainsaw is cutting wood",
                     "a chainsaw can be heard"),
                    ("a chainsaw", "a buzzing chainsaw", "a chainsaw cutting wood")),
        SoundSource("Rooster", "rooster", ("rooster", "cockerel"), ("crows", "crowing", "crow"),
                    ("a rooster crows", "a rooster is crowing", "a cockerel crows", "a rooster can be heard crowing"),
                    ("a crowing rooster", "a rooster crowing", "a rooster")),
        SoundSource("Fire crackling", "fire", ("fire", "campfire", "flames"), ("crackles", "crackling", "burns"),
                    ("a fire crackles", "a fire is crackling", "a campfire burns", "flames can be heard crackling"),
                    ("a crackling fire", "a fire crackling", "a campfire")),
    )
}

SHAPES: dict[str, tuple[str, ...]] = {  # shape -> caption words (canonical first)
    "circle": ("circle", "ball", "disc"),
    "square": ("square", "box"),
    "triangle": ("triangle",),
    "star": ("star",),
}
COLORS: dict[str, tuple[int, int, int]] = {  # colour word -> saturated sRGB
    "red": (230, 25, 35),
    "green": (20, 200, 60),
    "blue": (30, 70, 245),
    "yellow": (250, 220, 20),
    "purple": (150, 40, 210),
}
ACTIONS: tuple[str, ...] = (
    "moves_left", "moves_right", "moves_up", "moves_down", "bounces", "spins", "grows", "shrinks",
)
# Action -> finite verb phrases (3rd person present) and gerund phrases; every phrase
# contains cue words of ACTION_CUES for its own action only.
ACTION_PHRASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "moves_left": (("moves to the left", "moves left", "slides to the left", "goes left", "travels left"),
                   ("moving to the left", "moving left", "sliding to the left", "going left")),
    "moves_right": (("moves to the right", "moves right", "slides to the right", "goes right", "travels right"),
                    ("moving to the right", "moving right", "sliding to the right", "going right")),
    "moves_up": (("moves up", "goes up", "rises", "moves upward", "climbs up"),
                 ("moving up", "going up", "rising", "moving upward")),
    "moves_down": (("moves down", "goes down", "falls", "sinks", "moves downward"),
                   ("moving down", "going down", "falling", "sinking")),
    "bounces": (("bounces", "is bouncing", "bounces around", "keeps bouncing"),
                ("bouncing", "bouncing around")),
    "spins": (("spins", "is spinning", "rotates", "spins around", "is rotating"),
              ("spinning", "rotating", "spinning around")),
    "grows": (("grows", "gets bigger", "is growing", "grows larger", "expands"),
              ("growing", "getting bigger", "expanding", "growing larger")),
    "shrinks": (("shrinks", "gets smaller", "is shrinking", "becomes smaller", "contracts"),
                ("shrinking", "getting smaller", "contracting")),
}
ACTION_CUES: dict[str, str] = {  # cue word -> action
    **{w: "moves_left" for w in ("left",)},
    **{w: "moves_right" for w in ("right",)},
    **{w: "moves_up" for w in ("up", "upward", "rises", "rising")},
    **{w: "moves_down" for w in ("down", "downward", "falls", "falling", "sinks", "sinking")},
    **{w: "bounces" for w in ("bounces", "bouncing", "bounce")},
    **{w: "spins" for w in ("spins", "spinning", "spin", "rotates", "rotating")},
    **{w: "grows" for w in ("grows", "growing", "bigger", "larger", "expands", "expanding")},
    **{w: "shrinks" for w in ("shrinks", "shrinking", "smaller", "contracts", "contracting")},
}
SHAPE_WORDS: dict[str, str] = {w: shape for shape, words in SHAPES.items() for w in words}
SOUND_WORDS: dict[str, str] = {w: cls for cls, s in SOUND_SOURCES.items() for w in s.keywords}


@dataclass(frozen=True)
class ObjectMention:
    """A shape named in a caption, with the colour and action attached to it (or None)."""

    shape: str
    color: str | None
    action: str | None


@dataclass(frozen=True)
class CaptionJudgement:
    """What a caption gets right about a benchmark clip (see the module docstring)."""

    sound_named: bool | None
    false_sound: bool
    visual_correct: bool
    shape_correct: bool
    color_correct: bool
    action_correct: bool
    named_sounds: tuple[str, ...]  # ESC-10 classes whose words occur


def parse_mentions(words: list[str]) -> list[ObjectMention]:
    """Find object mentions (shape words) with their colour and action in a token list."""
    shape_pos = [i for i, w in enumerate(words) if w in SHAPE_WORDS]
    mentions: list[ObjectMention] = []
    for k, pos in enumerate(shape_pos):
        start = shape_pos[k - 1] + 1 if k > 0 else 0
        end = shape_pos[k + 1] if k + 1 < len(shape_pos) else len(words)
        color = next((w for w in reversed(words[start:pos]) if w in COLORS), None)
        action = next((ACTION_CUES[w] for w in words[pos + 1:end] if w in ACTION_CUES), None)
        mentions.append(ObjectMention(SHAPE_WORDS[words[pos]], color, action))
    return mentions


def judge_caption(caption: str, meta: Mapping[str, Any]) -> CaptionJudgement:
    """Judge a generated caption against a benchmark clip's ``meta``.

    Args:
        caption: A caption (any case/punctuation; tokenized with :func:`fusion.text.tokenize`).
        meta: The clip's manifest ``meta`` (``objects``, ``sound_class``, ``audio_kind``...).

    Returns:
        The judgement; see the module docstring for the definitions.
    """
    words = tokenize(caption)
    named = tuple(sorted({SOUND_WORDS[w] for w in words if w in SOUND_WORDS}))
    true_class = meta.get("sound_class") if meta.get("audio_kind", "sound") == "sound" else None
    sound_named = None if true_class is None else true_class in named
    false_sound = any(c != true_class for c in named)
    primary = (meta.get("objects") or [{}])[0]
    mentions = parse_mentions(words)
    shape_ok = any(m.shape == primary.get("shape") for m in mentions)
    color_ok = any(m.shape == primary.get("shape") and m.color == primary.get("color") for m in mentions)
    action_ok = any(m.shape == primary.get("shape") and m.action == primary.get("action") for m in mentions)
    visual = any(m.shape == primary.get("shape") and m.color == primary.get("color")
                 and m.action == primary.get("action") for m in mentions)
    return CaptionJudgement(sound_named=sound_named, false_sound=false_sound, visual_correct=visual,
                            shape_correct=shape_ok, color_correct=color_ok, action_correct=action_ok,
                            named_sounds=named)
