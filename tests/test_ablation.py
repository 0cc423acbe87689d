"""``fusion ablate``: record transforms, paired bootstrap, and the runner on a tiny random run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fusion.ablation import (AblationConfig, _audio_noise, _audio_shuffled, _audio_zero, compare, derangement,
                             paired_bootstrap, run_ablation)
from fusion.ablation_report import error_bars, render_markdown, render_plot
from fusion.cli import main as cli_main
from fusion.decoding.registry import SCORERS
from fusion.errors import ConfigError
from tests.builders import make_store_run, random_records



def test_derangement_has_no_fixed_point() -> None:
    rng = np.random.default_rng(3)
    for n in (2, 3, 7, 50):
        perm = derangement(n, rng)
        assert sorted(perm.tolist()) == list(range(n))
        assert not np.any(perm == np.arange(n))


def test_transforms_touch_only_present_audio() -> None:
    recs = random_records(8, with_audio=True)
    rng = np.random.default_rng(0)
    zero = _audio_zero(recs, rng)
    shuffled = _audio_shuffled(recs, rng)
    noise = _audio_noise(recs, rng)
    for orig, z, s, n in zip(recs, zero, shuffled, noise):
        assert np.array_equal(orig.frames, z.frames) and np.array_equal(orig.frames, s.frames)
        if orig.audio is None:  # absent stays absent in every condition
            assert z.audio is None and s.audio is None and n.audio is None
            continue
        assert not z.audio.any() and np.allclose(z.posterior("audio", "imagenet"), 1 / 1000)
        assert n.audio.shape == orig.audio.shape and not np.array_equal(n.audio, orig.audio)
        assert s.audio is not orig.audio  # every clip with audio gets another clip's sound
        assert any(s.audio is other.audio for other in recs if other is not orig)


def test_paired_bootstrap_interval() -> None:
    rng = np.random.default_rng(0)
    low, high = paired_bootstrap(np.full(20, 0.25), 500, rng)
    assert low == pytest.approx(0.25) and high == pytest.approx(0.25)
    d = np.random.default_rng(1).normal(0.1, 1.0, size=400)
    low, high = paired_bootstrap(d, 1000, rng)
    assert low < d.mean() < high and high - low < 0.4


def _scored(corpus_meteor: float, per_video: list[float]) -> dict:
    return {"metrics": {"METEOR": corpus_meteor},
            "per_video": {f"v{i}": {"METEOR": value} for i, value in enumerate(per_video)}}


def test_paired_delta_and_its_interval_are_one_statistic_and_the_plot_never_crashes(tmp_path: Path) -> None:
    # Corpus METEOR is not the mean of per-video METEOR: here the corpus delta (-0.0654) lies
    # below every resampled per-video mean delta (about -0.1 ... -0.07), as on a real run
    # (ΔMETEOR -0.0654 [-0.1086, -0.0672] for audio_zero). The old table paired the two and
    # its chart asked matplotlib for a negative error bar, which raises.
    full_videos, cond_videos = [0.30, 0.25, 0.35, 0.28, 0.32, 0.27], [0.21, 0.17, 0.26, 0.19, 0.24, 0.18]
    full, cond = _scored(0.2654, full_videos), _scored(0.2000, cond_videos)
    delta, paired = compare(full, cond, samples=500, seed=0)
    assert delta["METEOR"] == pytest.approx(-0.0654)
    low, high = paired["METEOR"]["ci95"]
    assert not low <= delta["METEOR"] <= high  # the corpus delta is another statistic
    mean_delta = paired["METEOR"]["mean_delta"]
    assert mean_delta == pytest.approx(np.mean(np.subtract(cond_videos, full_videos)))
    assert low <= mean_delta <= high and paired["METEOR"]["n_videos"] == 6
    # an estimate outside its interval (or no interval) gets a clipped bar, never a negative one
    bars = error_bars([-0.0654, 0.1], [[-0.1086, -0.0672], [float("nan"), float("nan")]])
    np.testing.assert_allclose(bars, [[0.0432, 0.0], [0.0, 0.0]], atol=1e-12)  # rows: distance down, up
    row = {"name": "audio_zero", "metrics": cond["metrics"], "delta": delta,
           "paired": {"METEOR": {"mean_delta": -0.0654, "ci95": [-0.1086, -0.0672], "n_videos": 6}}}
    report = {"run": "r", "manifest": "m", "split": "test", "n_videos": 6, "n_audio_absent": 0,
              "bootstrap_samples": 500, "conditions": [{"name": "full", "metrics": full["metrics"], "delta": {},
                                                        "paired": {}}, row]}
    render_plot(report, tmp_path / "ablation.png")  # the old chart raised "'yerr' must not contain negative values"
    assert (tmp_path / "ablation.png").stat().st_size > 1000
    md = render_markdown(report)
    assert "mean over videos of the per-video difference" in md and "-0.0654 [-0.1086, -0.0672]" in md


def test_rescore_turns_an_old_report_into_one_statistic_per_column(tmp_path: Path, capsys) -> None:
    # a report as the old `fusion ablate` wrote it: corpus delta beside a per-video interval
    full_videos, cond_videos = [0.30, 0.25, 0.35, 0.28], [0.21, 0.17, 0.26, 0.19]
    per_video = {"full": {f"v{i}": {"METEOR": x} for i, x in enumerate(full_videos)},
                 "audio_zero": {f"v{i}": {"METEOR": x} for i, x in enumerate(cond_videos)}}
    rows = [{"name": "full", "metrics": {"METEOR": 0.2654}, "delta": {"METEOR": 0.0}, "ci95": {"METEOR": [0.0, 0.0]}},
            {"name": "audio_zero", "metrics": {"METEOR": 0.2}, "delta": {"METEOR": -0.0654},
             "ci95": {"METEOR": [-0.0925, -0.0825]}}]
    old = {"run": "r", "manifest": "m", "split": "test", "n_videos": 4, "n_audio_absent": 0, "bootstrap_samples": 200,
           "seed": 0, "conditions": rows, "notes": []}
    (tmp_path / "ablation.json").write_text(json.dumps(old))
    (tmp_path / "per_video.json").write_text(json.dumps(per_video))
    (tmp_path / "predictions.json").write_text(json.dumps({"full": {}, "audio_zero": {}}))
    assert cli_main(["ablate", "unused", "--out", str(tmp_path), "--rescore", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    row = report["conditions"][1]
    assert "ci95" not in row and row["delta"]["METEOR"] == pytest.approx(-0.0654)
    low, high = row["paired"]["METEOR"]["ci95"]
    assert row["paired"]["METEOR"]["mean_delta"] == pytest.approx(-0.0875) and low <= -0.0875 <= high
    assert json.loads((tmp_path / "ablation.json").read_text()) == report and (tmp_path / "ablation.png").is_file()


def test_config_rejects_unknown_condition() -> None:
    with pytest.raises(ConfigError, match="unknown ablation condition 'audio_loud'"):
        AblationConfig(conditions=("audio_loud",))


@pytest.mark.java
def test_ablation_runner_on_tiny_run(tmp_path: Path, java_available: bool) -> None:
    run = make_store_run(tmp_path, with_audio=True)
    report = run_ablation(run, tmp_path / "abl", config=AblationConfig(bootstrap_samples=200),
                          video_only_run=run)
    names = [c["name"] for c in report["conditions"]]
    # one "<scorer> off" condition per registered scorer that declares one, in the registry's (fusion) order
    scorers_off = [spec.ablation for spec in SCORERS if spec.ablation is not None]
    assert scorers_off[:2] == ["lm_off", "verifier_off"]
    assert names == ["full", "audio_absent", "audio_zero", "audio_shuffled", "audio_noise", *scorers_off,
                     "lm_and_verifier_off", "video_only_model"]
    rows = {c["name"]: c for c in report["conditions"]}
    assert rows["full"]["delta"]["METEOR"] == 0.0
    assert rows["full"]["paired"]["METEOR"] == {"mean_delta": 0.0, "ci95": [0.0, 0.0], "n_videos": 8}
    for row in rows.values():  # each paired point estimate lies in its own interval
        for paired in row["paired"].values():
            assert paired["ci95"][0] - 1e-12 <= paired["mean_delta"] <= paired["ci95"][1] + 1e-12
    # The same run as its own "video-only" model decodes identically.
    assert rows["video_only_model"]["delta"]["CIDEr"] == pytest.approx(0.0)
    assert "identical_to_full" in rows["verifier_off"] and "identical_to_full" in rows["lm_off"]
    assert "identical_to_full" in rows["lm_and_verifier_off"]
    assert "identical_to_full" not in rows["audio_absent"]
    # The audio stream matters to this model: removing it moves the captions' scores.
    assert rows["audio_absent"]["metrics"]["mean_score"] != rows["full"]["metrics"]["mean_score"]
    assert rows["verifier_off"]["metrics"]["mean_score"] == rows["full"]["metrics"]["mean_score"]
    preds = json.loads((tmp_path / "abl" / "predictions.json").read_text())
    assert set(preds) == set(names) and len(preds["full"]) == 8
    assert (tmp_path / "abl" / "ablation.png").stat().st_size > 1000
    md = (tmp_path / "abl" / "ablation.md").read_text()
    assert "| audio_shuffled |" in md and "95%" in md


@pytest.mark.java
def test_ablation_without_any_audio_says_so(tmp_path: Path, java_available: bool, capsys) -> None:
    run = make_store_run(tmp_path, with_audio=False)
    code = cli_main(["ablate", str(run), "--out", str(tmp_path / "abl"), "--json", "--bootstrap", "100",
                     "--conditions", "audio_absent", "audio_shuffled"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_audio_absent"] == report["n_videos"] == 8
    assert any("No test video has an audio stream" in n for n in report["notes"])
    for row in report["conditions"][1:]:
        assert "identical_to_full" in row
        assert row["metrics"]["METEOR"] == report["conditions"][0]["metrics"]["METEOR"]
