"""The zero-shot captioner's settings and its folder (``fusion zeroshot build --out RUN``).

A zero-shot model folder::

    RUN/zeroshot.json                format, the ZeroShotConfig, the extraction settings, provenance
    RUN/lm/                          the LSTM caption LM trained on the real caption corpus (fusion.models.lm)
    RUN/neighbours.npz, .json.gz     the corpus clips indexed by their captions' linked words (fusion.zeroshot.neighbours)
    RUN/concept_links.json           the concept-link table it decodes with (a copy of the committed one)
    RUN/training_profile.safetensors unfamiliarity profile calibrated on real clips (fusion.ood)
    RUN/run_card.json                what the model knows (fusion.runcard)
    RUN/tune/                        the leave-one-out weight search on the development clips, when run
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusion.config import from_dict, to_dict
from fusion.errors import CheckpointError, ConfigError
from fusion.io import atomic_write_text

ZEROSHOT_FORMAT = "fusion.zeroshot/1"
MODES = ("consensus", "fused")
CONFIG_FILE = "zeroshot.json"
LM_DIR = "lm"
LINKS_FILE = "concept_links.json"


@dataclass
class ZeroShotConfig:
    """How the zero-shot captioner captions a clip.

    Two modes. ``"consensus"`` (the default): the caption of the corpus clips whose captions'
    linked words the clip's evidence supports best, chosen by the consensus of their captions
    (:mod:`fusion.zeroshot.neighbours`). ``"fused"``: beam search with the caption LM (weight 1)
    fused with the concept evidence of each word (:mod:`fusion.zeroshot.model`).

    Attributes:
        mode: ``"consensus"`` or ``"fused"``.
        neighbours: consensus mode: how many corpus clips vote.
        visual_weight: weight of ``"visual"``, the frame CNN's ImageNet evidence for linked words
            (consensus mode: its weight in the evidence that picks the neighbours).
        visual_negative_scale: share of the visual evidence against a word that is kept (0 = support only).
        audio_weight: weight of ``"audio"``, SoundNet (ImageNet, Places2) and AudioSet evidence of the sound
            (consensus mode: as ``visual_weight``).
        audio_negative_scale: the same share for the audio evidence.
        length_weight: weight of ``"length"`` (a bonus per token; fused mode).
        beam_size: beams per clip.
        nbest: captions kept per clip.
        max_len: the most words per caption.
        min_len: the fewest words per caption.
        no_repeat_ngram_size: ban repeated n-grams of this size.
        batch_size: clips decoded together.
    """

    mode: str = "consensus"
    neighbours: int = 160
    visual_weight: float = 1.0
    visual_negative_scale: float = 0.5
    audio_weight: float = 1.0
    audio_negative_scale: float = 0.0
    length_weight: float = 0.0
    beam_size: int = 5
    nbest: int = 1
    max_len: int = 15
    min_len: int = 3
    no_repeat_ngram_size: int = 2
    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"zeroshot.mode={self.mode!r} is invalid: use one of {', '.join(MODES)}")
        if self.neighbours < 2:
            raise ConfigError(f"zeroshot.neighbours={self.neighbours} is invalid: give 2 or more (a consensus needs other clips)")
        for name in ("visual_weight", "visual_negative_scale", "audio_weight", "audio_negative_scale"):
            if getattr(self, name) < 0:
                raise ConfigError(f"zeroshot.{name}={getattr(self, name)} is invalid: give a value >= 0")
        if self.beam_size < 1 or not 1 <= self.nbest <= self.beam_size:
            raise ConfigError(f"zeroshot beam_size={self.beam_size}, nbest={self.nbest} are invalid: need 1 <= nbest <= beam")
        if self.max_len < 1 or not 0 <= self.min_len <= self.max_len:
            raise ConfigError(f"zeroshot min_len={self.min_len}, max_len={self.max_len} are invalid")

    def replace(self, **changes: Any) -> ZeroShotConfig:
        """A copy with ``changes`` (None values keep this config's); ConfigError for an unknown field."""
        given = {k: v for k, v in changes.items() if v is not None}
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ConfigError(f"option {unknown[0]!r} does not apply to a zero-shot model; it takes {', '.join(sorted(known))}")
        return dataclasses.replace(self, **given)


@dataclass
class ZeroShotFolder:
    """What ``RUN/zeroshot.json`` holds: the config, the extraction settings and where things came from."""

    config: ZeroShotConfig
    extract: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: str | Path) -> None:
        """Write ``folder/zeroshot.json`` atomically."""
        data = {"format": ZEROSHOT_FORMAT, "config": to_dict(self.config), "extract": self.extract,
                "provenance": self.provenance}
        atomic_write_text(Path(folder) / CONFIG_FILE, json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> ZeroShotFolder:
        """Read ``folder/zeroshot.json``; CheckpointError naming the file if unusable."""
        path = Path(folder) / CONFIG_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CheckpointError(f"{path}: unreadable zero-shot model ({err}); rebuild it with "
                                  f"`fusion zeroshot build --out {folder}`") from None
        if not isinstance(data, dict) or data.get("format") != ZEROSHOT_FORMAT:
            raise CheckpointError(f"{path}: not a zero-shot model file; rebuild it with `fusion zeroshot build --out {folder}`")
        config = dict(data.get("config") or {})
        config.setdefault("mode", "fused")  # folders built before the consensus mode decode as they did
        return cls(from_dict(ZeroShotConfig, config), data.get("extract") or {},
                   data.get("provenance") or {})


def is_zeroshot_folder(path: str | Path) -> bool:
    """True when ``path`` is a zero-shot model folder (holds ``zeroshot.json``)."""
    return (Path(path) / CONFIG_FILE).is_file()
