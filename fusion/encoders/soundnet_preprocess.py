"""SoundNet's input policy: sample rate, x256 scaling, and padding at the end of the clip.

The bundle (:class:`fusion.encoders.soundnet.SoundNetBundle`) owns one
:class:`SoundNetPreprocess`, as torchvision weight bundles own their transforms. It turns a
mono waveform in [-1, 1] at 22,050 Hz into the network's input and says which output steps of
each layer belong to the clip.

Why padding: the conv layers pad with zeros, and a head step (``conv8``, 14.5 s receptive
field, one step per 2.97 s) whose window reaches those zeros is degenerate: its logits fall to
-20 .. -120 (against about +2 elsewhere) and its softmax is one junk class at p = 0.4-1.0
(``parking_garage_outdoor``, ``museum_indoor``). Measured on real MSR-VTT clips and on
``railroad_audio.wav`` (``scripts/soundnet_tail.py``). Two places meet it:

* **Short audio** (under :data:`PAD_TO_SAMPLES`, 12 s): the heads need 9.5 s for one step, and
  a step that only just fits is dominated by the padding. The clip is repeat-padded (tiled)
  to 12 s, all head steps of that input are kept, and each layer's features are cropped to
  the steps that cover the real audio (``ceil(samples / hop)``, at least 1). The head step's
  window ends 358 samples (16 ms) past the 12-s input, harmlessly (its logits stay healthy);
  so do the kept feature steps, except the last pool5 / conv6 / conv7 step of a clip of
  11.89-12 s, which reaches 0.4 / 0.8 / 1.5 s past it (left so, to keep every shorter clip's
  numbers as they were).
* **The tail of longer audio** (``tail``): the original model's last head step reads the
  padding whenever the clip ends just past a step boundary (about every other length). With
  ``tail="repeat"`` (default) the clip's beginning is appended after its end, with
  ``"reflect"`` its last seconds mirrored, just enough that every kept step of every layer
  reads audio, never the layers' zeros (:meth:`SoundNetPreprocess.tail_samples`). The heads
  keep as many steps as the original model gives for the clip; the features keep the steps
  that cover the real audio, as for short audio. ``tail="original"`` runs audio of 12 s or
  more as is, exactly as the original model (for fidelity checks against other builds).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from fusion.encoders.bundle import mono_waveform
from fusion.encoders.soundnet_spec import SOUNDNET_HOP_SAMPLES, SOUNDNET_LAYERS, output_lengths, receptive_field
from fusion.errors import ConfigError

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 22050
INPUT_SCALE = 256.0  # waveform [-1, 1] -> [-256, 256], the range SoundNet was trained on
PAD_TO_SAMPLES: int = 12 * SAMPLE_RATE_HZ  # short audio is tiled to 12 s
TAIL_MODES: tuple[str, ...] = ("repeat", "reflect", "original")


@dataclass(frozen=True)
class PreparedAudio:
    """One waveform made ready for SoundNet.

    Attributes:
        samples: float32 ``(S',)`` network input, scaled and padded.
        num_real: samples of real audio at its start (``S``).
        head_steps: ``conv8`` / ``conv8_2`` steps that belong to the clip (the first ones).
        feature_steps: per layer, the first steps that belong to the clip.
    """

    samples: np.ndarray
    num_real: int
    head_steps: int
    feature_steps: dict[str, int]


@dataclass(frozen=True)
class SoundNetPreprocess:
    """Waveform -> SoundNet input (see the module docstring for the padding policy).

    Attributes:
        sample_rate_hz: the rate the waveform must have (22,050 Hz mono).
        input_scale: factor applied to a [-1, 1] waveform (256).
        pad_to_samples: shorter audio is tiled to this length (12 s).
        tail: ``"repeat"``, ``"reflect"`` or ``"original"`` (see the module docstring).

    Raises:
        ConfigError: unknown ``tail``.
    """

    sample_rate_hz: int = SAMPLE_RATE_HZ
    input_scale: float = INPUT_SCALE
    pad_to_samples: int = PAD_TO_SAMPLES
    tail: str = "repeat"

    def __post_init__(self) -> None:
        if self.tail not in TAIL_MODES:
            raise ConfigError(f"SoundNet tail {self.tail!r} is unknown; use one of {', '.join(TAIL_MODES)}")

    def describe(self) -> str:
        """One readable paragraph of what :meth:`prepare` does."""
        seconds = self.pad_to_samples / self.sample_rate_hz
        tail = {
            "repeat": "the clip's beginning appended after its end",
            "reflect": "the clip's last seconds mirrored after its end",
            "original": "nothing (the original model: its last step may read the layers' zero padding)",
        }[self.tail]
        return (f"mono {self.sample_rate_hz} Hz waveform in [-1, 1], scaled by {self.input_scale:g}; "
                f"audio under {seconds:g} s tiled to {seconds:g} s; longer audio padded at the end with {tail}; "
                f"features cropped to the steps covering the real audio (tail={self.tail})")

    def tail_samples(self, num_samples: int) -> int:
        """Samples appended after audio of ``num_samples`` (>= ``pad_to_samples``), 0 for ``original``.

        Just enough that the last kept step of every layer and of the heads reads audio only.
        """
        if self.tail == "original" or num_samples < self.pad_to_samples:
            return 0
        last = receptive_field("conv8", output_lengths(num_samples)["conv8"] - 1)[1]
        for layer in SOUNDNET_LAYERS:
            last = max(last, receptive_field(layer, _covering_steps(num_samples, layer) - 1)[1])
        return max(0, last + 1 - num_samples)

    def prepare(self, waveform: np.ndarray) -> PreparedAudio:
        """Scale and pad one waveform, and say which output steps belong to it.

        Args:
            waveform: float32 ``(S,)`` mono at :attr:`sample_rate_hz` in [-1, 1], ``S >= 1``.

        Returns:
            :class:`PreparedAudio`.

        Raises:
            DataError: empty or non-1-D waveform.
        """
        wave = mono_waveform(waveform, "SoundNet")
        num_real = int(wave.size)
        covering = {layer: _covering_steps(num_real, layer) for layer in SOUNDNET_LAYERS}
        if num_real < self.pad_to_samples:  # tile: the heads only ever see the real sound
            wave = np.tile(wave, math.ceil(self.pad_to_samples / num_real))[: self.pad_to_samples]
            head_steps = output_lengths(self.pad_to_samples)["conv8"]
        elif self.tail == "original":
            lengths = output_lengths(num_real)
            head_steps, covering = lengths["conv8"], {layer: lengths[layer] for layer in SOUNDNET_LAYERS}
        else:
            extra = self.tail_samples(num_real)
            if extra:
                wave = np.pad(wave, (0, extra), mode="wrap" if self.tail == "repeat" else "reflect")
            head_steps = output_lengths(num_real)["conv8"]
        return PreparedAudio(samples=wave * np.float32(self.input_scale), num_real=num_real,
                             head_steps=head_steps, feature_steps=covering)


def _covering_steps(num_samples: int, layer: str) -> int:
    """Steps of ``layer`` that start inside ``num_samples`` of audio (at least 1)."""
    return max(1, math.ceil(num_samples / SOUNDNET_HOP_SAMPLES[layer]))


SOUNDNET_PREPROCESS = SoundNetPreprocess()
