"""``fusion tune``: alpha for late fusion chosen on validation by decoding and scoring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fusion.cli import main as cli_main
from fusion.errors import ConfigError
from fusion.experiment import ExperimentConfig
from fusion.features import ExtractConfig
from fusion.manifest import ManifestEntry, write_manifest
from fusion.tuning import tune_lm_weight
from tests.builders import save_random_run_and_lm
from tests.mediafactory import make_video

CAPTIONS = ["a man is playing a guitar", "a woman is slicing an onion", "a dog is running in the park"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Four tiny clips, a random video-only S2VT run, and an LM trained on the captions."""
    root = tmp_path_factory.mktemp("tune")
    entries = []
    for i, split in enumerate(["train", "val", "val", "test"]):
        path = make_video(root / f"v{i}.mp4", seconds=1.0, fps=8, audio=None)
        entries.append(ManifestEntry(f"v{i}", str(path), split, [CAPTIONS[i % 3], CAPTIONS[(i + 1) % 3]], {}))
    write_manifest(entries, root / "manifest.jsonl")
    cfg = ExperimentConfig()
    cfg.data.manifest = str(root / "manifest.jsonl")
    cfg.extract = ExtractConfig(frames_per_clip=2, random_weights=True, decode_workers=0)
    cfg.model.hidden_size, cfg.model.frame_embed_size, cfg.model.word_embed_size = 8, 8, 8
    cfg.decode.beam_size, cfg.decode.max_len = 2, 8
    return save_random_run_and_lm(root, cfg, CAPTIONS, frame_dim=1280, audio_dim=0, lm_epochs=30)


@pytest.mark.java
@pytest.mark.parametrize("mode", ["loglinear", "linear"])
def test_tune_picks_an_alpha_that_helps(setup: dict, mode: str, java_available: bool, tmp_path: Path) -> None:
    out = tmp_path / f"{mode}.json"
    result = tune_lm_weight(setup["run"], setup["lm"], [0.5, 1.0], mode=mode, out=out, apply=False, progress=False)
    assert set(result.scores) == {"0.0", "0.5", "1.0"} and result.n_videos == 2 and result.split == "val"
    # A random caption model babbles; an LM trained on the references steers it to real captions.
    assert result.best_alpha > 0 and result.best_value > result.baseline_value
    assert result.best_value == max(s["METEOR"] for s in result.scores.values())
    saved = json.loads(out.read_text())
    assert saved["best_alpha"] == result.best_alpha and saved["mode"] == mode
    assert f"--lm-weight {result.best_alpha:g} --lm-mode {mode}" in saved["command"]  # not applied: how to use it
    assert result.config == "" and not (setup["run"] / "config.yaml").exists()


@pytest.mark.java
def test_tune_cli_writes_its_choice_into_the_run_config(setup: dict, java_available: bool,
                                                        capsys: pytest.CaptureFixture) -> None:
    from fusion.checkpoint import load_run
    from fusion.decoding.config import resolve_decode_config

    code = cli_main(["tune", str(setup["run"]), "--lm", str(setup["lm"]), "--alphas", "1", "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert Path(printed["out"]) == setup["run"] / "tune" / "lm_loglinear.json"
    assert json.loads(Path(printed["out"]).read_text())["best_alpha"] == printed["best_alpha"] == 1.0
    assert Path(printed["config"]) == setup["run"] / "config.yaml"
    decode = yaml.safe_load((setup["run"] / "config.yaml").read_text())["decode"]
    assert (decode["lm"], decode["lm_weight"], decode["lm_mode"]) == (str(setup["lm"]), 1.0, "loglinear")
    assert decode["beam_size"] == 2  # the rest of the decode section is kept
    options = resolve_decode_config(load_run(setup["run"]))  # evaluate / caption / ablate now decode with it
    assert (options.lm, options.lm_weight) == (str(setup["lm"]), 1.0)
    assert resolve_decode_config(load_run(setup["run"]), {"lm_weight": 0.5}).lm_weight == 0.5  # the command line wins
    code = cli_main(["tune", str(setup["run"]), "--lm", str(setup["lm"]), "--alphas", "1", "--audio-penalty", "0.3"])
    out = capsys.readouterr().out
    assert code == 0 and "decode.audio_penalty=0.3" in out  # the "wrote" line names every field it wrote
    assert yaml.safe_load((setup["run"] / "config.yaml").read_text())["decode"]["audio_penalty"] == 0.3


def test_tune_user_errors(setup: dict, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ConfigError, match=r"in \[0, 1\]"):
        tune_lm_weight(setup["run"], setup["lm"], [2.0], mode="linear")
    with pytest.raises(ConfigError, match="metric"):
        tune_lm_weight(setup["run"], setup["lm"], [0.5], metric="SPICE")
    code = cli_main(["tune", str(setup["run"]), "--lm", str(setup["root"] / "nope"), "--alphas", "0.5"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "nope" in err
