"""The audible-noun table: generator on a tiny real-format WordNet, and the committed table."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from data_prep import audible_nouns as gen
from fusion.encoders.labels import place_parts
from fusion.errors import DataError
from fusion.verifier.table import NounTable

FIXTURE = Path(__file__).parent / "fixtures" / "wordnet_tiny"
CAPTIONS = (
    "vid1\ta dog is barking at a man\nvid1\tthe puppy barks\nvid2\ta train is passing by\n"
    "vid2\tthe train goes by\nvid3\ta man sets the table\nvid3\ta goldfish swims\n"
    "vid4\tit rains on the sea\nvid4\ta rooster crows\n"
)


def _sources() -> gen.Sources:
    wnids = tuple(ln.split()[0] for ln in (FIXTURE / "categories_imagenet.txt").read_text().splitlines())
    places = tuple(place_parts(ln) for ln in (FIXTURE / "categories_places2.txt").read_text().split())
    audioset = (("Dog",), ("Train horn", "train whistle"), ("Chicken", "rooster"), ("Speech",))
    return gen.Sources(wnids, places, {"Dog bark": ("dog",), "Rooster": ("rooster",)}, audioset)


@pytest.fixture(scope="module")
def tiny_table() -> dict:
    with gen.open_wordnet(FIXTURE, man_page=FIXTURE / "absent.gz") as wn:
        words = "dog dogs puppy man men table train sea rain rooster goldfish barks the a".split()
        return gen.build_table(wn, words, _sources(), nouns_in_use={"train"})


def test_audible_nouns_and_rule(tiny_table: dict) -> None:
    nouns = tiny_table["nouns"]
    assert {"dog", "puppy", "man", "train", "sea", "rain", "rooster"} <= set(nouns)
    assert nouns["dog"]["why"] == "names ESC-10 Dog bark"
    assert nouns["man"]["why"] == "under person.n.01"
    assert nouns["train"]["why"] == "under train.n.01"
    # A table is no sound source; a goldfish is a fish (MUTE anchor); function words are no nouns.
    assert "table" in tiny_table["not_audible"] and "goldfish" in tiny_table["not_audible"]
    assert "the" not in nouns and "a" not in nouns and "barks" not in nouns


def test_links_through_hypernym_closure_meronyms_and_places(tiny_table: dict) -> None:
    nouns = tiny_table["nouns"]
    assert set(nouns["dog"]["links"]) == {"imagenet", "places2", "audioset"}
    assert nouns["dog"]["links"]["imagenet"] == [0]  # toy poodle: dog covers every breed
    assert nouns["train"]["links"]["imagenet"] == [1]  # steam locomotive, a member meronym's hyponym
    assert nouns["puppy"]["links"]["imagenet"] == []  # a puppy is a dog, not every dog is a puppy
    assert nouns["train"]["links"]["places2"] == [1, 2]  # railroad_track (gloss "railway"), train_station/platform
    assert nouns["sea"]["links"]["places2"] == [0]  # beach: "... the water of a sea or lake"
    assert nouns["dog"]["esc10"] == ["Dog bark"] and nouns["puppy"]["esc10"] == ["Dog bark"]
    assert nouns["rooster"]["esc10"] == ["Rooster"] and nouns["man"]["esc10"] == []


def test_forms_cover_plurals_and_irregulars(tiny_table: dict) -> None:
    nouns = tiny_table["nouns"]
    assert {"dog", "dogs"} <= set(nouns["dog"]["forms"])
    assert "men" in nouns["man"]["forms"]  # noun.exc
    assert "puppies" in nouns["puppy"]["forms"]


def test_audioset_links_by_name_word_and_wordnet(tiny_table: dict) -> None:
    nouns = tiny_table["nouns"]
    assert tiny_table["spaces"] == {"imagenet": 4, "places2": 4, "audioset": 4}
    assert nouns["dog"]["links"]["audioset"] == [0]  # the class's name is the noun
    assert nouns["train"]["links"]["audioset"] == [1]  # a word of "Train horn"
    assert nouns["rooster"]["links"]["audioset"] == [2]  # one of the class's names
    assert nouns["puppy"]["links"]["audioset"] == [] and nouns["man"]["links"]["audioset"] == []
    table = NounTable.from_dict(tiny_table)
    assert table.spaces["audioset"] == 4 and table.entries["dog"].links["audioset"] == (0,)


def test_format_1_tables_read_as_imagenet_and_places2_links() -> None:
    old = {"format": "fusion.audible_nouns/1", "num_objects": 6, "num_places": 3,
           "nouns": {"dog": {"forms": ["dog", "dogs"], "objects": [0, 1], "places": [2], "esc10": [], "why": "x"},
                     "man": {"forms": ["man"], "objects": [], "places": []}}, "not_audible": {"table": ["tables"]}}
    table = NounTable.from_dict(old, "old.json")
    assert table.spaces == {"imagenet": 6, "places2": 3}
    assert table.entries["dog"].links == {"imagenet": (0, 1), "places2": (2,)} and table.entries["man"].links == {}
    with pytest.raises(DataError, match=r"old.json: not an audible-noun table .* `python -m data_prep.audible_nouns`"):
        NounTable.from_dict({**old, "format": "fusion.audible_nouns/0"}, "old.json")
    with pytest.raises(DataError, match="links to imagenet class 7 outside"):
        NounTable.from_dict({**old, "nouns": {"dog": {"forms": ["dog"], "objects": [7]}}}, "old.json")


def test_cli_writes_a_loadable_table(tmp_path: Path) -> None:
    captions = tmp_path / "caps.txt"
    captions.write_text(CAPTIONS)
    audioset = tmp_path / "class_map.csv"
    audioset.write_text('index,mid,display_name\n1,/m/0bt9lr,Dog\n0,/m/09x0r,"Speech, talk"\n')
    out = tmp_path / "table.json"
    code = gen.main(["--wordnet", str(FIXTURE), "--captions", str(captions), "--min-count", "1",
                     "--imagenet", str(FIXTURE / "categories_imagenet.txt"),
                     "--places", str(FIXTURE / "categories_places2.txt"), "--no-benchmark", "--no-msrvtt",
                     "--audioset", str(audioset), "--out", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["format"] == gen.TABLE_FORMAT and data["spaces"] == {"imagenet": 4, "places2": 4, "audioset": 2}
    assert data["nouns"]["dog"]["links"]["audioset"] == [1]  # rows are read in index order
    table = NounTable.load(out)
    assert table.audible_noun("dogs") == "dog" and table.audible_noun("trains") == "train"
    assert table.audible_noun("table") is None and table.lemma("tables") == "table"


def test_cli_missing_wordnet_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    captions = tmp_path / "caps.txt"
    captions.write_text(CAPTIONS)
    code = gen.main(["--wordnet", str(tmp_path), "--captions", str(captions), "--no-msrvtt", "--no-audioset",
                     "--out", str(tmp_path / "t.json")])
    err = capsys.readouterr().err
    assert code == 2 and "wordnet-base" in err and len(err.strip().splitlines()) == 1


def test_bad_vocab_json_is_a_data_error(tmp_path: Path) -> None:
    bad = tmp_path / "vocab.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=r"vocab.json: invalid JSON .* fix --vocab"):
        gen.read_vocab_file(bad)


def test_lexnames_from_man_page_matches_real_format(tmp_path: Path) -> None:
    rows = (FIXTURE / "lexnames").read_text().splitlines()
    page = ".TS\n" + "".join(f"{r.split()[0]}\t{r.split()[1]}\tsome contents  \n" for r in rows) + ".TE\n"
    man = tmp_path / "lexnames.5WN.gz"
    man.write_bytes(gzip.compress(page.encode()))
    assert gen.lexnames_from_man_page(man) == (FIXTURE / "lexnames").read_text()
    man.write_bytes(gzip.compress(b"nothing here\n"))
    with pytest.raises(DataError, match="45 lexicographer files"):
        gen.lexnames_from_man_page(man)


def test_committed_table_matches_soundnet_and_benchmark() -> None:
    from fusion.benchmark import SOUND_SOURCES
    from fusion.encoders.labels import imagenet_labels

    table = NounTable.load()
    assert table.spaces == {"imagenet": 1000, "places2": 401, "audioset": 521}
    poodle = next(i for i, lab in enumerate(imagenet_labels()) if lab.name == "toy poodle")
    assert poodle in table.entries["dog"].links["imagenet"]
    assert table.entries["dog"].links["audioset"]  # AudioSet's "Dog"
    for cls, source in SOUND_SOURCES.items():  # every benchmark sound noun is audible and names its class
        for word in source.synonyms:
            noun = table.audible_noun(word)
            assert noun is not None, word
            assert cls in table.entries[noun].esc10, (word, cls)
    for shape_word in ("circle", "square", "triangle", "box"):
        assert table.audible_noun(shape_word) is None


def test_default_sources_are_soundnets_labels() -> None:
    from fusion.encoders.labels import imagenet_labels, places_labels

    sources, words = gen.load_sources()
    assert sources.imagenet_wnids == tuple(label.wnid for label in imagenet_labels())
    assert tuple("_".join(p) for p in sources.places) == places_labels()
    assert ("train_station", "platform") in sources.places and "dog" in words


def test_package_runs_as_module(tmp_path: Path) -> None:
    import subprocess
    import sys

    captions = tmp_path / "caps.txt"
    captions.write_text(CAPTIONS)
    out = tmp_path / "table.json"
    proc = subprocess.run([sys.executable, "-m", "data_prep.audible_nouns", "--wordnet", str(FIXTURE), "--captions",
                           str(captions), "--min-count", "1", "--imagenet", str(FIXTURE / "categories_imagenet.txt"),
                           "--places", str(FIXTURE / "categories_places2.txt"), "--no-benchmark", "--no-msrvtt",
                           "--no-audioset", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert NounTable.load(out).audible_noun("trains") == "train"


def test_committed_table_covers_real_caption_sound_words() -> None:
    """Misses found on MSR-VTT captions (scripts/audible_coverage.py) and their fixes."""
    table = NounTable.load()
    for word in ("narrator", "announcer", "commentator", "voice", "laughter", "applause", "cheering", "concert",
                 "music", "crowd", "engine", "waterfall", "sax", "barber"):
        assert table.audible_noun(word) is not None, word
    # Proper names, and nouns whose caption sense is not WordNet's first, are not sound sources.
    for word in ("disney", "clinton", "george", "stroller", "bat", "monitor", "suite", "twitter"):
        assert table.audible_noun(word) is None, word
    assert table.lemma("stroller") == "stroller"  # still a known noun (its plural maps), only not audible
