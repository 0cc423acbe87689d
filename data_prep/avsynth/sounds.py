"""Sound sources of the benchmark: real ESC-10 recordings, or synthesised stand-ins.

ESC-10 (Piczak, ACM MM 2015) has 10 classes x 40 five-second clips in 5 folds; clips cut
from one source recording share a fold, so splitting by fold keeps test recordings unheard
in training. Folder names are ``"NNN - Class name"``, file names ``FOLD-FREESOUNDID-TAKE.ogg``.

Without ESC-10 on disk, :func:`synthetic_recordings` provides the same 10 classes x 5 folds x
8 takes as deterministic synthesised sounds with distinct timbres (barks are harmonic bursts,
rain is broadband noise, a clock is periodic clicks...), so the benchmark still runs on a
fresh machine; the manifest says ``sound_origin: "synthetic"``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

from fusion.benchmark import SOUND_SOURCES
from fusion.errors import DataError

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 22050  # SoundNet's input rate (Aytar et al., NeurIPS 2016); the clips are written at it
RECORDING_S = 5.0  # ESC-10 clip length
NOISE_STD = 0.003  # background noise floor, about -50 dBFS RMS: audible as hiss, far below the sources
SOURCE_RMS = 0.1  # sources are RMS-normalised to about -20 dBFS, then peak-limited
SYNTH_TAKES_PER_FOLD = 8  # as in ESC-10: 40 clips per class over 5 folds

_FOLDER_RE = re.compile(r"^(\d{3}) - (.+)$")
_FILE_RE = re.compile(r"^([1-5])-(\d+)-([A-Z])\.ogg$")


@dataclass(frozen=True)
class Recording:
    """One sound recording.

    Attributes:
        esc_class: ESC-10 class name (a key of ``fusion.benchmark.SOUND_SOURCES``).
        fold: ESC-10 fold, 1-5.
        name: ``"001 - Dog bark/1-100032-A.ogg"`` (relative to the ESC-10 folder) or
            ``"synthetic/Dog bark/1-A"``.
        path: Absolute file path; ``None`` for a synthesised recording.
    """

    esc_class: str
    fold: int
    name: str
    path: str | None


def find_esc10(esc10_dir: str | Path) -> list[Recording]:
    """List the ESC-10 recordings of a folder laid out as the original release.

    Raises:
        DataError: The folder holds no ESC-10 class folder or a class is missing.
    """
    root = Path(esc10_dir)
    recordings: list[Recording] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        match = _FOLDER_RE.match(folder.name)
        if not match or match.group(2) not in SOUND_SOURCES:
            continue
        for f in sorted(folder.iterdir()):
            fm = _FILE_RE.match(f.name)
            if fm:
                recordings.append(Recording(match.group(2), int(fm.group(1)), f"{folder.name}/{f.name}", str(f)))
    classes = {r.esc_class for r in recordings}
    if classes != set(SOUND_SOURCES):
        missing = sorted(set(SOUND_SOURCES) - classes)
        raise DataError(f"{root}: not an ESC-10 folder (missing classes: {', '.join(missing)}); "
                        "point --esc10 at the folder holding '001 - Dog bark' ... '010 - Fire crackling'")
    return recordings


def synthetic_recordings() -> list[Recording]:
    """The synthesised stand-in for ESC-10: every class x folds 1-5 x 8 takes."""
    return [Recording(c, fold, f"synthetic/{c}/{fold}-{chr(65 + take)}", None)
            for c in SOUND_SOURCES for fold in range(1, 6) for take in range(SYNTH_TAKES_PER_FOLD)]


@lru_cache(maxsize=512)
def _decode_file(path: str) -> np.ndarray:
    """Decode an audio file to mono float32 at :data:`SAMPLE_RATE_HZ` (cached per process)."""
    try:
        with av.open(path) as container:
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
            chunks = [g.to_ndarray().reshape(-1) for f in container.decode(stream) for g in resampler.resample(f)]
            chunks += [g.to_ndarray().reshape(-1) for g in resampler.resample(None)]
    except (av.error.FFmpegError, IndexError) as err:
        raise DataError(f"{path}: cannot decode ESC-10 recording ({err}); re-copy the ESC-10 folder") from None
    wave = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    wave.setflags(write=False)
    return wave


def load_recording(rec: Recording) -> np.ndarray:
    """The recording's waveform.

    Returns:
        float32 array (S,), mono, 22,050 Hz, roughly 5 s.
    """
    if rec.path is not None:
        return _decode_file(rec.path)
    take = ord(rec.name[-1]) - 65
    seed = [list(SOUND_SOURCES).index(rec.esc_class), rec.fold, take]
    return synthesise(rec.esc_class, np.random.default_rng(seed))


def _env(n: int, attack: int, decay_s: float, sr: int = SAMPLE_RATE_HZ) -> np.ndarray:
    t = np.arange(n) / sr
    env = np.exp(-t / decay_s)
    env[:attack] *= np.linspace(0.0, 1.0, attack)
    return env


def _harmonic(f0: np.ndarray, partials: int, rolloff: float) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE_HZ
    return sum((rolloff ** k) * np.sin((k + 1) * phase) for k in range(partials))


def _place(out: np.ndarray, burst: np.ndarray, start: int) -> None:
    end = min(len(out), start + len(burst))
    out[start:end] += burst[: end - start]


def synthesise(esc_class: str, rng: np.random.Generator) -> np.ndarray:  # noqa: C901 - one branch per class
    """A 5 s synthetic sound with the timbre typical of an ESC-10 class.

    Returns:
        float32 array (S,) at 22,050 Hz, RMS-normalised to :data:`SOURCE_RMS`.
    """
    sr, n = SAMPLE_RATE_HZ, int(RECORDING_S * SAMPLE_RATE_HZ)
    t = np.arange(n) / sr
    out = np.zeros(n)
    if esc_class == "Dog bark":  # 2-5 short harmonic barks with a noisy onset
        for start in np.sort(rng.uniform(0, 4.5, rng.integers(2, 6))):
            m = int(0.18 * sr)
            f0 = rng.uniform(450, 700) * np.linspace(1.1, 0.8, m)
            burst = (_harmonic(f0, 6, 0.7) + 0.3 * rng.standard_normal(m)) * _env(m, 200, 0.06)
            _place(out, burst, int(start * sr))
    elif esc_class == "Rain":  # steady broadband (high-passed) noise plus droplets
        out = np.diff(rng.standard_normal(n + 1)) + 0.5 * (rng.random(n) < 0.002) * rng.standard_normal(n)
    elif esc_class == "Sea waves":  # low-passed noise swelling at 0.15-0.3 Hz
        low = np.convolve(rng.standard_normal(n), np.ones(40) / 40, mode="same")
        out = low * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.15, 0.3) * t + rng.uniform(0, 6.28)))
    elif esc_class == "Baby cry":  # harmonic wails with vibrato, about 1 s each
        for start in np.arange(rng.uniform(0, 0.5), 4.5, rng.uniform(1.3, 1.8)):
            m = int(rng.uniform(0.8, 1.2) * sr)
            tm = np.arange(m) / sr
            f0 = rng.uniform(380, 480) * (1 + 0.15 * np.sin(np.pi * tm / tm[-1])) * (1 + 0.02 * np.sin(2 * np.pi * 6 * tm))
            _place(out, _harmonic(f0, 5, 0.6) * np.sin(np.pi * tm / tm[-1]), int(start * sr))
    elif esc_class == "Clock tick":  # sharp clicks at a steady 1-2 Hz
        period = rng.uniform(0.5, 1.0)
        for start in np.arange(rng.uniform(0, period), 5.0, period):
            m = int(0.01 * sr)
            _place(out, np.sin(2 * np.pi * 3000 * np.arange(m) / sr) * _env(m, 5, 0.002), int(start * sr))
    elif esc_class == "Person sneeze":  # one or two noise bursts: breath in, then a sharp "choo"
        for start in rng.uniform(0.3, 3.8, rng.integers(1, 3)):
            m = int(0.7 * sr)
            tm = np.arange(m) / sr
            env = np.where(tm < 0.4, 0.3 * tm / 0.4, np.exp(-(tm - 0.4) / 0.08))
            _place(out, np.diff(rng.standard_normal(m + 1)) * env, int(start * sr))
    elif esc_class == "Helicopter":  # low rumble chopped by the rotor at 12-20 Hz
        rotor = rng.uniform(12, 20)
        low = np.convolve(rng.standard_normal(n), np.ones(60) / 60, mode="same")
        out = (low * 8 + 0.3 * np.sin(2 * np.pi * 80 * t)) * (0.5 + 0.5 * np.abs(np.sin(np.pi * rotor * t)) ** 4)
    elif esc_class == "Chainsaw":  # buzzing sawtooth at 90-140 Hz, revving
        f0 = rng.uniform(90, 140) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * t))
        phase = np.cumsum(f0) / sr
        out = 2 * (phase - np.floor(phase)) - 1 + 0.1 * rng.standard_normal(n)
    elif esc_class == "Rooster":  # a rising-falling harmonic call of about 1.5 s, once or twice
        for start in rng.uniform(0.0, 3.2, rng.integers(1, 3)):
            m = int(1.5 * sr)
            tm = np.arange(m) / sr
            f0 = rng.uniform(500, 650) * (1 + 0.5 * np.sin(np.pi * np.clip(tm / 1.2, 0, 1)))
            _place(out, _harmonic(f0, 4, 0.5) * np.sin(np.pi * tm / tm[-1]) ** 0.5, int(start * sr))
    elif esc_class == "Fire crackling":  # sparse random crackles over a soft roar
        out = 0.05 * np.convolve(rng.standard_normal(n), np.ones(20) / 20, mode="same")
        clicks = (rng.random(n) < 0.0015) * rng.standard_normal(n) * 3
        out += np.convolve(clicks, np.exp(-np.arange(40) / 6), mode="same")
    else:
        raise DataError(f"no synthetic sound for class {esc_class!r}")
    rms = float(np.sqrt(np.mean(out**2))) or 1.0
    return (out * (SOURCE_RMS / rms)).astype(np.float32)


def mix_track(num_samples: int, source: np.ndarray | None, offset_samples: int, gain: float,
              rng: np.random.Generator) -> np.ndarray:
    """A clip's audio track: low background noise plus, optionally, one source.

    Args:
        num_samples: Track length S.
        source: float32 (R,) waveform, or ``None`` for a silent (noise-only) track.
        offset_samples: Where the source starts in the track.
        gain: Linear gain applied after RMS normalisation.
        rng: Random generator for the noise.

    Returns:
        float32 array (S,) in [-1, 1].
    """
    track = rng.normal(0.0, NOISE_STD, num_samples)
    if source is not None and len(source):
        src = source.astype(np.float64)
        rms = float(np.sqrt(np.mean(src**2))) or 1.0
        peak = float(np.abs(src).max()) or 1.0
        scale = min(gain * SOURCE_RMS / rms, 0.9 / peak)  # RMS-normalise, but never clip a sparse source
        part = src[: max(0, num_samples - offset_samples)] * scale
        track[offset_samples:offset_samples + len(part)] += part
    return np.clip(track, -0.99, 0.99).astype(np.float32)
