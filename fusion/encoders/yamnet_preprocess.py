"""YAMNet's input: 16 kHz mono waveform -> log-mel spectrogram -> 0.96 s patches.

The parameters are those of the original model (tensorflow/models ``research/audioset/yamnet``,
``params.py`` and ``features.py``; Plakal & Ellis, 2020): audio at 16 kHz in [-1, 1]; a
25 ms periodic Hann window (400 samples) hopped by 10 ms (160), zero-padded on both sides to a
512-point DFT (``_tflite_stft_magnitude``); magnitude; 64 mel bands (HTK mel scale, 125-7500 Hz,
``tf.signal.linear_to_mel_weight_matrix``); ``log(mel + 0.001)``; patches of 96 frames (0.96 s) hopped by 48 frames (0.48 s). The waveform
is zero-padded at its end as ``features.pad_waveform`` does: to at least one patch (15,600
samples: 0.96 s + one window - one hop) and then to a whole number of patch hops, so every
patch is the spectrogram of one 15,600-sample window of the waveform, the TFLite model's input.

The TFLite file computes the same spectrogram with matrix products (a cosine and a sine DFT
matrix, ``(257, 512)``, and the mel matrix, ``(64, 257)``, stored as int8 with scales).
:class:`LogMelFrontEnd` is built from the parameters here; loading the file replaces its
matrices by the file's dequantised ones (:mod:`fusion.encoders.yamnet`), so the PyTorch model
computes what the file computes.

The TFLite interpreter runs those int8 matrices (and the network's int8 layers) as "dynamic
range" kernels that round each input row (a frame, a spectrum) to int8 on the fly
(:mod:`fusion.encoders.dynamic_int8`). For the spectrum this matters: bins under 1/255 of a
frame's loudest bin become 0, so quiet bands of a frame fall to ``log(0.001)``. With
``activations="dynamic_int8"`` (the default) the front end computes exactly that; ``"float"``
keeps float32 activations, as the original TensorFlow model computed.

The project's audio is 22,050 Hz (:mod:`fusion.media`); :meth:`YAMNetPreprocess.prepare`
resamples it to 16 kHz (:func:`fusion.encoders.bundle.resample`, torchaudio's windowed sinc;
the original inference code used resampy).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from fusion.encoders.bundle import mono_waveform, resample
from fusion.encoders.dynamic_int8 import DerivedTensors, dynamic_int8_linear, integer_weight, symmetric_scales

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16000
ACTIVATION_MODES: tuple[str, ...] = ("dynamic_int8", "float")
MEL_BREAK_HZ, MEL_HIGH_Q = 700.0, 1127.0  # HTK mel scale, as tf.signal.mel_ops


@dataclass(frozen=True)
class PreparedWaveform:
    """A waveform made ready for YAMNet.

    Attributes:
        samples: float32 ``(S',)`` 16 kHz waveform, zero-padded to a whole number of patches.
        num_real: samples of real (resampled) audio at its start.
        num_patches: the patches it gives (``1 + (S' - patch_samples) / patch_hop_samples``).
    """

    samples: np.ndarray
    num_real: int
    num_patches: int


@dataclass(frozen=True)
class YAMNetPreprocess:
    """Waveform -> log-mel patches, with YAMNet's parameters (see the module docstring).

    Attributes:
        sample_rate_hz: the model's rate (16 kHz).
        window_samples: STFT window (25 ms).
        hop_samples: STFT hop (10 ms).
        fft_length: DFT size (next power of two of the window).
        mel_bands: mel channels.
        mel_min_hz: lowest mel edge.
        mel_max_hz: highest mel edge.
        log_offset: added before the log.
        patch_frames: spectrogram frames per patch (0.96 s).
        patch_hop_frames: frames between patch starts (0.48 s).
    """

    sample_rate_hz: int = SAMPLE_RATE_HZ
    window_samples: int = 400
    hop_samples: int = 160
    fft_length: int = 512
    mel_bands: int = 64
    mel_min_hz: float = 125.0
    mel_max_hz: float = 7500.0
    log_offset: float = 0.001
    patch_frames: int = 96
    patch_hop_frames: int = 48

    @property
    def patch_samples(self) -> int:
        """Waveform samples behind one patch (15,600 = 0.975 s)."""
        return (self.patch_frames - 1) * self.hop_samples + self.window_samples

    @property
    def patch_hop_samples(self) -> int:
        """Waveform samples between patch starts (7,680 = 0.48 s)."""
        return self.patch_hop_frames * self.hop_samples

    @property
    def patch_seconds(self) -> float:
        """Duration of one patch's frames (0.96 s)."""
        return self.patch_frames * self.hop_samples / self.sample_rate_hz

    @property
    def patch_hop_seconds(self) -> float:
        """Time between patch starts (0.48 s)."""
        return self.patch_hop_samples / self.sample_rate_hz

    def describe(self) -> str:
        """One readable paragraph of what :meth:`prepare` and the front end do."""
        ms = 1000.0 / self.sample_rate_hz
        return (f"mono waveform in [-1, 1] resampled to {self.sample_rate_hz} Hz; zero-padded at the end to "
                f"{self.patch_samples} samples and then to a whole number of {self.patch_hop_samples}-sample hops; "
                f"periodic Hann window of {self.window_samples * ms:g} ms hopped by {self.hop_samples * ms:g} ms, "
                f"{self.fft_length}-point DFT magnitude, {self.mel_bands} mel bands {self.mel_min_hz:g}-"
                f"{self.mel_max_hz:g} Hz (HTK), log(mel + {self.log_offset:g}); patches of {self.patch_frames} "
                f"frames ({self.patch_seconds:g} s) hopped by {self.patch_hop_frames} ({self.patch_hop_seconds:g} s)")

    def pad(self, waveform: np.ndarray) -> np.ndarray:
        """Zero-pad a 16 kHz waveform as ``features.pad_waveform``: one patch, then whole hops."""
        size = max(int(waveform.size), self.patch_samples)
        hops = math.ceil((size - self.patch_samples) / self.patch_hop_samples)
        target = self.patch_samples + hops * self.patch_hop_samples
        return np.pad(waveform, (0, target - waveform.size)) if target > waveform.size else waveform

    def prepare(self, waveform: np.ndarray, sample_rate_hz: int = 22050) -> PreparedWaveform:
        """Resample and pad one waveform.

        Args:
            waveform: float32 ``(S,)`` mono in [-1, 1], ``S >= 1``.
            sample_rate_hz: its rate (the project decodes audio at 22,050 Hz).

        Returns:
            :class:`PreparedWaveform`.

        Raises:
            DataError: empty or non-1-D waveform.
        """
        wave = resample(mono_waveform(waveform, "YAMNet"), sample_rate_hz, self.sample_rate_hz)
        padded = self.pad(wave)
        patches = 1 + (padded.size - self.patch_samples) // self.patch_hop_samples
        return PreparedWaveform(samples=np.ascontiguousarray(padded), num_real=int(wave.size), num_patches=patches)


def hertz_to_mel(hertz: np.ndarray) -> np.ndarray:
    """HTK mel scale, as ``tf.signal.mel_ops``: ``1127 * ln(1 + f / 700)``."""
    return MEL_HIGH_Q * np.log1p(np.asarray(hertz, dtype=np.float64) / MEL_BREAK_HZ)


def mel_matrix(params: YAMNetPreprocess) -> np.ndarray:
    """``tf.signal.linear_to_mel_weight_matrix`` transposed: float32 ``(mel_bands, fft_length // 2 + 1)``.

    Triangles on the mel scale between equally spaced mel edges; the DC bin gets no weight.
    """
    bins = params.fft_length // 2 + 1
    freqs_mel = hertz_to_mel(np.linspace(0.0, params.sample_rate_hz / 2.0, bins)[1:])[:, None]  # (bins-1, 1)
    edges = np.linspace(hertz_to_mel(params.mel_min_hz), hertz_to_mel(params.mel_max_hz), params.mel_bands + 2)
    lower, center, upper = edges[:-2][None], edges[1:-1][None], edges[2:][None]  # (1, M) each
    rising = (freqs_mel - lower) / (center - lower)
    falling = (upper - freqs_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))  # (bins-1, M)
    return np.pad(weights, ((1, 0), (0, 0))).T.astype(np.float32)  # (M, bins)


def dft_matrices(params: YAMNetPreprocess) -> tuple[np.ndarray, np.ndarray]:
    """Real-input DFT as two float32 ``(fft_length // 2 + 1, fft_length)`` matrices: cosine and sine."""
    k = np.arange(params.fft_length // 2 + 1)[:, None]
    n = np.arange(params.fft_length)[None]
    angle = 2.0 * np.pi * k * n / params.fft_length
    return np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)


def periodic_hann(length: int) -> np.ndarray:
    """``tf.signal.hann_window(length, periodic=True)`` as float32 ``(length,)``."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)).astype(np.float32)


class LogMelFrontEnd(nn.Module):
    """16 kHz waveform -> log-mel frames, as matrix products (what the TFLite file computes).

    Args:
        params: the spectrogram parameters; the matrices are built from them and may be
            replaced by a weight file's (same shapes).
        activations: ``"dynamic_int8"`` (round the products' inputs as the TFLite interpreter)
            or ``"float"``.
    """

    def __init__(self, params: YAMNetPreprocess, activations: str = "dynamic_int8") -> None:
        super().__init__()
        self.params = params
        self.quantize = activations == "dynamic_int8"
        cosine, sine = dft_matrices(params)
        self.register_buffer("window", torch.from_numpy(periodic_hann(params.window_samples)))  # (W,)
        self.register_buffer("dft_real", torch.from_numpy(cosine))  # (K, N)
        self.register_buffer("dft_imag", torch.from_numpy(sine))  # (K, N)
        self.register_buffer("mel", torch.from_numpy(mel_matrix(params)))  # (M, K)
        self.register_buffer("mel_offset", torch.full((params.mel_bands,), params.log_offset))  # (M,)
        # int8 scales of the matrices (per output row), as the converter quantised them; a file replaces them
        self.register_buffer("dft_real_scale", symmetric_scales(self.dft_real))  # (K,)
        self.register_buffer("dft_imag_scale", symmetric_scales(self.dft_imag))  # (K,)
        self.register_buffer("mel_scale", symmetric_scales(self.mel))  # (M,)
        self.derived = DerivedTensors()  # the int8 matrices' integers, built once

    def _dft_int8(self) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """The cosine and sine matrices stacked ``(2K, N)``, their scales ``(2K,)`` and integer weights."""
        def build() -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
            dft = torch.cat([self.dft_real, self.dft_imag])
            scale = torch.cat([self.dft_real_scale, self.dft_imag_scale])
            return dft, scale, integer_weight(dft, scale)

        sources = (self.dft_real, self.dft_imag, self.dft_real_scale, self.dft_imag_scale)
        return self.derived.get("dft", sources, build)

    def forward(self, waveform: Tensor) -> Tensor:
        """Args: waveform float32 ``(B, S)``, ``S >= window``. Returns: float32 ``(B, F, M)`` log-mel frames."""
        p = self.params
        frames = waveform.unfold(-1, p.window_samples, p.hop_samples) * self.window  # (B, F, W)
        half = (p.fft_length - p.window_samples) // 2  # centred, as features._tflite_stft_magnitude pads
        frames = nn.functional.pad(frames, (half, p.fft_length - p.window_samples - half))  # (B, F, N)
        if self.quantize:
            dft, scale, integers = self._dft_int8()  # (2K, N), (2K,): one rounding of each frame for both
            spectrum = dynamic_int8_linear(frames, dft, scale, None, integers)
            real, imag = spectrum.chunk(2, dim=-1)  # (B, F, K) each
        else:
            real, imag = frames @ self.dft_real.T, frames @ self.dft_imag.T  # (B, F, K) each
        magnitude = torch.sqrt(real * real + imag * imag)
        if self.quantize:
            integers = self.derived.get("mel", (self.mel, self.mel_scale), lambda: integer_weight(self.mel, self.mel_scale))
            return torch.log(dynamic_int8_linear(magnitude, self.mel, self.mel_scale, self.mel_offset, integers))
        return torch.log(magnitude @ self.mel.T + self.mel_offset)  # (B, F, M)

    def patches(self, waveform: Tensor) -> Tensor:
        """Args: waveform float32 ``(B, S)`` padded by :meth:`YAMNetPreprocess.pad`.

        Returns:
            float32 ``(B, P, patch_frames, M)`` log-mel patches.
        """
        log_mel = self(waveform)  # (B, F, M)
        return log_mel.unfold(1, self.params.patch_frames, self.params.patch_hop_frames).transpose(2, 3)


YAMNET_PREPROCESS = YAMNetPreprocess()
