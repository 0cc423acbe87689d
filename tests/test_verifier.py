"""The audio-noun verifier, its "audio" scorer, re-ranker, explanation and learned classifier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fusion.decoding.audio_scorer import RERANK_KEY, AudioScorer, caption_audio_score, rerank
from fusion.decoding.beam_search import beam_search
from fusion.decoding.scorer import DecodeContext
from fusion.errors import CheckpointError, ConfigError
from fusion.features import ExtractConfig, FeatureRecord, FeatureStore
from fusion.manifest import ManifestEntry
from fusion.verifier import (AudioNounVerifier, NounEntry, NounTable, explain, fit_classifier, format_explanation,
                             train_verifier)
from tests.builders import BigramScorer

WORDS = ["<pad>", "<bos>", "<eos>", "<unk>", "a", "dog", "dogs", "man", "barks", "table", "clock", "ticks"]
DOG, DOGS, MAN, CLOCK = 5, 6, 7, 10


@pytest.fixture()
def table() -> NounTable:
    entries = [NounEntry("dog", ("dog", "dogs"), links={"imagenet": (0, 1), "places2": (0,)}, esc10=("Dog bark",)),
               NounEntry("man", ("man", "men"), links={"imagenet": (2,)}),
               NounEntry("clock", ("clock", "clocks"), links={"imagenet": (3,)}, esc10=("Clock tick",))]
    return NounTable(entries, {"table": ["tables"]}, spaces={"imagenet": 6, "places2": 3})


def _search(scorers: dict, weights: dict, evidence: list, beam: int = 3) -> list:
    ctx = DecodeContext(batch_size=len(evidence), beam_size=beam)
    bound = {n: s.with_evidence(evidence) if isinstance(s, AudioScorer) else s for n, s in scorers.items()}
    return beam_search(bound, weights, ctx, bos_id=1, eos_id=2, max_len=6, nbest=beam,
                       decode_words=lambda ids: " ".join(WORDS[i] for i in ids))


def test_scorer_adds_exactly_the_evidence_at_noun_ids(table: NounTable) -> None:
    scorer = AudioScorer(WORDS, AudioNounVerifier(table))
    evidence = [{"dog": 1.5, "man": -2.0}, None]
    state = scorer.with_evidence(evidence).init_state(DecodeContext(batch_size=2, beam_size=3))
    expected = torch.zeros(len(WORDS))
    expected[[DOG, DOGS]] = 1.5
    expected[MAN] = -2.0
    scores, _ = scorer.score(torch.ones(6, 1, dtype=torch.long), state)
    assert scores.shape == (6, len(WORDS))
    assert torch.equal(scores[:3], expected.expand(3, -1))  # video 0's beams
    assert torch.equal(scores[3:], torch.zeros(3, len(WORDS)))  # video 1 has no audio
    picked = scorer.select_state(state, torch.tensor([3, 0, 0, 4, 5, 1]))
    assert torch.equal(picked.bonus, state.bonus[[3, 0, 0, 4, 5, 1]])


def test_supported_source_is_rewarded_once_contradicted_every_time(table: NounTable) -> None:
    scorer = AudioScorer(WORDS, AudioNounVerifier(table))
    state = scorer.with_evidence([{"dog": 1.5, "man": -2.0}]).init_state(DecodeContext(batch_size=1, beam_size=1))
    tokens = torch.tensor([[1]])
    for word in (DOG, MAN, 4):  # <bos> dog man a ...
        scores, state = scorer.score(tokens, state)
        tokens = torch.cat([tokens, torch.tensor([[word]])], dim=1)
    scores, state = scorer.score(tokens, state)
    assert scores[0, DOG] == scores[0, DOGS] == 0.0  # the dog was already named: no second reward
    assert scores[0, MAN] == -2.0  # a contradicted noun costs at every mention
    assert caption_audio_score("a dog and dogs and a man man", {"dog": 1.5, "man": -2.0}, table) == 1.5 - 4.0


def test_beam_search_adds_weight_times_evidence(table: NounTable) -> None:
    scorer = AudioScorer(WORDS, AudioNounVerifier(table))
    evidence = [{"dog": 2.0, "man": -1.0, "clock": 0.5}]
    beta = 0.7
    hyps = _search({"caption": BigramScorer(len(WORDS)), "audio": scorer}, {"caption": 1.0, "audio": beta}, evidence)
    for hyp in hyps[0]:
        audio, named = 0.0, set()
        for t in hyp.tokens:  # positive evidence once per noun, negative at every mention
            noun = table.audible_noun(WORDS[t])
            value = evidence[0].get(noun or "", 0.0)
            audio += value if value <= 0 or noun not in named else 0.0
            named.add(noun)
        assert hyp.scores["audio"] == pytest.approx(audio)
        assert hyp.total == pytest.approx(hyp.scores["caption"] + beta * audio)


def test_weight_zero_and_absent_audio_equal_off(table: NounTable) -> None:
    caption = BigramScorer(len(WORDS), seed=3)
    scorer = AudioScorer(WORDS, AudioNounVerifier(table))
    off = _search({"caption": caption}, {"caption": 1.0}, [{"dog": 3.0}, None])
    zero = _search({"caption": caption, "audio": scorer}, {"caption": 1.0, "audio": 0.0}, [{"dog": 3.0}, None])
    absent = _search({"caption": caption, "audio": scorer}, {"caption": 1.0, "audio": 2.0}, [None, None])
    for a, b, c in zip(off, zero, absent):
        assert [h.tokens for h in a] == [h.tokens for h in b] == [h.tokens for h in c]
        assert [h.total for h in a] == [h.total for h in b] == [h.total for h in c]
        assert all(h.scores.get("audio", 0.0) == 0.0 for h in c)


def test_evidence_steers_the_noun(table: NounTable) -> None:
    caption = BigramScorer(len(WORDS), seed=1)
    caption.table[:] = -10.0
    caption.table[1, 4] = 0.0  # <bos> -> a
    caption.table[4, MAN], caption.table[4, DOG] = -0.5, -1.0  # the model prefers "a man"
    caption.table[MAN, 2] = caption.table[DOG, 2] = 0.0  # -> <eos>
    scorer = AudioScorer(WORDS, AudioNounVerifier(table))
    plain = _search({"caption": caption, "audio": scorer}, {"caption": 1.0, "audio": 1.0}, [None])
    heard = _search({"caption": caption, "audio": scorer}, {"caption": 1.0, "audio": 1.0}, [{"dog": 1.0, "man": -1.0}])
    assert plain[0][0].words == "a man" and heard[0][0].words == "a dog"


def test_scorer_rejects_wrong_batch(table: NounTable) -> None:
    scorer = AudioScorer(WORDS, AudioNounVerifier(table))
    with pytest.raises(ConfigError, match="one per video"):
        scorer.with_evidence([None]).init_state(DecodeContext(batch_size=2, beam_size=1))


def test_rerank_and_explain(table: NounTable) -> None:
    caption = BigramScorer(len(WORDS), seed=5)
    hyps = _search({"caption": caption}, {"caption": 1.0}, [None], beam=4)[0]
    assert rerank(hyps, None, 5.0) == hyps and rerank(hyps, {"dog": 3.0}, 0.0) == hyps
    evidence = {"dog": 3.0, "man": -3.0, "clock": 0.0}
    ranked = rerank(hyps, evidence, 2.0, table)
    for h in ranked:
        assert h.scores[RERANK_KEY] == pytest.approx(caption_audio_score(h.words, evidence, table))
        assert h.weights[RERANK_KEY] == 2.0
    assert [h.score for h in ranked] == sorted((h.score for h in ranked), reverse=True)
    report = explain([*ranked], evidence, table)
    assert report["audio"] == "present" and report["caption"] == ranked[0].words
    assert len(report["runners_up"]) == len(ranked) - 1
    assert all(n["evidence"] == evidence[n["noun"]] for n in report["nouns"])
    text = format_explanation(explain(ranked, None, table))
    assert "absent" in text and ranked[0].words in text


def _record(vid: str, audio: np.ndarray | None, objects: np.ndarray | None = None) -> FeatureRecord:
    places = None if audio is None else np.full(3, 1 / 3, np.float32)
    if audio is not None and objects is None:
        objects = np.full(6, 1 / 6, np.float32)
    posteriors = {} if audio is None else {"audio/imagenet": objects, "audio/places2": places}
    return FeatureRecord(id=vid, frames=np.zeros((2, 4), np.float32), audio=audio, posteriors=posteriors)


def test_absent_audio_has_no_evidence_and_silence_is_present(table: NounTable) -> None:
    verifier = AudioNounVerifier(table)
    assert verifier.evidence(_record("v", None)) is None
    silent = verifier.evidence(_record("s", np.zeros((5, 8), np.float32)))
    assert silent is not None and set(silent) == {"dog", "man", "clock"}
    barking = verifier.evidence(_record("d", np.ones((5, 8), np.float32),
                                        objects=np.array([0.45, 0.45, 0.02, 0.02, 0.03, 0.03], np.float32)))
    assert barking["dog"] > 0 > barking["clock"]  # zero-shot: mass on the dog classes
    assert all(abs(v) <= verifier.clip for v in barking.values())


def _synthetic(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Separable pooled features (n, 16) and labels (n, 2): noun k shifts feature k."""
    labels = rng.random((n, 2)) < np.array([0.3, 0.15])
    x = rng.normal(size=(n, 16)).astype(np.float32)
    x[:, :2] += 3.0 * labels
    return x, labels


def test_classifier_is_calibrated_on_separable_features() -> None:
    rng = np.random.default_rng(0)
    (x, y), (xv, yv), (xt, yt) = _synthetic(400, rng), _synthetic(300, rng), _synthetic(2000, rng)
    clf = fit_classifier(x, y, xv, yv, ["dog", "clock"], min_positives=3)
    assert clf.nouns == ["dog", "clock"]
    prob = 1 / (1 + np.exp(-clf.calibrated_logits(xt)))  # (2000, 2)
    ev = clf.evidence(xt)
    for k in range(2):
        assert abs(prob[:, k].mean() - yt[:, k].mean()) < 0.03  # calibrated base rate
        bins = np.digitize(prob[:, k], np.linspace(0, 1, 11)[1:-1])
        ece = sum(abs(prob[bins == b, k].mean() - yt[bins == b, k].mean()) * (bins == b).mean()
                  for b in range(10) if (bins == b).any())
        assert ece < 0.05
        assert ev[yt[:, k], k].mean() > 2.0 and ev[~yt[:, k], k].mean() < -1.0


def test_train_save_load_roundtrip(table: NounTable, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    store = FeatureStore(tmp_path / "feats", ExtractConfig(random_weights=True))
    entries = []
    for i in range(60):
        kind = ["dog", "clock", "silent"][i % 3]
        split = "train" if i < 40 else "val"
        audio = rng.normal(size=(4, 8)).astype(np.float32)
        audio[:, 0 if kind == "dog" else 1] += 3.0 if kind != "silent" else 0.0
        store.write(_record(f"v{i}", audio))
        caps = {"dog": ["a dog barks", "dogs bark"], "clock": ["a clock ticks", "the clock ticks"],
                "silent": ["a table", "a red table"]}[kind]
        entries.append(ManifestEntry(id=f"v{i}", video=f"/x/v{i}.mp4", split=split, captions=caps))
    store.write(_record("mute", None))
    entries.append(ManifestEntry(id="mute", video="/x/mute.mp4", split="train", captions=["a dog barks"]))
    verifier, report = train_verifier(entries, store, table)
    assert report["nouns"] == ["clock", "dog"] and report["skipped_without_audio"] == 1
    assert report["val"]["dog"]["auc"] > 0.95 and report["val"]["clock"]["auc"] > 0.95
    path = tmp_path / "verifier.safetensors"
    verifier.save(path)
    loaded = AudioNounVerifier.load(path)
    for vid in ("v40", "v41", "v42"):
        assert loaded.evidence(store[vid]) == pytest.approx(verifier.evidence(store[vid]))
    dog_clip, clock_clip = loaded.evidence(store["v42"]), loaded.evidence(store["v43"])
    assert dog_clip["dog"] > 1.0 > -1.0 > dog_clip["clock"] and clock_clip["clock"] > 1.0
    assert loaded.evidence(store["mute"]) is None
    with pytest.raises(CheckpointError, match="not found"):
        AudioNounVerifier.load(tmp_path / "missing.safetensors")


@pytest.mark.real_data
@pytest.mark.real_weights
def test_zero_shot_evidence_hears_the_real_train(data_dir: Path) -> None:
    """SoundNet on the real railroad recording: the committed table makes 'train' the best-supported noun."""
    from fusion.features import FeatureExtractor

    record = FeatureExtractor(ExtractConfig()).extract(data_dir / "soundnet" / "railroad_audio.wav")
    evidence = AudioNounVerifier().evidence(record)
    assert evidence is not None
    assert max(evidence, key=evidence.get) == "train" and evidence["train"] > 1.0
    assert evidence["dog"] < 0 and evidence["baby"] < 0  # contradicted nouns are penalised


def _fitted(table: NounTable, tmp_path: Path) -> tuple[AudioNounVerifier, FeatureStore]:
    """A verifier trained on 'dog' (feature 0 up) and 'clock' (feature 1 up) clips, with their store."""
    rng = np.random.default_rng(2)
    store = FeatureStore(tmp_path / "feats", ExtractConfig(random_weights=True))
    entries = []
    for i in range(90):
        kind = ["dog", "clock", "silent"][i % 3]
        audio = rng.normal(size=(4, 8)).astype(np.float32)
        audio[:, 0 if kind == "dog" else 1] += 3.0 if kind != "silent" else 0.0
        store.write(_record(f"v{i}", audio))
        caps = {"dog": ["a dog barks"], "clock": ["a clock ticks"], "silent": ["a table"]}[kind]
        entries.append(ManifestEntry(id=f"v{i}", video=f"/x/v{i}.mp4", split="train" if i < 60 else "val", captions=caps))
    verifier, report = train_verifier(entries, store, table)
    assert report["ood_threshold"]["calibrated_on"] == "val" and verifier.ood_threshold == report["ood_threshold"]["value"]
    return verifier, store


def test_verifier_abstains_out_of_distribution_and_says_why(table: NounTable, tmp_path: Path) -> None:
    verifier, store = _fitted(table, tmp_path)
    val = [verifier.evidence(store[f"v{i}"]) for i in range(60, 90)]
    assert sum(bool(e.reason) for e in val) == 0  # calibrated: the validation clips pass
    assert val[0]["dog"] > 1.0 and not val[0].unsure  # a dog clip: supported, no abstention
    odd = np.full((4, 8), 40.0, np.float32)  # a sound far from every training clip
    evidence = verifier.evidence(_record("odd", odd))
    assert evidence.out_of_distribution and evidence.reason and set(evidence.unsure) == set(evidence)
    assert all(abs(v) <= verifier.abstain_cap for v in evidence.values())
    report = explain([_hyp("a dog barks")], evidence, table)
    assert report["nouns"][0]["verdict"] == "unsure" and report["verifier"]["out_of_distribution"]
    text = format_explanation(report)
    assert "verifier: unsure - the sound is unlike the verifier's training clips" in text and "supported" not in text
    path = tmp_path / "v.safetensors"
    verifier.save(path)
    assert AudioNounVerifier.load(path).ood_threshold == verifier.ood_threshold


def test_verifier_abstains_on_unfamiliar_clips_and_disagreement(table: NounTable, tmp_path: Path) -> None:
    verifier, store = _fitted(table, tmp_path)
    dog = store["v60"]
    dog.meta["ood"] = {"flagged": True, "unfamiliar": ["frames"], "ratio": {"frames": 1.2}}  # just past the threshold
    assert verifier.evidence(dog).reason is None
    dog.meta["ood"]["ratio"]["frames"] = 20.0  # the run's profile: far unlike its training data
    unfamiliar = verifier.evidence(dog)
    assert "captioner's training data (frames)" in unfamiliar.reason and abs(unfamiliar["dog"]) <= verifier.abstain_cap
    dog.meta.pop("ood")
    # SoundNet's posteriors put no mass on the dog classes: zero-shot strongly against the learned 'dog'.
    no_dog = np.array([1e-6, 1e-6, 0.5, 0.5, 0.0, 0.0], np.float32)
    disagree = verifier.evidence(_record("d", store["v60"].audio, objects=no_dog))
    assert disagree.reason is None and "dog" in disagree.unsure and "SoundNet" in disagree.unsure["dog"]
    assert abs(disagree["dog"]) <= verifier.abstain_cap
    item = explain([_hyp("a dog barks")], disagree, table)["nouns"][0]
    assert item["verdict"] == "unsure" and "SoundNet" in item["why"]


def test_no_audio_stream_names_no_sound_with_confidence(table: NounTable) -> None:
    report = explain([_hyp("a dog barks")], None, table)
    assert report["nouns"][0]["verdict"].startswith("not heard")
    assert "supported" not in format_explanation(report)


def _hyp(words: str) -> Any:
    from fusion.decoding.hypothesis import Hypothesis

    return Hypothesis(tokens=[WORDS.index(w) for w in words.split()], words=words, score=-1.0)
