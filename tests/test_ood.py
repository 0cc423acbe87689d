"""Clips unlike the training data: capped captioner inputs, the training profile and its
distance, the run card and the warning line, decoding that never loops (tiny models; one
real-data test on the shared real clips)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion.errors import CheckpointError
from fusion.features import FeatureRecord
from fusion.manifest import ManifestEntry
from fusion.models.s2vt import S2VT, S2VTConfig, Standardize
from fusion.ood import TrainingProfile, annotate, bound_model_inputs, measure_model_bounds, profile_path
from fusion.runcard import describe_training, read_run_card, warning_line, write_run_knowledge
from fusion.text import Vocabulary

DV, DA = 12, 5


def _records(rng: np.random.Generator, n: int, shift: float = 0.0, audio: bool = True) -> list[FeatureRecord]:
    return [FeatureRecord(f"v{i}", (rng.normal(size=(6, DV)) + shift).astype(np.float32),
                          (rng.normal(size=(8, DA)) + shift).astype(np.float32) if audio else None)
            for i in range(n)]


def _longest_run(words: str) -> int:
    return max((len(list(g)) for _, g in itertools.groupby(words.split())), default=0)


def test_standardize_scales_steps_beyond_the_training_norms() -> None:
    norm = Standardize(4)
    norm.set_stats(torch.tensor([1.0, 0.0, 0.0, 0.0]), torch.tensor([2.0, 1.0, 0.5, 1.0]))
    train = torch.randn(50, 4)
    cap, typical = norm.fit_max_rms(train)
    rms = ((train - norm.mean) / norm.std).pow(2).mean(-1).sqrt()
    assert norm.has_bounds and cap == pytest.approx(float(rms.max())) and typical == pytest.approx(float(rms.median()))
    assert torch.allclose(norm(train), (train - norm.mean) / norm.std)  # identity on the training steps
    near = norm.mean + norm.std * 2.5 * cap  # beyond every training step, within OUTLIER_FACTOR: kept
    assert torch.allclose(norm(near[None]), (near[None] - norm.mean) / norm.std)
    far = torch.tensor([[1e4, -1e4, 50.0, 0.0]])
    z = norm(far)
    assert float(z.pow(2).mean(-1).sqrt()) == pytest.approx(typical, rel=1e-5)  # scaled to a typical step's norm
    assert torch.allclose(z / z.norm(), ((far - norm.mean) / norm.std) / ((far - norm.mean) / norm.std).norm())


def test_training_sets_the_cap_and_old_checkpoints_get_it_from_the_profile() -> None:
    rng = np.random.default_rng(0)
    train = _records(rng, 20)
    model = S2VT(S2VTConfig(hidden_size=8, frame_embed_size=8, word_embed_size=8, audio_mode="stream",
                            audio_embed_size=4), vocab_size=10, frame_dim=DV, audio_dim=DA)
    frames = torch.from_numpy(np.concatenate([r.frames for r in train]))
    audio = torch.from_numpy(np.concatenate([r.audio for r in train]))
    model.set_input_stats(frames, audio)
    assert model.frame_norm.has_bounds and model.audio_norm.has_bounds
    assert torch.allclose(model.frame_norm(frames), (frames - model.frame_norm.mean) / model.frame_norm.std)
    old_state = {k: v for k, v in model.state_dict().items() if not k.endswith((".max_rms", ".typical_rms"))}
    old = S2VT(model.config, vocab_size=10, frame_dim=DV, audio_dim=DA)
    old.load_state_dict(old_state)  # strict: a checkpoint saved before the cap still loads
    assert not old.frame_norm.has_bounds
    profile = TrainingProfile.fit(train, _records(rng, 10))
    assert not bound_model_inputs(old, profile)  # nothing measured yet
    assert measure_model_bounds(old, profile, train)
    assert profile.modalities["frames"].max_rms == pytest.approx(float(model.frame_norm.max_rms), rel=1e-5)
    assert profile.modalities["frames"].typical_rms == pytest.approx(float(model.frame_norm.typical_rms), rel=1e-5)
    again = S2VT(model.config, vocab_size=10, frame_dim=DV, audio_dim=DA)
    again.load_state_dict(old_state)
    assert bound_model_inputs(again, profile) and again.audio_norm.has_bounds
    assert float(again.audio_norm.max_rms) == pytest.approx(float(model.audio_norm.max_rms), rel=1e-5)
    assert not bound_model_inputs(again, profile)  # already capped: left alone


def test_profile_threshold_passes_the_calibration_quantile_and_flags_far_clips() -> None:
    rng = np.random.default_rng(1)
    train, val = _records(rng, 200), _records(rng, 100)
    profile = TrainingProfile.fit(train, val, quantile=0.99)
    passed = [not profile.assess(r).flagged for r in val]
    assert np.mean(passed) >= 0.99
    far = profile.assess(_records(rng, 1, shift=30.0)[0])
    assert far.flagged and set(far.unfamiliar) == {"frames", "audio"}
    assert far.distances["frames"] > 10 * profile.modalities["frames"].threshold
    silent = profile.assess(_records(rng, 1, audio=False)[0])  # no audio stream: no audio distance
    assert silent.distances["audio"] is None and "audio" not in silent.unfamiliar
    report = annotate(profile, record := _records(rng, 1, shift=30.0)[0])
    assert record.meta["ood"]["flagged"] and record.meta["ood"] == report.to_dict()


def test_profile_round_trip_and_unreadable_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    profile = TrainingProfile.fit(_records(rng, 30), _records(rng, 10))
    profile.save(profile_path(tmp_path))
    loaded = TrainingProfile.load(profile_path(tmp_path))
    probe = _records(rng, 1, shift=2.0)[0]
    for name in ("frames", "audio"):
        assert loaded.assess(probe).distances[name] == pytest.approx(profile.assess(probe).distances[name], rel=1e-5)
        assert loaded.modalities[name].threshold == profile.modalities[name].threshold
    profile_path(tmp_path).write_bytes(b"not a profile")
    with pytest.raises(CheckpointError, match="python -m fusion.runcard"):
        TrainingProfile.load(profile_path(tmp_path))


def test_run_card_and_warning_line(tmp_path: Path) -> None:
    from fusion.experiment import ExperimentConfig

    rng = np.random.default_rng(3)
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "benchmark.json").write_text(json.dumps({"generator": "data_prep.avsynth", "size": "tiny"}))
    config = ExperimentConfig()
    config.data.manifest = str(bench / "manifest.jsonl")
    entries = [ManifestEntry(f"v{i}", f"v{i}.mp4", "train", ["a red box moves left"],
                             {"sound_class": ["Dog bark", "Rain"][i % 2]}) for i in range(6)]
    train, val = _records(rng, 6), _records(rng, 3)
    vocab = Vocabulary.build(["a red box moves left"])
    run = tmp_path / "run"
    run.mkdir()
    profile = write_run_knowledge(run, config, entries, entries[:3], train, val, vocab)
    card = read_run_card(run)
    assert card is not None and card["dataset"] == "avsynth (tiny)" and card["train_clips"] == 6
    assert card["vocab_size"] == len(vocab) and card["sound_classes"] == ["Dog bark", "Rain"]
    assert card["ood"]["frames"]["calibrated_on"] == "val"
    assert "coloured shapes" in describe_training(card)
    far = profile.assess(_records(rng, 1, shift=30.0)[0])
    line = warning_line(far, card)
    assert line is not None and line.startswith("warning:") and "\n" not in line
    assert "the model was trained on avsynth" in line and "this caption is unreliable" in line
    assert warning_line(profile.assess(val[0]), card) is None or profile.assess(val[0]).flagged
    assert read_run_card(tmp_path) is None  # no card: None, not an error


def test_no_immediate_repeat_processor() -> None:
    from fusion.decoding.processors import NoImmediateRepeatProcessor, caption_processors

    tokens = torch.tensor([[1, 5, 7], [1, 5, 5]])
    scores = NoImmediateRepeatProcessor()(tokens, torch.zeros(2, 9))
    assert scores[0, 7] == float("-inf") and scores[1, 5] == float("-inf")
    assert torch.isfinite(scores[0, :7]).all() and torch.isfinite(scores[1, 6:]).all()
    assert torch.isfinite(NoImmediateRepeatProcessor()(tokens[:, :1], torch.zeros(2, 9))).all()  # after BOS only
    assert any(isinstance(p, NoImmediateRepeatProcessor)
               for p in caption_processors(0, 1, 3, no_repeat_ngram_size=3, no_immediate_repeat=True))


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.real_weights
def test_real_clips_are_flagged_and_never_loop(data_dir: Path, tmp_path: Path) -> None:
    """A tiny run trained on a tiny benchmark (real encoders), then the shared real clips:
    every real clip gets the warning line, none repeats a word more than twice in a row, and
    the run folder says what it was trained on."""
    from data_prep.avsynth.build import generate
    from fusion.cli import main
    from fusion.manifest import load_manifest
    from fusion.pipeline import CaptionPipeline

    generate(tmp_path / "bench", seed=3, size="tiny", esc10_dir=data_dir / "esc10", workers=1, progress=False)
    config = tmp_path / "tiny.yaml"
    config.write_text("extract: {frames_per_clip: 4}\n"
                      "model: {hidden_size: 16, frame_embed_size: 8, word_embed_size: 8, audio_mode: stream, "
                      "audio_embed_size: 4}\n"
                      "train: {batch_size: 8, max_epochs: 2, num_threads: 1}\n")
    run = tmp_path / "run"
    assert main(["train", str(config), "--manifest", str(tmp_path / "bench" / "manifest.jsonl"),
                 "--out", str(run)]) == 0
    card = read_run_card(run)
    assert card is not None and card["dataset"] == "avsynth (tiny)" and card["train_clips"] == 6
    assert profile_path(run).is_file()
    real = [data_dir / "msvd" / "clips" / "PeUHy0A1GF0_114_121.avi", data_dir / "msvd" / "clips" / "ufFT2BWh3BQ_0_8.avi",
            data_dir / "msrvtt" / "clips" / "video0.mp4", data_dir / "msrvtt" / "clips" / "video676.mp4"]
    bench = [e.video for e in load_manifest(tmp_path / "bench" / "manifest.jsonl") if e.split == "test"]
    pipeline = CaptionPipeline(run, compute_profile=False)
    assert pipeline.run.model.frame_norm.has_bounds  # the input cap was recorded by training
    results = pipeline.caption([*real, *bench])
    for result in results:
        assert result.error is None and result.ood is not None
        assert _longest_run(result.caption) <= 2, result.caption
    for result in results[: len(real)]:
        assert result.ood["flagged"] and "this caption is unreliable" in result.ood["warning"]
    real_far = min(r.ood["distance"]["frames"] for r in results[: len(real)])
    assert real_far > 3 * max(r.ood["distance"]["frames"] for r in results[len(real):])


def test_run_knowledge_caps_an_older_captioner_from_its_profile(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from fusion.runcard import run_knowledge

    rng = np.random.default_rng(4)
    train = _records(rng, 20)
    config = S2VTConfig(hidden_size=8, frame_embed_size=8, word_embed_size=8, audio_mode="stream", audio_embed_size=4)
    old = S2VT(config, vocab_size=10, frame_dim=DV, audio_dim=DA)  # saved before the input norms existed
    profile = TrainingProfile.fit(train, _records(rng, 5))
    measure_model_bounds(S2VT(config, vocab_size=10, frame_dim=DV, audio_dim=DA), profile, train)
    profile.save(profile_path(tmp_path))
    run = SimpleNamespace(model=old, checkpoint_dir=tmp_path / "checkpoints" / "step-1")
    knowledge = run_knowledge(run, compute=False)
    assert knowledge.profile is not None and knowledge.note is None
    assert old.frame_norm.has_bounds and old.audio_norm.has_bounds


def test_a_card_without_training_clips_says_what_the_model_learned_from() -> None:
    card = {"dataset": "zero-shot", "train_clips": 0, "vocab_size": 3199,
            "summary": "no training video; it learned from 30000 real captions"}
    assert describe_training(card) == ("zero-shot: no training video; it learned from 30000 real captions; "
                                       "a vocabulary of 3199 words")
