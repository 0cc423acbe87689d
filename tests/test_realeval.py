"""The real-clip development harness: noun precision, fixed CIDEr IDF, paired intervals, leave-one-out,
the audio ablation, and the development manifest built from the shared data."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from data_prep.devclips import WordNetNouns, build_devclips, dev_clip_ids, wordnet_nouns
from fusion.errors import DataError
from fusion.features import FeatureRecord
from fusion.manifest import ManifestEntry
from fusion.realeval import DevSet, audio_ablation, compare_systems, loo_select, noun_match, paired, score_clips
from fusion.realeval.metrics import reference_lemmas, repeated_words

FIXTURE = Path(__file__).parent / "fixtures" / "wordnet_tiny"
REFS = {
    "clip_a": ["a dog is barking at a man", "the puppy barks", "two dogs play"],
    "clip_b": ["a train is passing by", "the train goes by near the sea"],
    "clip_c": ["a rooster crows", "a man sets the table"],
}


@pytest.fixture(scope="module")
def lexicon() -> Iterator[WordNetNouns]:
    with wordnet_nouns(FIXTURE) as lex:
        yield lex


def test_noun_precision_counts_lemmatised_nouns_found_in_references(lexicon: WordNetNouns) -> None:
    ref_words = reference_lemmas(REFS["clip_a"], lexicon)
    assert "dog" in ref_words  # "dogs" in a reference stands for its lemma
    match = noun_match("the dogs chase a rooster", ref_words, lexicon)
    assert match.nouns == ["dog", "rooster"] and match.found == ["dog"] and match.precision == 0.5
    assert noun_match("it is here", ref_words, lexicon).precision is None  # no noun: no precision


def test_repeated_words_ignore_function_words(lexicon: WordNetNouns) -> None:
    assert repeated_words("a man and a man", lexicon) == ["man"]
    assert repeated_words("a dog is at the sea", lexicon) == []


@pytest.mark.java
def test_clip_cider_does_not_depend_on_other_clips_captions(lexicon: WordNetNouns, java_available: bool) -> None:
    first = score_clips({"clip_a": "a dog barks", "clip_b": "a train", "clip_c": "a man"}, REFS, lexicon)
    second = score_clips({"clip_a": "a dog barks", "clip_b": "the sea", "clip_c": "a rooster crows"}, REFS, lexicon)
    assert first.per_clip["clip_a"]["CIDEr"] == pytest.approx(second.per_clip["clip_a"]["CIDEr"])
    assert first.per_clip["clip_a"]["CIDEr"] > 0
    assert second.per_clip["clip_c"]["METEOR"] > first.per_clip["clip_c"]["METEOR"]
    assert first.summary(["clip_a"])["n_clips"] == 1
    with pytest.raises(DataError, match="every system captions every clip"):
        score_clips({"clip_a": "a dog"}, REFS, lexicon)


def test_paired_interval_and_wins() -> None:
    system = {f"c{i}": 1.0 + 0.1 * (i % 3) for i in range(12)}
    baseline = {f"c{i}": 1.0 for i in range(12)}
    out = paired(system, baseline)
    assert out["n_clips"] == 12 and out["wins"] == 8 and out["losses"] == 0
    low, high = out["ci95"]
    assert 0 < low <= out["mean_delta"] <= high
    assert paired(system, {}, ["c0"])["mean_delta"] is None


def test_leave_one_out_chooses_without_the_held_out_clip() -> None:
    ids = ["x", "y", "z"]
    scores = {"good_on_x": {"x": 10.0, "y": 0.0, "z": 0.0}, "steady": {"x": 0.0, "y": 1.0, "z": 1.0}}
    preds = {name: {i: f"{name} {i}" for i in ids} for name in scores}
    choice = loo_select(scores, preds, ids)
    # holding x out, good_on_x scores 0 on y, z: steady wins; holding y (or z) out, good_on_x's x wins
    assert choice.chosen == {"x": "steady", "y": "good_on_x", "z": "good_on_x"}
    assert choice.predictions["x"] == "steady x" and choice.counts == {"steady": 1, "good_on_x": 2}
    with pytest.raises(DataError, match="at least 2"):
        loo_select(scores, preds, ["x"])


def _record(clip: str, audio: bool) -> FeatureRecord:
    rng = np.random.default_rng(len(clip))
    return FeatureRecord(id=clip, frames=rng.random((4, 3), dtype=np.float32),
                         audio=rng.random((2, 3), dtype=np.float32) if audio else None,
                         posteriors={"audio/imagenet": np.full(1000, 1e-3, np.float32),
                                     "audio/places2": np.full(401, 1 / 401, np.float32)} if audio else {},
                         meta={"has_audio_stream": audio})


def _hears(records: Sequence[FeatureRecord]) -> list[str]:
    return ["a dog barks" if r.has_audio else "a dog" for r in records]


def _devset() -> DevSet:
    entries = [ManifestEntry(i, f"{i}.mp4", "test", REFS[i], {"has_audio": i != "clip_c"}) for i in REFS]
    return DevSet(entries=entries, records={i: _record(i, i != "clip_c") for i in REFS})


def test_audio_ablation_changes_only_clips_with_sound() -> None:
    dev = _devset()
    assert dev.subset("with_audio") == ["clip_a", "clip_b"] and dev.subset("without_audio") == ["clip_c"]
    on, off = audio_ablation(_hears, dev)
    assert on == {"clip_a": "a dog barks", "clip_b": "a dog barks", "clip_c": "a dog"}
    assert set(off.values()) == {"a dog"}


@pytest.mark.java
def test_compare_systems_reports_subsets_and_pairs(lexicon: WordNetNouns, java_available: bool) -> None:
    dev = _devset()
    scores = {"constant": score_clips({i: "a man" for i in REFS}, dev.references, lexicon),
              "hears": score_clips(dict(zip(REFS, _hears(dev.ordered_records()))), dev.references, lexicon)}
    report = compare_systems(scores, dev, baselines=["constant"])
    assert report["systems"]["hears"]["summary"]["with_audio"]["n_clips"] == 2
    assert set(report["paired"]["hears"]) == {"constant"} and report["paired"]["constant"] == {}
    assert report["paired"]["hears"]["constant"]["CIDEr"]["n_clips"] == 3
    from fusion.realeval import ablation_summary
    from fusion.realeval.report import render_markdown
    from scripts.zeroshot_real_clips import goal_check

    on, off = audio_ablation(_hears, dev)
    report.update(clips={s: len(dev.subset(s)) for s in ("all", "with_audio", "without_audio")}, command="x",
                  audio_ablation={"hears": ablation_summary(scores["hears"], score_clips(off, dev.references, lexicon), dev)})
    report["goal"] = goal_check(report, "hears")
    assert report["audio_ablation"]["hears"]["changed"] == 2
    assert report["goal"]["hears: no repeated words"].startswith("yes")
    page = render_markdown(report, dev.references)
    assert "| hears | 2 |" in page and "a dog barks (" in page
    with pytest.raises(DataError, match="was not scored"):
        compare_systems(scores, dev, baselines=["blind"])


@pytest.mark.real_data
def test_devclips_manifest_from_the_shared_data(data_dir: Path, tmp_path: Path) -> None:
    entries = build_devclips(tmp_path / "dev.jsonl", data_dir)
    ids = dev_clip_ids(data_dir)
    assert len(entries) == len(ids["msrvtt"]) + len(ids["msvd"]) > 0
    for e in entries:
        assert e.captions and e.meta["dataset"] in ids and e.id in ids[e.meta["dataset"]]
        assert e.meta["has_audio"] == (e.meta["dataset"] == "msrvtt")  # MSVD has no audio at all


# ----------------------------------------------------------------- baselines
def test_constant_captions_are_chosen_on_the_corpus() -> None:
    from fusion.realeval.baselines import best_constant_caption, caption_counts, most_frequent_caption

    counts = caption_counts(["A man is talking.", "a man is talking", "a dog runs", "a dog runs on grass",
                             "a dog runs", "a dog runs"])
    assert most_frequent_caption(counts) == "a dog runs" and counts["a man is talking"] == 2
    corpus_clips = {"v1": ["a man is talking to a man", "a man talks"], "v2": ["a man is talking loudly"],
                    "v3": ["a cat sleeps"], "v4": ["trees in the wind"]}  # CIDEr's IDF needs clips without the words
    best, table = best_constant_caption(counts, corpus_clips, candidates=3)
    assert best == "a man is talking" and table[best] > table["a dog runs"]
    with pytest.raises(DataError, match="val split"):
        best_constant_caption(counts, {})


def test_blind_lm_says_its_favourite_sentence() -> None:
    from fusion.models.lm import LMConfig
    from fusion.realeval.baselines import blind_lm_caption
    from fusion.training.lm import train_lm

    corpus = ["a man is talking"] * 30 + ["a dog runs on the grass"] * 5
    lm = train_lm(corpus, LMConfig(embed_size=16, hidden_size=32, max_epochs=40, lr=1e-2, dropout=0.0,
                                   min_word_count=1, val_fraction=0.0, batch_size=8, patience=40), val_sentences=corpus[:4], progress=False)
    assert blind_lm_caption(lm, beam_size=3) == "a man is talking"


def test_retrieval_picks_the_caption_whose_concepts_the_clip_supports() -> None:
    from collections import Counter

    from fusion.realeval.baselines import RetrievalIndex

    keys = {"dog": "dog", "dogs": "dog", "guitar": "guitar", "man": "man", "barking": "bark"}
    counts = Counter({"a dog is barking": 3, "a man plays a guitar": 5, "two dogs": 1, "it is here": 9})
    index = RetrievalIndex(counts, keys.get)
    assert "it is here" not in index.captions  # no linked word: never retrieved
    assert index.retrieve({"guitar": 2.0, "dog": -1.0}) == "a man plays a guitar"
    assert index.retrieve({"dog": 2.0, "bark": 1.0}) == "two dogs"  # mean evidence: dog alone beats dog + bark
    assert index.retrieve({"dog": 2.0, "bark": 1.0}, prior_weight=1.0) == "a dog is barking"


def test_model_and_prediction_arguments_fail_in_one_line(tmp_path: Path) -> None:
    from scripts.zeroshot_real_clips import parse_models, read_predictions

    assert parse_models(["zero-shot=runs/zs"]) == {"zero-shot": "runs/zs"}
    with pytest.raises(DataError, match="NAME=PATH"):
        parse_models(["runs/zs"])
    bad = tmp_path / "p.json"
    bad.write_text('{"s2vt": {"clip_a": "a dog"}}')
    with pytest.raises(DataError, match="lacks a caption"):
        read_predictions(str(bad), ["clip_a", "clip_b"])
    with pytest.raises(DataError, match="cannot read"):
        read_predictions(str(tmp_path / "absent.json"), ["clip_a"])


def test_retrieval_weight_can_be_chosen_on_noun_precision() -> None:
    from fusion.realeval.metrics import ClipScores
    from scripts.zeroshot_real_clips import per_clip_criterion

    rows = {"clip_a": {"CIDEr": 0.5, "noun_precision": 1.0}, "clip_b": {"CIDEr": 0.2, "noun_precision": None}}
    scores = ClipScores(predictions={"clip_a": "a dog", "clip_b": "it is"}, per_clip=rows, corpus={})
    ids = ["clip_a", "clip_b"]
    assert per_clip_criterion(scores, "CIDEr", ids) == {"clip_a": 0.5, "clip_b": 0.2}
    assert per_clip_criterion(scores, "noun_precision", ids) == {"clip_a": 1.0, "clip_b": 0.0}  # no nouns: 0
