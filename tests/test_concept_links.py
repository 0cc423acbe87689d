"""data_prep.concept_links (on the tiny WordNet fixture) and fusion.concepts (the committed table, evidence)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_prep.audible_nouns.wordnet import open_wordnet
from data_prep.concept_links.builder import LabelSpaces, build_links, implied_verbs
from fusion.concepts import AUDIO_SOURCES, VISUAL_SOURCES, ConceptEvidence, ConceptLinks, default_links
from fusion.encoders.labels import place_parts
from fusion.features import FeatureRecord

FIXTURE = Path(__file__).parent / "fixtures" / "wordnet_tiny"
AUDIOSET = ("Dog", "Bark", "Train horn", "Male speech, man speaking", "Rain")


@pytest.fixture(scope="module")
def tiny_links() -> dict:
    wnids = tuple(ln.split()[0] for ln in (FIXTURE / "categories_imagenet.txt").read_text().splitlines())
    places = tuple(place_parts(ln) for ln in (FIXTURE / "categories_places2.txt").read_text().split())
    sentences = [s.split() for s in ["a dog is barking"] * 25 + ["a man is running on the train"] * 25
                 + ["the rain falls on the sea"] * 10 + ["a dog runs"] * 5]
    sources = {"imagenet": "i", "places2": "p", "audioset": "a"}
    with open_wordnet(FIXTURE, man_page=FIXTURE / "absent.gz") as wn:
        return build_links(wn, sentences, LabelSpaces(wnids, places, AUDIOSET), sources, min_count=5)


def test_nouns_link_through_wordnet_and_names(tiny_links: dict) -> None:
    words = tiny_links["words"]
    assert words["dog"]["links"]["imagenet"] == [0]  # toy poodle lies under dog
    assert words["dog"]["links"]["audioset"] == [0]  # "Dog" names it
    assert words["dog"]["forms"] == ["dog"] and words["dog"]["count"] == 30
    assert 3 in words["man"]["links"]["audioset"]  # "man speaking"
    assert "imagenet" not in words["train"]  # a locomotive is part of a train, not a kind of one
    assert 2 in words["train"]["links"]["places2"] and words["train"]["links"]["audioset"] == [2]  # station; horn
    assert "the" not in words and "a" not in words


def test_verbs_implied_through_the_corpus() -> None:
    sentences = [s.split() for s in ["a dog is barking"] * 25 + ["a man is running"] * 25 + ["rain"] * 60
                 + ["a dog is running"] * 5]
    nouns, verbs = {"dog": "dog", "man": "man"}, {"barking": "bark", "running": "run"}
    implied = implied_verbs(sentences, nouns, verbs, linked={"dog", "man"})
    # dog + barking: 25 of 115 captions, PMI log(115 * 25 / (30 * 25)) = 1.34 >= log 3; dog + running (5) is too rare
    assert implied["barking"] == [("dog", 1.344)]
    assert implied["running"] == [("man", 1.344)]  # log(115 * 25 / (25 * 30))
    assert implied_verbs(sentences, nouns, verbs, linked={"man"}).get("barking") is None  # only linked nouns lend


def test_committed_table_is_consistent() -> None:
    links = default_links()
    sizes = {s: len(names) for s, names in links.spaces.items()}
    assert sizes == {"imagenet": 1000, "places2": 401, "audioset": 521}
    for entry in links.entries.values():
        for space, ids in entry.links.items():
            assert ids and all(0 <= i < sizes[space] for i in ids)
    assert len(links.entries["dog"].links["imagenet"]) == 118  # every breed
    assert links.key_of("dogs") == "dog" and links.key_of("the") is None
    guitar = links.entries["guitar"].links
    assert "Guitar" in links.class_names("audioset", guitar["audioset"])
    assert links.class_names("imagenet", guitar["imagenet"]) == ["acoustic guitar", "electric guitar"]


def _record(frames: np.ndarray, audio: bool) -> FeatureRecord:
    posteriors = {"frames/imagenet": frames}
    if audio:
        posteriors.update({"audio/imagenet": np.full(1000, 1e-3, np.float32), "audio/places2": np.full(401, 1 / 401, np.float32)})
    return FeatureRecord(id="x", frames=np.zeros((2, 4), np.float32), audio=np.zeros((3, 2), np.float32) if audio else None,
                         posteriors=posteriors)


def test_evidence_supports_seen_words_and_is_none_without_audio() -> None:
    links = default_links()
    probs = np.full(1000, 0.1 / 998, np.float32)
    guitars = list(links.entries["guitar"].links["imagenet"])
    probs[guitars] = 0.45
    visual = ConceptEvidence(links, VISUAL_SOURCES)
    ev = visual.evidence(_record(probs, audio=False))
    assert ev is not None and ev["guitar"] > 2.5 and ev["dog"] < 0  # seen guitars; no dog
    assert visual.top_classes(_record(probs, audio=False), "guitar")[0][0] == "frames/imagenet"
    audio = ConceptEvidence(links, AUDIO_SOURCES)
    assert audio.evidence(_record(probs, audio=False)) is None  # no audio stream: no evidence at all
    heard = audio.evidence(_record(probs, audio=True))
    assert heard is not None and abs(heard["dog"]) < 1e-3  # uniform posteriors say nothing


def test_bad_table_file_is_one_clear_error(tmp_path: Path) -> None:
    from fusion.errors import DataError

    (tmp_path / "t.json").write_text('{"format": "other"}')
    with pytest.raises(DataError, match="data_prep.concept_links"):
        ConceptLinks.load(tmp_path / "t.json")
