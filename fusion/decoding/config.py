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
from typing import Any, Mapping, Protocol

from fusion.decoding.registry import SCORERS, close, with_weights
from fusion.errors import ConfigError
from fusion.paths import LEARNED_VERIFIER, VERIFIER_FILE, run_folder

logger = logging.getLogger(__name__)

# Fields added after runs were trained whose default changes captions, with the value that kept the
# earlier behaviour: a run's decode section written before a field existed (it lacks the key) still
# decodes as it did then (:func:`legacy_section`). Give the option (e.g. --no-repeat-ngram 3) to change it.
LEGACY_DEFAULTS: dict[str, Any] = {"no_repeat_ngram_size": 0, "no_immediate_repeat": False}


@dataclass
class SearchSettings:
    """The beam search's own settings; :class:`DecodeConfig` adds every registered scorer's.

    Attributes:
        beam_size: beams per video (``--beam``).
        nbest: captions kept per video, <= beam_size (``--nbest``).
        max_len: the most words per caption (``--max-len``).
        min_len: the fewest words before EOS may be emitted (``--min-len``).
        length_norm: rank finished captions by total / (words + 1).
        no_repeat_ngram_size: ban repeated n-grams of this size (0 = off); the default keeps a
            captioner out of loops ("a red the red the red") on clips unlike its training data.
        no_immediate_repeat: ban the word just generated (no word twice in a row).
            ``--allow-immediate-repeat``.
        no_sound_without_audio: for a video without an audio stream, ban every word that says
            something is heard ("heard", "sound", "barking"; :mod:`fusion.decoding.guards`).
            ``--allow-sound-without-audio``.
        no_repeat_bigram: ban a word pair already in the caption, unless both are function
            words ("to the"). ``--allow-repeated-bigrams``.
        no_dangling_end: no caption ends on an article, preposition or conjunction.
            ``--allow-dangling-end``. These three guards are on for every run, older ones
            included (they are not in :data:`LEGACY_DEFAULTS`).
        allow_unk: let captions contain ``<unk>``.
        batch_size: videos decoded together (speed only; captions do not depend on it).
    """

    beam_size: int = 5
    nbest: int = 1
    max_len: int = 20
    min_len: int = 1
    length_norm: bool = True
    no_repeat_ngram_size: int = 5
    no_immediate_repeat: bool = True
    no_sound_without_audio: bool = True
    no_repeat_bigram: bool = True
    no_dangling_end: bool = True
    allow_unk: bool = False
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
        for spec in SCORERS:
            spec.check(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field (what ``metrics.json`` records as ``decode``)."""
        return dataclasses.asdict(self)


def _with_scorer_settings(base: type[SearchSettings]) -> type[SearchSettings]:
    """``base`` plus one field per registered scorer setting (:mod:`fusion.decoding.registry`)."""
    settings = close()
    fields = [(s.name, s.type, dataclasses.field(default=s.default)) for s in settings]
    cls = dataclasses.make_dataclass("DecodeConfig", fields, bases=(base,))
    cls.__module__, cls.__qualname__ = __name__, "DecodeConfig"
    lines = "\n".join(f"        {s.name}: {s.help} (``{s.flag}``)." for s in settings)
    cls.__doc__ = ("Every decoding setting (the ``decode`` section of a run's config): the search's own\n"
                   "    (:class:`SearchSettings`) and each registered scorer's.\n\n    Scorer settings:\n" + lines)
    return cls


DecodeConfig = _with_scorer_settings(SearchSettings)


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


def resolve_decode_config(run: LoadedRun | None = None, overrides: Mapping[str, Any] | None = None,
                          weights: Mapping[str, float] | None = None) -> DecodeConfig:
    """The effective decode configuration: defaults < the run's decode section < ``overrides`` < ``weights``.

    Args:
        run: a loaded run; its ``config.decode`` is the run's section (``load_run`` reads
            ``RUN/config.yaml``'s, else the checkpoint's). None = defaults only.
        overrides: field -> value from a command line or a caller; None values keep the run's.
        weights: scorer name -> weight (a web page's sliders); 0 turns the scorer off as its
            declaration says (:func:`fusion.decoding.registry.with_weights`).

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
    if weights:
        config = with_weights(config, weights)
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
