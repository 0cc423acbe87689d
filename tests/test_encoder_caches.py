"""What the encoders build once per process (resampling kernels, int8 weights) gives what building it per call gave."""

from __future__ import annotations

import numpy as np
import torch

from fusion.encoders.bundle import resample
from fusion.encoders.dynamic_int8 import DerivedTensors, dynamic_int8_linear, integer_weight, symmetric_scales


def test_cached_resampler_equals_torchaudio_functional() -> None:
    import torchaudio.functional as taf

    rng = np.random.default_rng(0)
    for from_hz, to_hz in [(22050, 16000), (44100, 22050), (16000, 22050)]:
        wave = (0.3 * rng.standard_normal(from_hz * 2)).astype(np.float32)
        expected = taf.resample(torch.from_numpy(wave), from_hz, to_hz).numpy()
        for _ in range(2):  # the second call uses the cached kernel
            got = resample(wave, from_hz, to_hz)
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, expected)


def test_precomputed_integers_give_the_same_products() -> None:
    torch.manual_seed(0)
    weight = torch.randn(24, 40)
    scale = symmetric_scales(weight)
    weight = torch.round(weight / scale[:, None]) * scale[:, None]  # a dequantised int8 weight
    x, bias = torch.randn(3, 5, 40), torch.randn(24)
    expected = dynamic_int8_linear(x, weight, scale, bias)
    assert torch.equal(dynamic_int8_linear(x, weight, scale, bias, integer_weight(weight, scale)), expected)


def _counted_sum(source: torch.Tensor, builds: list[int]):
    """A build function: the sum of ``source``, counting its calls in ``builds``."""
    def build() -> torch.Tensor:
        builds.append(1)
        return source.sum()
    return build


def test_derived_tensors_rebuild_when_a_source_changes() -> None:
    source = torch.ones(3)
    derived, builds = DerivedTensors(), []
    build = _counted_sum(source, builds)
    assert derived.get("s", (source,), build).item() == 3.0
    assert derived.get("s", (source,), build).item() == 3.0
    assert len(builds) == 1  # built once
    source.mul_(2.0)  # edited in place: its version changes
    assert derived.get("s", (source,), build).item() == 6.0
    assert len(builds) == 2


def test_inference_tensors_are_built_on_every_call() -> None:
    """Weights made under ``torch.inference_mode`` keep no version counter: nothing stale is reused."""
    with torch.inference_mode():
        source = torch.ones(3)
    derived, builds = DerivedTensors(), []
    build = _counted_sum(source, builds)
    assert derived.get("s", (source,), build).item() == 3.0
    with torch.inference_mode():
        source.mul_(2.0)
    assert derived.get("s", (source,), build).item() == 6.0
    assert len(builds) == 2
