"""Explicit stages and one decode configuration: extraction is a visible step the commands run
first, the data layer never extracts, a mismatched run folder fails before any extraction, the
run's config.yaml is read strictly, and decode settings resolve in one order. (``fusion tune``
writing its choice into the run's config.yaml: tests/test_lm_tuning.py.)"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import torch
import yaml

from fusion.checkpoint import load_run
from fusion.cli import main as cli_main
from fusion.config import to_dict
from fusion.data import CaptionDataset, default_store_path, open_features
from fusion.decoding.config import LEGACY_DEFAULTS, DecodeConfig, resolve_decode_config
from fusion.errors import ConfigError, DataError
from fusion.experiment import ExperimentConfig
from fusion.features import ExtractConfig, FeatureRecord, FeatureStore
from fusion.manifest import ManifestEntry, load_manifest, write_manifest
from fusion.text import Vocabulary
from tests.mediafactory import make_video
from tests.builders import make_toy, save_random_run, tiny_model, toy_config

EXTRACT = ExtractConfig(frames_per_clip=2, random_weights=True, decode_workers=0)
CAPTIONS = ["a red ball rolls", "a dog barks", "rain falls on a roof"]
ENCODERS = "efficientnet_lite0 frames (2 per clip), soundnet8 pool5 audio"


def _clips(root: Path, splits: tuple[str, ...]) -> Path:
    """Tiny real clips (every other one without an audio stream) and their manifest."""
    entries = []
    for i, split in enumerate(splits):
        path = make_video(root / f"v{i}.mp4", seconds=1.0, fps=8, audio="tone" if i % 2 == 0 else None,
                          tone_hz=300 + 100 * i)
        entries.append(ManifestEntry(f"v{i}", str(path), split, [CAPTIONS[i % 3], CAPTIONS[(i + 1) % 3]], {}))
    write_manifest(entries, root / "manifest.jsonl")
    return root / "manifest.jsonl"


def _random_run(root: Path, manifest: Path | None = None, **decode: object) -> Path:
    """A checkpoint of a tiny random S2VT (real encoders' widths) in ``root/run``; no config.yaml."""
    cfg = tiny_model(ExperimentConfig(), hidden=8)
    cfg.data.manifest = str(manifest) if manifest else None
    cfg.extract = EXTRACT
    cfg.decode = DecodeConfig(**{"beam_size": 2, "max_len": 6, **decode})  # type: ignore[arg-type]
    return save_random_run(root / "run", cfg, CAPTIONS)


def test_reading_a_store_with_missing_records_names_the_extraction_command(tmp_path: Path) -> None:
    manifest = _clips(tmp_path, ("train", "train"))
    entries = load_manifest(manifest)
    store_path = tmp_path / "store"
    with pytest.raises(DataError, match="no feature store; extract the features first: `fusion extract"):
        open_features(entries, manifest, EXTRACT, store_path)
    FeatureStore(store_path, EXTRACT).write(FeatureRecord(id="v0", frames=torch.zeros(2, 1280).numpy(), audio=None))
    with pytest.raises(DataError, match=r"1 of 2 videos have no features \(e.g. 'v1'\); extract them first") as err:
        open_features(entries, manifest, EXTRACT, store_path)
    assert "\n" not in str(err.value) and "v1" not in FeatureStore(store_path)  # opening never extracts
    command = str(err.value).split("`")[1]
    assert command == f"fusion extract {manifest} --out {store_path} --set frames_per_clip=2 --set random_weights=True"
    with pytest.raises(DataError, match="extract them first: `fusion extract"):
        CaptionDataset(entries, FeatureStore(store_path), Vocabulary.build(CAPTIONS))
    assert cli_main(shlex.split(command)[1:]) == 0  # the command it names fills the store
    assert len(open_features(entries, manifest, EXTRACT, store_path)) == 2


def test_train_checks_the_run_folder_then_extracts_visibly_before_training(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _clips(tmp_path, ("train", "train", "val"))
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({
        "extract": {"frames_per_clip": 2, "random_weights": True, "decode_workers": 0},
        "model": {"hidden_size": 8, "frame_embed_size": 4, "word_embed_size": 4, "audio_mode": "none"},
        "train": {"batch_size": 4, "max_steps": 2, "val_metric": "loss", "device": "cpu", "tensorboard": False,
                  "num_threads": 1},
    }))
    code = cli_main(["train", str(config), "--manifest", str(manifest), "--out", str(tmp_path / "run"),
                     "--no-progress", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["steps"] == 2
    store = Path(load_run(tmp_path / "run").config.data.features)
    stage = [r for r in caplog.records if r.name == "fusion.stages"]
    assert [r.getMessage() for r in stage] == [f"extracting features of 3 of 3 videos ({ENCODERS}) into {store}"]
    assert stage[0].levelname == "INFO"  # shown by default: `fusion` sets this logger to INFO
    first_checkpoint = min(p.stat().st_mtime_ns for p in (tmp_path / "run" / "checkpoints").glob("step-*/meta.json"))
    assert max(p.stat().st_mtime_ns for p in store.rglob("*.npz")) <= first_checkpoint  # features, then training


def test_a_mismatched_out_fails_before_any_extraction(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fusion.training import train

    make_toy(tmp_path, n_train=6, n_val=3)
    train(toy_config(tmp_path, max_steps=1), tmp_path / "run", progress=False)
    # a new video joins the manifest: an extraction would be needed, but the config differs from the run's
    entries = load_manifest(tmp_path / "manifest.jsonl")
    extra = make_video(tmp_path / "new.mp4", seconds=1.0, fps=8, audio=None)
    write_manifest([*entries, ManifestEntry("new", str(extra), "train", ["a new clip"], {})], tmp_path / "manifest.jsonl")
    other = to_dict(toy_config(tmp_path, max_steps=1))
    other["model"]["hidden_size"] = 32
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    assert cli_main(["train", str(tmp_path / "other.yaml"), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a run with model.hidden_size=16" in err[0] and "another --out" in err[0]
    assert "new" not in FeatureStore(tmp_path / "store")  # nothing was extracted


def test_a_yaml_syntax_error_in_the_run_config_is_one_line_with_file_and_line(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    run = _random_run(tmp_path)
    path = run / "config.yaml"
    path.write_text("decode:\n  beam_size: 3\n  max_len: [4\nname: x\n")
    with pytest.raises(ConfigError, match=rf"{path} line \d+: not valid YAML"):
        load_run(run)
    assert cli_main(["evaluate", str(run), "--manifest", str(tmp_path / "m.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "line" in err[0] and "Traceback" not in err[0]


def test_decode_settings_resolve_defaults_then_run_config_then_command_line(tmp_path: Path) -> None:
    run_dir = _random_run(tmp_path, beam_size=4, max_len=9)
    run = load_run(run_dir)  # no RUN/config.yaml: the checkpoint's decode section
    assert (run.config.decode.beam_size, run.config.decode.max_len) == (4, 9)
    assert resolve_decode_config(run) == DecodeConfig(beam_size=4, max_len=9)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"decode": {"beam_size": 3, "length_weight": 0.5}}))
    run = load_run(run_dir)  # RUN/config.yaml's section wins over the checkpoint's; unset keys: the defaults
    unset = LEGACY_DEFAULTS  # (keys added after runs were trained: the value that kept their captions)
    assert resolve_decode_config(run) == DecodeConfig(beam_size=3, length_weight=0.5, **unset)
    resolved = resolve_decode_config(run, {"beam_size": 2, "max_len": None, "nbest": 2})  # None keeps the run's
    assert resolved == DecodeConfig(beam_size=2, length_weight=0.5, nbest=2, **unset)
    assert resolve_decode_config(None) == DecodeConfig()
    with pytest.raises(ConfigError, match="nbest=4 is invalid"):  # validated once, on the merged value
        resolve_decode_config(run, {"nbest": 4})
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"decode": {"beam_size": 0}}))
    with pytest.raises(ConfigError, match=r"config\.yaml: decode\.beam_size=0 is invalid"):
        load_run(run_dir)


@pytest.mark.java
def test_evaluate_extracts_visibly_before_decoding_and_records_its_decode_config(
        tmp_path: Path, java_available: bool, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _clips(tmp_path, ("train", "test", "test"))
    run = _random_run(tmp_path, manifest)
    assert cli_main(["evaluate", str(run), "--beam", "1", "--json", "--threads", "1"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    store = default_store_path(manifest, EXTRACT)
    messages = [r.getMessage() for r in caplog.records if r.name == "fusion.stages"]
    assert messages == [f"extracting features of 2 of 2 videos ({ENCODERS}) into {store}"]
    assert len(FeatureStore(store)) == 2  # the test split's videos only, extracted before decoding them
    assert metrics["decode"] == DecodeConfig(beam_size=1, max_len=6).to_dict()  # command line < run
    assert json.loads((run / "eval" / "test" / "metrics.json").read_text())["decode"] == metrics["decode"]


def test_a_run_older_than_a_decode_field_decodes_as_it_did(tmp_path: Path) -> None:
    run_dir = _random_run(tmp_path)
    old_section = {"beam_size": 2, "max_len": 6, "min_len": 1, "length_norm": True, "length_weight": 0.0,
                   "audio_weight": 0.0, "verifier": None}  # what runs trained before the one DecodeConfig stored
    meta_path = next((run_dir / "checkpoints").glob("step-*/meta.json"))
    meta = json.loads(meta_path.read_text())
    meta["config"]["decode"] = old_section
    meta_path.write_text(json.dumps(meta))
    resolved = resolve_decode_config(load_run(run_dir))
    assert {key: getattr(resolved, key) for key in LEGACY_DEFAULTS} == LEGACY_DEFAULTS
    (run_dir / "config.yaml").write_text(yaml.safe_dump({**to_dict(ExperimentConfig()), "decode": old_section}))
    assert resolve_decode_config(load_run(run_dir)) == resolved  # the old run folder's config.yaml: the same
    assert resolve_decode_config(load_run(run_dir), {"no_repeat_ngram_size": 3}).no_repeat_ngram_size == 3
    new_run = resolve_decode_config(load_run(_random_run(tmp_path / "new")))  # a current run: today's defaults
    assert new_run.no_repeat_ngram_size == DecodeConfig().no_repeat_ngram_size



@pytest.mark.slow  # torchrun
def test_the_extraction_stage_under_torchrun_shares_the_videos_and_reports_an_unreadable_one(tmp_path: Path) -> None:
    """Every rank runs the stage: the readable videos land in one store, an unreadable one fails the
    job with rank 0's one line (rank 0 alone used to run the ranks' collectives: a hang)."""
    import sys

    from tests.distributed_launch import run

    manifest = _clips(tmp_path, ("train", "val", "test"))
    entries = load_manifest(manifest)
    write_manifest([*entries, ManifestEntry("gone", str(tmp_path / "gone.mp4"), "test", ["a dog barks"], {})], manifest)
    script = tmp_path / "stage.py"
    script.write_text(
        "import sys\n"
        "from fusion.features import ExtractConfig\n"
        "from fusion.manifest import load_manifest\n"
        "from fusion.stages import extract_features\n"
        "config = ExtractConfig(frames_per_clip=2, random_weights=True, decode_workers=0)\n"
        "extract_features(load_manifest(sys.argv[1]), sys.argv[1], config, progress=False)\n"
    )
    done = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                str(script), str(manifest)], timeout=120)
    assert done.returncode != 0
    assert "1 of 4 videos could not be read" in done.stderr
    assert len(FeatureStore(default_store_path(manifest, EXTRACT))) == 3
