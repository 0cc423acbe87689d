"""``fusion serve`` without a browser: the caption service, the runs readers, the views, the CLI.

The tiny random run is :func:`tests.builders.make_serve_run` (real clips, a training log, an
evaluation and an ablation beside it), shared with the browser tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fusion.decoding.guards import SOUND_CLAIM_WORDS
from fusion.errors import ConfigError
from fusion.serve import CaptionService, DecodeSettings, UploadError
from fusion.serve import runs as runs_mod
from fusion.serve import views
from fusion.serve.clipview import audio_status, frame_strip
from tests.builders import ablation_interval, make_serve_run, make_serve_zeroshot
from tests.mediafactory import make_audio



@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_serve_run(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def service(tiny: dict[str, Path]) -> CaptionService:
    return CaptionService({"tiny": tiny["run"]}, max_upload_bytes=2**20)


def test_caption_with_sound_then_sliders_redecode_from_cache(tiny: dict[str, Path], service: CaptionService) -> None:
    settings = service.defaults("tiny")
    sliders = {s.scorer: s for s in service.sliders("tiny")}  # one per registered slider scorer, in order
    assert settings.beam_size == 3 and [name for name, _ in settings.weights] == list(sliders)
    assert (settings.weight("lm"), settings.weight("audio")) == (0.0, 1.0)  # the run's own: no LM, verifier on
    assert not sliders["lm"].available and sliders["audio"].available  # the run fuses no LM: its slider cannot move
    assert (sliders["audio"].minimum, sliders["audio"].maximum, sliders["lm"].maximum) == (0.0, 5.0, 2.0)
    first = service.analyse("tiny", tiny["root"] / "c3.mp4")
    assert first.audio == "present" and first.has_video and first.strip is not None
    assert first.strip.shape[0] == 96 and first.strip.dtype.name == "uint8"
    assert len(first.tags["audio"]["places2"]) == 5 and len(first.tags["frames"]["imagenet"]) == 5
    view = service.decode("tiny", first.key, settings)
    assert len(view.hypotheses) == 3 and view.caption == view.hypotheses[0].words
    assert set(view.hypotheses[0].weights) == {"caption", "audio"} and view.evidence_available
    rows = views.nbest_rows(view.hypotheses)
    for row, hyp in zip(rows, view.hypotheses):
        shares = [v for v in row[4:] if v is not None]
        assert sum(shares) == pytest.approx(row[3], abs=0.02) and row[1] == hyp.words  # 2 decimals each
    # same bytes under another name: the cached analysis, not a second extraction
    copy = tiny["root"] / "renamed.mp4"
    copy.write_bytes((tiny["root"] / "c3.mp4").read_bytes())
    again = service.analyse("tiny", copy)
    assert again.key == first.key and again.record is first.record and again.name == "renamed.mp4"
    # the audio weight moves the audio share; weight 0 drops the scorer
    loud = service.decode("tiny", first.key, DecodeSettings.of(3, lm=0.0, audio=4.0))
    off = service.decode("tiny", first.key, DecodeSettings.of(1, lm=0.0, audio=0.0))
    assert len(off.hypotheses) == 1 and "audio" not in off.hypotheses[0].weights
    assert [h.weights["audio"] for h in loud.hypotheses] == [4.0] * 3
    # the page's settings go through the decode configuration's own checks
    with pytest.raises(ConfigError, match="--beam 1 or more"):
        service.decode("tiny", first.key, DecodeSettings.of(0, lm=0.0, audio=1.0))
    with pytest.raises(ConfigError, match="without a language model"):
        service.decode("tiny", first.key, DecodeSettings.of(2, lm=0.5, audio=1.0))


def test_silent_and_absent_audio_and_audio_only(tiny: dict[str, Path], service: CaptionService, tmp_path: Path) -> None:
    absent = service.analyse("tiny", tiny["root"] / "c4.mp4")
    silent = service.analyse("tiny", tiny["root"] / "c5.mp4")
    assert (absent.audio, silent.audio) == ("absent", "silent")
    assert absent.tags["audio"] is None and "no audio stream" in views.audio_charts(absent.tags)
    view = service.decode("tiny", absent.key, DecodeSettings.of(2, lm=0.0, audio=1.0))
    assert not view.evidence_available and "no audio stream" in views.explanation_markdown(view.hypotheses, view.nouns, False)
    wav = service.analyse("tiny", make_audio(tmp_path / "bark.wav", seconds=1.0, kind="noise"))
    assert wav.audio == "present" and not wav.has_video and wav.strip is None and wav.tags["frames"] is None
    assert audio_status(None) == "absent"


def test_bad_uploads_are_one_line_errors(tiny: dict[str, Path], service: CaptionService, tmp_path: Path) -> None:
    with pytest.raises(UploadError, match=r"^broken.mp4: ") as err:
        service.analyse("tiny", tiny["broken"])
    assert "\n" not in str(err.value) and str(tiny["root"]) not in str(err.value)
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (2**20 + 1))
    with pytest.raises(UploadError, match="over the 1 MB upload limit"):
        service.analyse("tiny", big)
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(UploadError, match="empty"):
        service.analyse("tiny", empty)
    with pytest.raises(UploadError, match="not a file"):
        service.analyse("tiny", tmp_path)
    with pytest.raises(UploadError, match="upload it again"):
        service.decode("tiny", "no-such-key", DecodeSettings.of(1, lm=0.0, audio=0.0))
    with pytest.raises(UploadError, match="unknown"):
        service.load("nope")


def test_run_card_and_familiarity_shown(tiny: dict[str, Path], service: CaptionService, tmp_path: Path) -> None:

    from fusion.manifest import load_manifest, split_entries
    from fusion.runcard import write_run_knowledge

    assert service.trained_on("tiny")[0] is None and "python -m fusion.runcard" in service.trained_on("tiny")[1]
    run = tmp_path / "known"
    shutil.copytree(tiny["run"], run)
    loaded = service.load("tiny")
    entries = load_manifest(tiny["root"] / "manifest.jsonl")
    val = split_entries(entries, "val") + split_entries(entries, "test")  # all six clips train: enough to spread
    records = {e.id: loaded.pipeline.extractor.extract(e.video, id=e.id) for e in entries}
    write_run_knowledge(run, loaded.pipeline.run.config, entries, val, list(records.values()),
                        [records[e.id] for e in val], loaded.pipeline.run.vocab)
    known = CaptionService({"known": run})
    trained_on, note = known.trained_on("known")
    assert "6 training clips" in trained_on and note is None
    analysis = known.analyse("known", tiny["root"] / "c3.mp4")
    assert set(analysis.familiarity) >= {"flagged", "distance", "threshold", "warning"}
    assert analysis.record.meta["ood"]["distance"] == analysis.familiarity["distance"]  # what the verifier reads
    text = views.model_info_markdown(trained_on, note)
    assert "The model was trained on** " + trained_on.split(" (")[0] in text
    beside = views.familiarity_markdown(analysis.familiarity)  # beside the caption; "trained on" is said once
    assert beside.startswith(("This clip is within", '<div id="fusion-unfamiliar">⚠ This clip is unlike'))
    assert "distance" in beside and "trained on" not in beside


def test_runs_readers(tiny: dict[str, Path]) -> None:
    found = runs_mod.discover_runs(tiny["runs"])
    assert list(found) == ["tiny"] and list(runs_mod.discover_ablations(tiny["runs"])) == ["ablation"]
    headers, rows = runs_mod.metrics_table(found)
    table = {r[0]: r[1] for r in rows}
    assert headers == ["metric", "tiny"] and table["METEOR"] == 0.25 and table["best checkpoint (METEOR)"] == 0.21
    train, val = runs_mod.training_curves(found)
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5] and {r["metric"] for r in val} == {"METEOR", "loss"}
    assert runs_mod.decode_configs(found)["tiny"]["beam_size"] == 3
    report = runs_mod.ablation_report(tiny["ablation"])
    headers, rows = runs_mod.ablation_table(report)
    assert [r[0] for r in rows] == ["full", "audio_zero"] and "ΔMETEOR per video [95% CI]" in headers
    assert rows[1][headers.index("ΔMETEOR per video [95% CI]")] == ablation_interval(tiny["ablation"], "METEOR")
    examples = runs_mod.example_clips(tiny["run"])
    assert [k for k in examples if k.startswith("test:")] == ["test: c3", "test: c4", "test: c5"]


def test_views_escape_and_strip() -> None:
    chart = views.bar_chart("t", [{"label": "<script>", "score": 0.5}], "#000", "none")
    assert "<script>" not in chart and "&lt;script&gt;" in chart
    frames = torch.randint(0, 255, (20, 48, 64, 3), dtype=torch.uint8).numpy()
    strip = frame_strip(frames)
    assert strip.shape == (96, 8 * 128 + 7 * 4, 3)


def test_cli_reports_missing_run_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "fusion", "serve", "--runs", str(tmp_path), "--port", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "no trained run under" in proc.stderr


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_cli_reports_a_bad_port_in_one_line(tmp_path: Path, port: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "fusion", "serve", "--runs", str(tmp_path), "--port", port],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"fusion serve: error: --port {port}: a TCP port is 0-65535; pick a free one, " \
        "e.g. --port 7860"


def test_explanation_says_each_verdict_once() -> None:
    from fusion.decoding.hypothesis import Hypothesis

    dog = {"word": "dog", "noun": "dog", "evidence": 1.47, "verdict": "supported by the sound"}
    rain = {"word": "rain", "noun": "rain", "evidence": -0.3, "verdict": "not heard"}
    hyps = [Hypothesis([5], caption, -1.0, {"caption": -1.0}, -1.0, {"caption": 1.0})
            for caption in ("a dog in the rain", "a dog runs", "a dog jumps", "a red ball", "a dog and a dog")]
    text = views.explanation_markdown(hyps, [[dog, rain], [dog], [dog], [], [dog, dog]], True)
    assert text.count("supported by the sound") == 1 and text.count("not heard") == 1
    assert "4. *a red ball*: no audible noun" in text
    assert text.splitlines()[-1] == "5. *a dog and a dog*: **dog**"


def test_zeroshot_consensus_mode_neighbours_bars_and_reason(tiny: dict[str, Path], tmp_path: Path) -> None:
    from fusion.zeroshot.explain import consensus_report

    folder = make_serve_zeroshot(tmp_path / "zs")
    service = CaptionService({"zs": folder, "tiny": tiny["run"]})
    settings = service.defaults("zs")
    assert settings.neighbours == 4 and service.defaults("tiny").neighbours is None
    silent = service.analyse("zs", tiny["root"] / "c4.mp4")  # no audio stream
    view = service.decode("zs", silent.key, settings)
    model = service.load("zs").pipeline.model
    assert view.caption == model.decode([silent.record])[0][0].words  # what `fusion caption` prints
    assert view.consensus == consensus_report(model, silent.record, model.config)  # one search: caption and reason
    assert not {w for h in view.hypotheses for w in h.words.split()} & SOUND_CLAIM_WORDS
    headers, rows = views.nbest_table(view.hypotheses)
    assert headers == ["#", "caption", "score", "total", "consensus"] and len(rows) == 3 and rows[0][4] == rows[0][2]
    bars = views.concept_bars(view.nouns[0], view.evidence_available, True, view.evidence_scale)
    assert 'data-source="seen"' in bars and 'data-source="heard"' not in bars and "no audio stream" in bars
    text = views.explanation_markdown(view.hypotheses, view.nouns, view.evidence_available, view.consensus)
    assert "consensus of the nearest corpus clips" in text and f"`{view.consensus['from_clip']}`" in text
    # the neighbours re-decode from the cache; the beam size is the captions listed
    narrow = service.decode("zs", silent.key, DecodeSettings(1, settings.weights, 2))
    assert narrow.consensus is not None and narrow.consensus["neighbours_used"] == 2 and len(narrow.hypotheses) == 1
    assert narrow.settings.describe().startswith("2 neighbours, 1 caption listed")
    with pytest.raises(ConfigError, match="neighbours=1"):
        service.decode("zs", silent.key, DecodeSettings(1, settings.weights, 1))
    # a trained run takes no neighbours: a stray value is dropped, its table keeps the registry's columns
    trained = service.analyse("tiny", tiny["root"] / "c3.mp4")
    plain = service.decode("tiny", trained.key, DecodeSettings(2, service.defaults("tiny").weights, 7))
    assert plain.settings.neighbours is None and plain.consensus is None
    assert views.nbest_table(plain.hypotheses)[0] == views.NBEST_HEADERS
