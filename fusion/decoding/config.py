"""How to decode: :class:`DecodeConfig`, the one decode configuration, and where its value comes from.

One dataclass describes every decoding setting: it is the ``decode`` section of an experiment
config (``RUN/config.yaml``), what ``fusion evaluate`` / ``caption`` / ``tune`` / ``ablate``
override from their command line, and what :class:`fusion.decoding.decoder.CaptionDecoder`
decodes with. Its checks live in ``__post_init__`` and run once, when a value is built.

:func:`resolve_decode_config` is the one place a run's effective decode configuration is
made, always in this order (later wins, field by field)::

    DecodeConfig() defaults  <  the run's decode section  <  command-line overrides

The run's decode section is ``RUN/config.yaml``'s (``fusion train`` and ``fusion tune`` write
it; decode settings do not bind a run) or, for a checkpoint outside a run folder, the one
saved in the checkpoint. Nothing else is read: no side file changes captions.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
import typing
from typing import Any, Literal, Mapping, Protocol

from fusion.errors import ConfigError
from fusion.paths import LEARNED_VERIFIER, VERIFIER_FILE, run_folder

logger = logging.getLogger(__name__)

LMFusionMode = Literal["loglinear", "linear"]  # late fusion: log-linear (shallow) or linear interpolation
LM_MODES: tuple[LMFusionMode, ...] = typing.get_args(LMFusionMode)
# Fields added after runs were trained whose default changes captions, with the value that kept the
# earlier behaviour: a run's decode section written before a field existed (it lacks the key) still
# decodes as it did then (:func:`legacy_section`). Give the option (e.g. --no-repeat-ngram 3) to change it.
LEGACY_DEFAULTS: dict[str, Any] = {"no_repeat_ngram_size": 0, "no_immediate_repeat": False}


@dataclass
class DecodeConfig:
    """Every decoding setting (the ``decode`` section of a run's config).

    Attributes:
        beam_size: beams per video (``--beam``).
        nbest: captions kept per video, <= beam_size (``--nbest``).
        max_len: the most words per caption (``--max-len``).
        min_len: the fewest words before EOS may be emitted (``--min-len``).
        length_norm: rank finished captions by total / (words + 1).
        length_weight: weight of the ``"length"`` scorer, a bonus per token (0 = off).
        no_repeat_ngram_size: ban repeated n-grams of this size (0 = off). Default 5: none of
            the small benchmark's 2,250 training captions repeats a 5-gram (3 a 4-gram), while a
            captioner otherwise ends in loops ("a red the red the red") on clips unlike its
            training data (the README has the benchmark's metrics with and without it).
        no_immediate_repeat: ban the word just generated (no word twice in a row; none of the
            benchmark's captions and 0.1% of MSVD's have one). ``--allow-immediate-repeat``.
        no_sound_without_audio: for a video without an audio stream, ban every word that says
            something is heard ("heard", "sound", "barking"; :mod:`fusion.decoding.guards`).
            ``--allow-sound-without-audio``.
        no_repeat_bigram: ban a word pair already in the caption, unless both are function
            words ("to the"). ``--allow-repeated-bigrams``.
        no_dangling_end: no caption ends on an article, preposition or conjunction.
            ``--allow-dangling-end``. These three guards are on for every run, older ones
            included (they are not in :data:`LEGACY_DEFAULTS`): the README has the demo's
            metrics with and without them.
        allow_unk: let captions contain ``<unk>``.
        lm: language model for late fusion (``fusion lm train`` folder, Hugging Face folder
            or hub id), or None. ``fusion tune`` writes its choice here.
        lm_weight: alpha, the weight of ``"lm"`` (linear mode: the mixture weight in [0, 1]).
        lm_mode: ``"loglinear"`` (shallow fusion) or ``"linear"`` (interpolated probabilities).
        audio_weight: beta, the weight of the audio-noun verifier ``"audio"`` (0 = off).
        audio_penalty: the ``"audio"`` scorer's extra cost, at every mention, of an audible noun
            the sound contradicts (:class:`fusion.decoding.audio_scorer.AudioScorer`; 0 = the
            evidence alone). ``--audio-penalty``.
        audio_absent_penalty: the ``"audio"`` scorer's cost, at every mention, of an audible noun
            in a clip without an audio stream (0 = such clips get no audio score; keep 0 on
            video-only data such as MSVD). ``--audio-absent-penalty``.
        visual_weight: weight of the visual-noun verifier ``"visual"`` (0 = off): the frame CNN's
            ImageNet posteriors supporting the caption's linked words (:mod:`fusion.decoding.concept_scorer`).
        visual_negative_scale: share of the visual verifier's negative evidence kept (0 = support only).
        verifier: the verifier's evidence: None = zero-shot (SoundNet posteriors), a file
            (``fusion verifier train``), or ``"learned"``: fitted by ``fusion train`` into
            ``RUN/verifier.safetensors`` (resolved to that file by :func:`resolve_decode_config`).
        batch_size: videos decoded together (speed only; captions do not depend on it).
    """

    beam_size: int = 5
    nbest: int = 1
    max_len: int = 20
    min_len: int = 1
    length_norm: bool = True
    length_weight: float = 0.0
    no_repeat_ngram_size: int = 5
    no_immediate_repeat: bool = True
    no_sound_without_audio: bool = True
    no_repeat_bigram: bool = True
    no_dangling_end: bool = True
    allow_unk: bool = False
    lm: str | None = None
    lm_weight: float = 0.0
    lm_mode: LMFusionMode = "loglinear"
    audio_weight: float = 0.0
    audio_penalty: float = 0.0
    audio_absent_penalty: float = 0.0
    visual_weight: float = 0.0
    visual_negative_scale: float = 1.0
    verifier: str | None = None
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ConfigError(f"decode.beam_size={self.beam_size} is invalid: give --beam 1 or more")
        if not 1 <= self.nbest <= self.beam_size:
            raise ConfigError(f"decode.nbest={self.nbest} is invalid: give 1 <= --nbest <= beam size ({self.beam_size})")
        if self.max_len < 1 or not 0 <= self.min_len <= self.max_len:
            raise ConfigError(f"decode.min_len={self.min_len}, decode.max_len={self.max_len} are invalid: "
                              "need 0 <= --min-len <= --max-len and --max-len >= 1")
        if self.no_repeat_ngram_size < 0:
            raise ConfigError(f"decode.no_repeat_ngram_size={self.no_repeat_ngram_size} is invalid: give 0 (off) or more")
        if self.batch_size < 1:
            raise ConfigError(f"decode.batch_size={self.batch_size} is invalid: give --batch-size 1 or more")
        if self.audio_weight < 0:
            raise ConfigError(f"decode.audio_weight={self.audio_weight} is invalid: give --audio-weight >= 0")
        if self.visual_weight < 0 or self.visual_negative_scale < 0:
            raise ConfigError(f"decode.visual_weight={self.visual_weight}, visual_negative_scale="
                              f"{self.visual_negative_scale} are invalid: give --visual-weight / --visual-negative-scale >= 0")
        if self.audio_penalty < 0:
            raise ConfigError(f"decode.audio_penalty={self.audio_penalty} is invalid: give --audio-penalty >= 0")
        if self.audio_absent_penalty < 0:
            raise ConfigError(f"decode.audio_absent_penalty={self.audio_absent_penalty} is invalid: "
                              "give --audio-absent-penalty >= 0")
        if self.lm_mode not in LM_MODES:
            raise ConfigError(f"decode.lm_mode={self.lm_mode!r} is not one of {list(LM_MODES)}")
        if self.lm_weight < 0 or (self.lm_mode == "linear" and self.lm_weight > 1):
            raise ConfigError(f"decode.lm_weight={self.lm_weight} is invalid: give --lm-weight >= 0 "
                              "(in [0, 1] with --lm-mode linear)")
        if self.lm is None and self.lm_weight != 0:
            raise ConfigError(f"decode.lm_weight={self.lm_weight} is given without a language model: "
                              "name it with --lm PATH (or decode.lm in the run's config.yaml)")
        if self.lm is not None and self.lm_weight <= 0:
            raise ConfigError(f"decode.lm={self.lm!r} is given without a weight: add --lm-weight ALPHA > 0, or run "
                              "`fusion tune RUN --lm LM`, which writes its choice into the run's config.yaml")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field (what ``metrics.json`` records as ``decode``)."""
        return dataclasses.asdict(self)


class LoadedRun(Protocol):
    """What the decode configuration reads of a loaded run (:class:`fusion.checkpoint.LoadedRun` is one).

    Declared here rather than imported: the checkpoint module reads this one, so this one
    names no type of it (no import loop, not even a type-only one).
    """

    @property
    def config(self) -> Any:
        """The run's experiment config; its ``decode`` is a :class:`DecodeConfig`."""

    @property
    def checkpoint_dir(self) -> Path:
        """The checkpoint folder the run was loaded from."""


def legacy_section(section: Any) -> Any:
    """A stored decode section (mapping) with :data:`LEGACY_DEFAULTS` for the keys it lacks."""
    if not isinstance(section, dict):
        return section
    return {**{key: value for key, value in LEGACY_DEFAULTS.items() if key not in section}, **section}


def decode_fields() -> tuple[str, ...]:
    """The names of :class:`DecodeConfig`'s fields (what a command line may override)."""
    return tuple(f.name for f in dataclasses.fields(DecodeConfig))


def resolve_decode_config(run: LoadedRun | None = None, overrides: Mapping[str, Any] | None = None) -> DecodeConfig:
    """The effective decode configuration: defaults < the run's decode section < ``overrides``.

    Args:
        run: a loaded run; its ``config.decode`` is the run's section (``load_run`` reads
            ``RUN/config.yaml``'s, else the checkpoint's). None = defaults only.
        overrides: field -> value from a command line or a caller; None values keep the run's.

    Returns:
        A validated :class:`DecodeConfig`; ``verifier: learned`` is replaced by the run's
        ``RUN/verifier.safetensors`` path.

    Raises:
        ConfigError: an unknown field, an invalid combination (naming the option and the
            fix), or ``verifier: learned`` without the fitted file.
    """
    values: dict[str, Any] = dataclasses.asdict(run.config.decode) if run is not None else {}
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    unknown = sorted(set(given) - set(decode_fields()))
    if unknown:
        raise ConfigError(f"unknown decode option {unknown[0]!r}; known: {', '.join(decode_fields())}")
    values.update(given)
    if values.get("lm") is not None and not values.get("lm_weight") and run is not None:
        _explain_old_tuning(run, str(values["lm"]), str(values.get("lm_mode", "loglinear")))
    config = DecodeConfig(**values)
    if config.verifier == LEARNED_VERIFIER:
        config.verifier = str(_learned_verifier(run))
    return config


def _learned_verifier(run: LoadedRun | None) -> Path:
    if run is None:
        raise ConfigError("decode.verifier is 'learned' but no run is given to hold verifier.safetensors")
    folder = run_folder(run.checkpoint_dir)
    path = folder / VERIFIER_FILE
    if not path.is_file():
        raise ConfigError(f"{folder}: decode.verifier is 'learned' but {path.name} is missing; run "
                          f"`fusion train CONFIG --out {folder}` again to fit it (the weights are kept)")
    return path


def _explain_old_tuning(run: LoadedRun, lm: str, mode: str) -> None:
    """``--lm`` without a weight on a run tuned by an older fusion (``RUN/tune/lm_<mode>.json``,
    which no longer changes captions by itself): say which weight it chose and how to apply it."""
    import json

    path = run_folder(run.checkpoint_dir) / "tune" / f"lm_{mode}.json"
    try:
        choice = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(choice, dict) or "config" in choice:  # a current `fusion tune` applied its choice itself
        return
    alpha = choice.get("best_alpha")
    same_lm = choice.get("lm") == lm or Path(str(choice.get("lm", ""))).resolve() == Path(lm).resolve()
    if isinstance(alpha, (int, float)) and alpha > 0 and same_lm:
        raise ConfigError(f"{path} (written by an older `fusion tune`) chose lm_weight {alpha:g} for {lm}; it no longer "
                          f"applies by itself: give --lm-weight {alpha:g}, or re-run `fusion tune` to write the choice "
                          "into the run's config.yaml")
