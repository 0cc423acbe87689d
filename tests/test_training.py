"""Training: data pipeline, run folder, load_run, exact resume after a crash, CLI, learning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fusion.checkpoint import load_run, resolve_checkpoint
from fusion.cli import main as cli_main
from fusion.data import CaptionDataset, EpochSampler, collate
from fusion.errors import CheckpointError, ConfigError
from fusion.features import FeatureRecord, FeatureStore
from fusion.manifest import load_manifest
from fusion.text import Vocabulary
from fusion.training import train
from fusion.training.metrics_log import MetricsLog
from fusion.training.validation import predict_captions
from tests.builders import DA, DV, SOUNDS, T, make_toy, toy_config


@pytest.fixture()
def toy(tmp_path: Path) -> Path:
    make_toy(tmp_path)
    return tmp_path


def test_sampler_is_a_deterministic_function_of_seed_and_epoch() -> None:
    s = EpochSampler(10, 4, seed=3)
    assert len(s) == 3
    a, b = s.epoch_batches(1), EpochSampler(10, 4, seed=3).epoch_batches(1)
    assert all((x == y).all() for x, y in zip(a, b))
    assert sorted(np.concatenate(a).tolist()) == list(range(10))
    assert not all((x == y).all() for x, y in zip(a, s.epoch_batches(2)))


def test_dataset_pairs_and_collate_masks(toy: Path) -> None:
    entries = [e for e in load_manifest(toy / "manifest.jsonl") if e.split == "train"]
    vocab = Vocabulary.build([c for e in entries for c in e.captions])
    ds = CaptionDataset(entries, FeatureStore(toy / "store"), vocab, max_words=3)
    assert len(ds) == 2 * len(entries) and (ds.frame_dim, ds.audio_dim) == (DV, DA)
    batch = ds.pair_batch([0, 1, 18, 19], DV, DA)  # videos 0 (dog), 9 (no audio stream)
    assert batch.tokens[0].tolist()[:1] == [vocab.bos_id] and len(batch.tokens[0]) <= 5
    assert batch.audio_present.tolist() == [True, True, False, False]
    assert not batch.audio_mask[2].any() and batch.audio[2].abs().sum() == 0
    assert batch.frame_mask.all() and batch.audio_mask[0].sum() == 5
    single = collate([ds.records[9]], DV, DA)
    assert single.audio.shape == (1, 1, DA) and not single.audio_present.any()


def test_train_writes_run_and_load_run_restores_it(toy: Path) -> None:
    cfg = toy_config(toy)
    result = train(cfg, toy / "run", progress=False)
    run = toy / "run"
    assert result.stop_reason == "max_epochs" and result.epochs == 3
    assert result.steps == 3 * 9  # 72 pairs / batch 8
    assert {"config.yaml", "vocab.json", "metrics.jsonl", "tb", "checkpoints"} <= {p.name for p in run.iterdir()}
    records = MetricsLog(run / "metrics.jsonl").read()
    assert [r["step"] for r in records if r["type"] == "val"] == [9, 18, 27]
    losses = [loss for _, loss in MetricsLog(run / "metrics.jsonl").losses()]
    assert len(losses) == 27 and np.mean(losses[-5:]) < np.mean(losses[:5])
    best = json.loads((run / "checkpoints" / "best.json").read_text())
    assert best["metric"] == "loss" and best["step"] in (9, 18, 27)
    loaded = load_run(run)
    assert loaded.checkpoint_dir == resolve_checkpoint(run) and loaded.meta["step"] == best["step"]
    assert loaded.config.model.audio_mode == "early" and loaded.vocab == Vocabulary.load(run / "vocab.json")
    assert loaded.meta["encoders"]["audio_layer"] == "pool5" and not loaded.model.training
    frames, audio = CaptionDataset([e for e in load_manifest(toy / "manifest.jsonl") if e.split == "train"],
                                   FeatureStore(toy / "store"), loaded.vocab).feature_stats()
    # Input standardisation statistics of the training features travel in the checkpoint.
    torch.testing.assert_close(loaded.model.frame_norm.mean, frames.mean(0))
    torch.testing.assert_close(loaded.model.audio_norm.std, audio.std(0).clamp(min=1e-3))
    last = load_run(run, which="last")
    entries = [e for e in load_manifest(toy / "manifest.jsonl") if e.split == "val"]
    val = CaptionDataset(entries, FeatureStore(toy / "store"), loaded.vocab)
    caps = predict_captions(last.model, val, last.vocab, beam_size=1)
    assert set(caps) == {e.id for e in entries} and all(isinstance(c, str) for c in caps.values())
    # Re-running a finished run does nothing more.
    again = train(toy_config(toy), run, progress=False)
    assert again.stop_reason == "already_finished" and again.steps == 27


class Crash(RuntimeError):
    pass


SCHEDULES = {"constant": {}, "cosine": {"lr_schedule": "cosine", "warmup_steps": 3, "label_smoothing": 0.1}}


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_resume_after_crash_gives_the_same_losses(toy: Path, schedule: str) -> None:
    over = SCHEDULES[schedule]
    train(toy_config(toy, **over), toy / "full", progress=False)
    full = MetricsLog(toy / "full" / "metrics.jsonl").read()

    def crash_at_13(step: int, loss: float) -> None:
        if step == 13:  # last checkpoint at step 12 (every 4 steps), validation at 9
            raise Crash()

    with pytest.raises(Crash):
        train(toy_config(toy, **over), toy / "killed", progress=False, on_step=crash_at_13)
    assert len(MetricsLog(toy / "killed" / "metrics.jsonl").losses()) == 13
    train(toy_config(toy, **over), toy / "killed", progress=False)
    resumed = MetricsLog(toy / "killed" / "metrics.jsonl").read()
    key = lambda r: (r["type"], r["step"], r.get("loss"), r.get("lr"))  # noqa: E731
    assert [key(r) for r in resumed] == [key(r) for r in full]
    rates = [r["lr"] for r in full if r["type"] == "train"]
    if schedule == "constant":
        assert set(rates) == {toy_config(toy).train.lr}
    else:  # warm-up, then down to lr * lr_final_ratio at the last step
        tc = toy_config(toy, **over).train
        assert rates[0] == pytest.approx(tc.lr / 3) and max(rates) == pytest.approx(tc.lr)
        assert rates[-1] == pytest.approx(tc.lr * tc.lr_final_ratio) and rates[3:] == sorted(rates[3:], reverse=True)
    assert [r.get("val_loss") for r in resumed] == [r.get("val_loss") for r in full]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_resume_falls_back_to_the_newest_intact_checkpoint(toy: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    train(toy_config(toy), toy / "full", progress=False)

    def crash_at_13(step: int, loss: float) -> None:
        if step == 13:  # checkpoints: step 12 (last), step 9 (best, its validation)
            raise Crash()

    with pytest.raises(Crash):
        train(toy_config(toy), toy / "killed", progress=False, on_step=crash_at_13)
    ckpts = toy / "killed" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir() if p.is_dir()) == ["step-00000009", "step-00000012"]
    _truncate(ckpts / "step-00000012" / "trainer.pt")
    with caplog.at_level(logging.WARNING, logger="fusion.training.loop"):
        train(toy_config(toy), toy / "killed", progress=False)
    said = caplog.text
    assert "step-00000012/trainer.pt: unreadable trainer state" in said and "resuming from step-00000009" in said
    key = lambda r: (r["type"], r["step"], r.get("loss"))  # noqa: E731
    full = MetricsLog(toy / "full" / "metrics.jsonl").read()
    assert [key(r) for r in MetricsLog(toy / "killed" / "metrics.jsonl").read()] == [key(r) for r in full]
    load_run(toy / "killed", which="last")  # the redone final step rewrote its weights


def test_truncated_weights_and_trainer_state_are_one_line_errors(toy: Path, capsys: pytest.CaptureFixture) -> None:
    train(toy_config(toy, max_steps=4), toy / "run", progress=False)
    (ckpt,) = [p for p in (toy / "run" / "checkpoints").iterdir() if p.is_dir()]
    _truncate(ckpt / "trainer.pt")
    with pytest.raises(CheckpointError, match=r"trainer.pt: unreadable trainer state .*no older checkpoint"):
        train(toy_config(toy, max_steps=4), toy / "run", progress=False)
    _truncate(ckpt / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"model.safetensors: unreadable weights .*truncated or corrupt"):
        load_run(toy / "run")
    assert cli_main(["evaluate", str(toy / "run"), "--split", "val"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fusion evaluate: error: ") and "model.safetensors" in err and "\n" not in err


def test_train_skips_videos_without_features_unless_strict(toy: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from fusion.errors import DataError

    (toy / "store" / "records" / "toy001.npz").unlink()  # as if its video could not be read
    FeatureStore(toy / "store").log_failure(str(toy / "toy001.mp4"), "toy001", f"{toy / 'toy001.mp4'}: file not found")
    with pytest.raises(DataError, match=r"1 of 36 train videos could not be read .*toy001.mp4: file not found.*--strict"):
        train(toy_config(toy, max_steps=1), toy / "strict", progress=False, strict=True)
    with caplog.at_level(logging.WARNING):
        result = train(toy_config(toy, max_steps=1), toy / "run", progress=False)
    assert result.steps == 1 and "1 of 36 train videos could not be read" in caplog.text and "skipped" in caplog.text
    for i in range(36, 45):  # every val video unreadable: the split is left empty
        (toy / "store" / "records" / f"toy{i:03d}.npz").unlink()
    with pytest.raises(DataError, match=r"9 of 9 val videos could not be read.*the val split is left empty"):
        train(toy_config(toy, max_steps=1), toy / "empty", progress=False)


def test_a_start_that_failed_before_any_checkpoint_can_be_redone(toy: Path) -> None:
    with pytest.raises(Exception, match="manifest not found"):
        train(toy_config(toy, max_steps=1), toy / "run", manifest=toy / "typo.jsonl", progress=False)
    assert train(toy_config(toy, max_steps=1), toy / "run", progress=False).steps == 1


def test_a_second_trainer_on_the_same_folder_is_refused(toy: Path) -> None:
    from fusion.errors import DataError
    from fusion.training.setup import run_lock

    with run_lock(toy / "run"):  # as if another process were training there
        with pytest.raises(DataError, match="another `fusion train`"):
            train(toy_config(toy, max_steps=1), toy / "run", progress=False)
    assert train(toy_config(toy, max_steps=1), toy / "run", progress=False).steps == 1


def test_resume_refuses_another_config(toy: Path) -> None:
    train(toy_config(toy, max_steps=2), toy / "run", progress=False)
    with pytest.raises(ConfigError, match="train.lr"):
        train(toy_config(toy, max_steps=2, lr=0.5), toy / "run", progress=False)


def test_load_run_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such run"):
        load_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a run folder"):
        load_run(tmp_path / "empty")


def test_cli_train_with_overrides_and_errors(toy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = toy / "exp.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "extract": {"frames_per_clip": T, "random_weights": True},
        "model": {"hidden_size": 8, "frame_embed_size": 4, "word_embed_size": 4, "audio_mode": "stream"},
        "train": {"batch_size": 16, "max_epochs": 1, "val_metric": "loss", "device": "cpu"},
    }))
    code = cli_main(["train", str(cfg_path), "--manifest", str(toy / "manifest.jsonl"), "--features",
                     str(toy / "store"), "--out", str(toy / "cli_run"), "--set", "train.max_steps=2",
                     "--no-progress", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steps"] == 2 and out["stop_reason"] == "max_steps" and out["best_metric"] == "loss"
    assert load_run(toy / "cli_run").config.model.audio_mode == "stream"
    assert cli_main(["train", str(cfg_path), "--set", "model.hiden_size=3"]) == 2
    err = capsys.readouterr().err
    assert "model.hiden_size" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "error: --set model.hiden_size=3: unknown key" in err and str(cfg_path) not in err  # not the file's fault
    assert cli_main(["train", str(cfg_path), "--out", str(toy / "x")]) == 2
    assert "data.manifest is not set" in capsys.readouterr().err


def test_audio_model_learns_the_sound_that_video_alone_cannot(toy: Path) -> None:
    def sound_accuracy(mode: str) -> float:
        cfg = toy_config(toy, max_epochs=25, lr=0.01, val_every_steps=1000)
        cfg.model.audio_mode, cfg.model.modality_dropout, cfg.model.dropout = mode, 0.0, 0.0
        cfg.train.tensorboard = False
        run = train(cfg, toy / f"run_{mode}", progress=False)
        loaded = load_run(run.run_dir, which="last")
        entries = load_manifest(toy / "manifest.jsonl")
        ds = CaptionDataset(entries, FeatureStore(toy / "store"), loaded.vocab)
        caps = predict_captions(loaded.model, ds, loaded.vocab)
        with_sound = [e for e in entries if e.meta["sound"]]
        return float(np.mean([e.meta["sound"] in caps[e.id] for e in with_sound]))

    torch.manual_seed(0)
    assert sound_accuracy("early") >= 0.9
    assert sound_accuracy("none") <= 0.6


@pytest.mark.slow
def test_sigkill_then_same_command_continues_exactly(toy: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg_path = toy / "exp.yaml"
    cfg = toy_config(toy, max_epochs=12, checkpoint_every_steps=7)
    cfg.train.tensorboard = False
    from fusion.config import to_dict

    cfg_path.write_text(yaml.safe_dump(to_dict(cfg)))

    def command(out: str) -> list[str]:
        return [sys.executable, "-m", "fusion", "train", str(cfg_path), "--out", str(toy / out), "--no-progress"]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command("full"), check=True, env=env, capture_output=True, timeout=300)
    proc = subprocess.Popen(command("killed"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = MetricsLog(toy / "killed" / "metrics.jsonl")
    deadline = time.time() + 120
    while time.time() < deadline and len(log.losses()) < 30 and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    total = len(MetricsLog(toy / "full" / "metrics.jsonl").losses())
    assert 0 < len(log.losses()) < total, "the run was not killed mid-way"
    subprocess.run(command("killed"), check=True, env=env, capture_output=True, timeout=300)
    assert log.losses() == MetricsLog(toy / "full" / "metrics.jsonl").losses()


def test_collate_names_a_feature_width_mismatch() -> None:
    rec = FeatureRecord(id="v1", frames=np.zeros((3, DV), np.float32), audio=np.zeros((2, DA + 1), np.float32))
    from fusion.errors import DataError

    with pytest.raises(DataError, match=r"v1: audio features are 7-d, the model expects 6-d"):
        collate([rec], DV, DA)
    batch = collate([FeatureRecord(id="v2", frames=np.ones((3, DV), np.float32), audio=None)], DV, DA)
    assert batch.frame_mask.tolist() == [[True, True, True]] and not batch.audio_mask.any()


def test_decode_section_does_not_bind_a_run(toy: Path) -> None:
    from fusion.decoding.config import resolve_decode_config

    train(toy_config(toy, max_steps=2), toy / "run", progress=False)
    cfg = toy_config(toy, max_steps=2)
    cfg.decode.audio_weight, cfg.decode.beam_size = 1.5, 3
    result = train(cfg, toy / "run", progress=False)  # a new decode section: no retraining, no error
    assert result.stop_reason == "already_finished" and result.steps == 2
    saved = yaml.safe_load((toy / "run" / "config.yaml").read_text())["decode"]
    assert saved["audio_weight"] == 1.5 and saved["beam_size"] == 3
    run = load_run(toy / "run")  # its checkpoint predates the change; RUN/config.yaml's decode wins
    assert run.meta["config"]["decode"]["audio_weight"] == 0.0 and run.config.decode.audio_weight == 1.5
    options = resolve_decode_config(run)
    assert (options.audio_weight, options.beam_size) == (1.5, 3)
    assert resolve_decode_config(run, {"audio_weight": 0.0}).audio_weight == 0.0  # the command line wins


def test_learned_verifier_is_fitted_with_the_run_and_used_by_decoding(toy: Path) -> None:
    from fusion.decoding.config import resolve_decode_config
    from fusion.decoding.decoder import CaptionDecoder
    from fusion.verifier import AudioNounVerifier

    cfg = toy_config(toy, max_steps=4)
    cfg.decode.audio_weight, cfg.decode.verifier = 1.0, "learned"
    train(cfg, toy / "run", progress=False)
    path = toy / "run" / "verifier.safetensors"
    report = json.loads((toy / "run" / "verifier.safetensors.report.json").read_text())
    assert report["fitted"] and set(report["nouns"]) == set(SOUNDS) and report["train_clips"] == 27 and report["val_clips"] == 9
    verifier = AudioNounVerifier.load(path)
    assert verifier.classifier is not None and set(verifier.classifier.nouns) == set(SOUNDS)

    run = load_run(toy / "run")
    options = resolve_decode_config(run)
    assert options.verifier == str(path) and options.audio_weight == 1.0
    decoder = CaptionDecoder(run, options)
    assert decoder.weights["audio"] == 1.0
    records = [FeatureStore(toy / "store")[e.id] for e in load_manifest(toy / "manifest.jsonl")[-3:]]
    hyps = decoder.decode(records)
    assert all("audio" in h[0].scores for h in hyps)

    stamp = path.stat().st_mtime_ns
    train(cfg, toy / "run", progress=False)  # a finished run keeps its verifier
    assert path.stat().st_mtime_ns == stamp
    path.unlink()
    with pytest.raises(ConfigError, match="verifier.safetensors is missing"):
        resolve_decode_config(run)


def test_learned_verifier_falls_back_to_zero_shot_without_enough_pairs(tmp_path: Path) -> None:
    make_toy(tmp_path, n_train=4, n_val=2)  # 3 dogs and 1 rain: too few positives or negatives to fit
    cfg = toy_config(tmp_path, max_steps=1)
    cfg.decode.verifier = "learned"
    train(cfg, tmp_path / "run", progress=False)
    report = json.loads((tmp_path / "run" / "verifier.safetensors.report.json").read_text())
    assert report["fitted"] is False and "positive" in report["reason"]
    cfg_video = toy_config(tmp_path, max_steps=1)
    cfg_video.model.audio_mode, cfg_video.model.modality_dropout, cfg_video.decode.verifier = "none", 0.0, "learned"
    train(cfg_video, tmp_path / "video", progress=False)  # a video-only captioner may use it too
    assert (tmp_path / "video" / "verifier.safetensors").is_file()


def test_a_bad_decode_section_in_the_run_folder_is_one_clear_error(toy: Path) -> None:
    train(toy_config(toy, max_steps=1), toy / "run", progress=False)
    path = toy / "run" / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["decode"]["audio_weight"] = -1
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"config\.yaml.*audio_weight"):
        load_run(toy / "run")
