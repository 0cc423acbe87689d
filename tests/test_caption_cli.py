"""``fusion caption`` / ``fusion evaluate`` / CaptionPipeline on real small videos and a tiny random run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fusion.cli import main
from fusion.decoding.config import DecodeConfig, resolve_decode_config
from fusion.decoding.decoder import CaptionDecoder
from fusion.errors import ConfigError, DataError
from fusion.pipeline import CaptionPipeline, evaluate_run


@pytest.fixture(scope="module")
def pipeline(tiny_run: dict) -> CaptionPipeline:
    """The run's pipeline (encoders and decoder loaded once for the module), n-best 2."""
    return CaptionPipeline(tiny_run["run"], nbest=2)


def _fusion(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fusion", *args], capture_output=True, text=True, timeout=timeout)


def test_pipeline_captions_files_and_reports_broken_ones(tiny_run: dict, pipeline: CaptionPipeline) -> None:
    root = tiny_run["root"]
    pipe = pipeline
    results = pipe.caption([root / "c3.mp4", tiny_run["broken"], root / "c4.mp4"])
    assert [r.id for r in results] == ["c3", "broken", "c4"]
    ok, bad, silent = results
    assert bad.error and "broken.mp4" in bad.error and bad.hypotheses == [] and "\n" not in bad.error
    assert ok.audio_present is True and silent.audio_present is False
    for res in (ok, silent):
        assert len(res.hypotheses) == 2 and res.caption == res.hypotheses[0].words
        assert res.hypotheses[0].score >= res.hypotheses[1].score
        for h in res.hypotheses:
            assert set(h.scores) == {"caption"} and h.total == pytest.approx(h.scores["caption"])
            assert 1 <= len(h.tokens) <= 8 and pipe.run.vocab.unk_id not in h.tokens
            assert h.words == pipe.run.vocab.decode(h.tokens)
    # the same files decoded one at a time give the same captions (batching changes nothing)
    alone = [pipe.caption([root / name])[0].caption for name in ("c3.mp4", "c4.mp4")]
    assert alone == [ok.caption, silent.caption]


def test_pipeline_api_other_options_and_explanations(tiny_run: dict, pipeline: CaptionPipeline) -> None:
    import dataclasses

    root = tiny_run["root"]
    other = dataclasses.replace(pipeline.options, beam_size=2, nbest=2, audio_weight=0.5)
    (res,) = pipeline.caption([root / "c3.mp4"], options=other)
    assert len(res.hypotheses) == 2 and all(set(h.scores) == {"caption", "audio"} for h in res.hypotheses)
    assert pipeline.decoder.config.audio_weight == 0.0  # the pipeline's own decoder is unchanged
    assert [h.words for h in pipeline.decode([res.record], other)[0]] == [h.words for h in res.hypotheses]
    explanation = pipeline.explain(res, max_runners_up=1)
    assert isinstance(explanation, dict) and explanation
    (bad,) = pipeline.caption([tiny_run["broken"]])
    with pytest.raises(DataError, match="nothing to explain"):
        pipeline.explain(bad)


def test_decoder_weights_and_options(tiny_run: dict) -> None:
    from fusion.checkpoint import load_run

    run = load_run(tiny_run["run"])
    opts = resolve_decode_config(run, {"beam_size": 2, "length_weight": 0.5, "max_len": None})
    assert (opts.beam_size, opts.max_len, opts.length_weight) == (2, 8, 0.5)  # max_len: the run's
    decoder = CaptionDecoder(run, opts)
    assert decoder.weights == {"caption": 1.0, "length": 0.5}
    with pytest.raises(ConfigError, match="lm_weight=0.3 is given without a language model: name it with --lm"):
        DecodeConfig(lm_weight=0.3)
    with pytest.raises(ConfigError, match="given without a weight: add --lm-weight"):
        DecodeConfig(lm="some/lm")
    with pytest.raises(ConfigError, match="nbest=4"):
        DecodeConfig(beam_size=3, nbest=4)
    with pytest.raises(ConfigError, match="unknown decode option 'beam'"):
        resolve_decode_config(run, {"beam": 2})
    # an older `fusion tune` left a choice beside the run: it no longer changes captions by itself,
    # and --lm without a weight says which weight it chose and how to apply it
    tune = tiny_run["run"] / "tune" / "lm_loglinear.json"
    tune.parent.mkdir()
    try:
        tune.write_text(json.dumps({"best_alpha": 0.3, "lm": "some/lm", "mode": "loglinear"}))
        with pytest.raises(ConfigError, match=r"lm_loglinear.json .*chose lm_weight 0.3 .*give --lm-weight 0.3"):
            resolve_decode_config(run, {"lm": "some/lm"})
        assert resolve_decode_config(run, {"lm": "some/lm", "lm_weight": 0.1}).lm_weight == 0.1
        assert resolve_decode_config(run).lm is None  # the side file alone changes nothing
        with pytest.raises(ConfigError, match="given without a weight"):
            resolve_decode_config(run, {"lm": "other/lm"})
    finally:
        tune.unlink()
        tune.parent.rmdir()


@pytest.mark.java
def test_evaluate_writes_outputs_and_matches_caption(tiny_run: dict, pipeline: CaptionPipeline, java_available: bool,
                                                    tmp_path: Path) -> None:
    metrics = evaluate_run(tiny_run["run"], split="test", out_dir=tmp_path / "eval")
    for name in ("Bleu_1", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"):
        assert 0.0 <= metrics[name] <= 10.0
    assert metrics["n_videos"] == 3 and metrics["n_audio_absent"] == 1
    assert metrics["weights"] == {"caption": 1.0} and metrics["beam_size"] == 3
    assert metrics["decode"] == DecodeConfig(beam_size=3, max_len=8).to_dict()  # the effective decode config
    assert set(metrics["diagnostics"]) >= {"vocab_used", "novel_share", "mean_length"}
    preds = json.loads((tmp_path / "eval" / "predictions.json").read_text())
    per_video = json.loads((tmp_path / "eval" / "per_video.json").read_text())
    assert set(preds) == set(per_video) == {"c3", "c4", "c5"}
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["METEOR"] == metrics["METEOR"]
    assert len((tmp_path / "eval" / "nbest.jsonl").read_text().splitlines()) == 3
    # features from the store (evaluate) and on the fly (caption) give the same captions
    root = tiny_run["root"]
    captions = [r.caption for r in pipeline.caption([root / f"{v}.mp4" for v in preds])]
    assert captions == list(preds.values())


def test_caption_cli_json_and_broken_file(tiny_run: dict) -> None:
    root = tiny_run["root"]
    proc = _fusion("caption", str(root / "c3.mp4"), str(tiny_run["broken"]), "--model", str(tiny_run["run"]),
                   "--json", "--beam", "2", "--nbest", "2", "--length-weight", "0.1", "--threads", "1")
    assert proc.returncode == 1
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("fusion caption: error: ") and "broken.mp4" in errors[0]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [d["id"] for d in lines] == ["c3", "broken"] and "error" in lines[1]
    good = lines[0]
    assert good["audio_present"] is True and len(good["nbest"]) == 2 and good["caption"] == good["nbest"][0]["caption"]
    for hyp in good["nbest"]:
        assert set(hyp["scores"]) == {"caption", "length"}
        assert sum(hyp["weighted"].values()) == pytest.approx(hyp["total"], abs=1e-6)


def test_caption_cli_explain_and_user_errors(tiny_run: dict, capsys: pytest.CaptureFixture) -> None:
    root = tiny_run["root"]
    assert main(["caption", str(root / "c4.mp4"), "--model", str(tiny_run["run"]), "--explain"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{root / 'c4.mp4'}: ")
    assert sum(line.lstrip().startswith(("1.", "2.", "3.")) for line in out) == 3  # winner + runner-ups
    assert "caption" in out[1] and any("no audio stream" in line for line in out)
    assert main(["caption", str(root / "c4.mp4"), "--model", str(tiny_run["run"]), "--lm-weight", "0.5"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "fusion caption: error: decode.lm_weight=0.5 is given without a language model: name it with --lm PATH "
        "(or decode.lm in the run's config.yaml)"]
    assert main(["caption", str(root / "c4.mp4"), "--model", str(root / "no_such_run")]) == 2
    err = capsys.readouterr().err
    assert "no such run" in err and len(err.strip().splitlines()) == 1


@pytest.mark.java
def test_evaluate_cli_json(tiny_run: dict, java_available: bool, tmp_path: Path,
                           capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", str(tiny_run["run"]), "--manifest", str(tiny_run["manifest"]), "--split", "val",
                 "--beam", "2", "--json", "--out", str(tmp_path / "ev")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_videos"] == 1 and out["beam_size"] == 2 and "CIDEr" in out
    assert out["decode"]["beam_size"] == 2 and out["decode"]["max_len"] == 8  # command line < run's config
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["decode"] == out["decode"]
    assert (tmp_path / "ev" / "predictions.json").is_file()
    assert main(["evaluate", str(tiny_run["run"]), "--split", "val", "--lm-weight", "1"]) == 2
    assert "without a language model" in capsys.readouterr().err
    assert main(["evaluate", str(tiny_run["run"]), "--split", "nosuch"]) == 2
    assert "unknown split 'nosuch'" in capsys.readouterr().err


@pytest.mark.java
def test_evaluate_skips_unreadable_videos_unless_strict(tiny_run: dict, java_available: bool, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    from fusion.manifest import ManifestEntry, load_manifest, write_manifest

    notes = tmp_path / "notes.txt"
    notes.write_text("meeting notes, not a video\n" * 40)
    entries = [e for e in load_manifest(tiny_run["manifest"]) if e.split == "test"]
    entries += [ManifestEntry("gone", str(tmp_path / "gone.mp4"), "test", ["a clip"], {}),
                ManifestEntry("notes", str(notes), "test", ["a clip"], {})]
    write_manifest(entries, tmp_path / "m.jsonl")
    args = ["evaluate", str(tiny_run["run"]), "--manifest", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "ev")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "skipped            2 unreadable" in out and "videos             3 " in out
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["n_videos"] == 3 and metrics["n_skipped"] == 2
    assert {s["id"]: s["error"].split(": ", 1)[1][:14] for s in metrics["skipped"]} == {
        "gone": "file not found", "notes": "is a text file"}
    assert main([*args, "--strict"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "2 of 5 videos could not be read" in err and "fix or drop them" in err
    write_manifest(entries[3:], tmp_path / "bad.jsonl")
    assert main(["evaluate", str(tiny_run["run"]), "--manifest", str(tmp_path / "bad.jsonl")]) == 2
    assert "2 of 2 test videos could not be read" in capsys.readouterr().err
