"""Tokenizer (S2VT release conventions) and vocabulary round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusion.errors import DataError
from fusion.text import BOS, EOS, PAD, UNK, Vocabulary, normalize, tokenize


@pytest.mark.parametrize(
    ("raw", "release"),
    [
        ("A squirrel is eating a peanut in it's shell.", "a squirrel is eating a peanut in it s shell"),
        ("A man's playing the GUITAR!!", "a man s playing the guitar"),
        ("Someone slices a t-shirt, then\tsmiles...", "someone slices a t shirt then smiles"),
        ("  two   spaces  ", "two spaces"),
        ("3 dogs run (fast)", "3 dogs run fast"),
        ("snake_case", "snake case"),
    ],
)
def test_tokenize_matches_s2vt_release(raw: str, release: str) -> None:
    assert normalize(raw) == release
    assert tokenize(raw) == release.split()
    assert normalize(release) == release  # release sentences are fixed points


@pytest.mark.real_data
def test_release_sentences_are_fixed_points(data_dir: Path) -> None:
    path = data_dir / "msvd" / "captions" / "sents_val_lc_nopunc.txt"
    sentences = [line.split("\t", 1)[1] for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(sentences) == 4290
    changed = [s for s in sentences if normalize(s) != s.strip()]
    assert changed == []


def test_vocabulary_specials_order_and_min_count() -> None:
    vocab = Vocabulary.build(["a dog runs", "a dog barks", "A cat!"], min_count=2)
    assert vocab.words[:4] == (PAD, BOS, EOS, UNK)
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    assert vocab.words[4:] == ("a", "dog")  # "a" (3) before "dog" (2); singletons dropped
    assert vocab.index("cat") == vocab.unk_id
    full = Vocabulary.build(["b a", "a c"])
    assert full.words[4:] == ("a", "b", "c")  # ties broken alphabetically
    with pytest.raises(DataError):
        Vocabulary.build(["a"], min_count=0)


def test_encode_decode() -> None:
    vocab = Vocabulary.build(["a dog runs fast"])
    ids = vocab.encode("A dog runs slowly.")
    assert ids[0] == vocab.bos_id and ids[-1] == vocab.eos_id
    assert ids[1:-1] == [vocab.index("a"), vocab.index("dog"), vocab.index("runs"), vocab.unk_id]
    assert vocab.encode(["dog"], bos=False, eos=False) == [vocab.index("dog")]
    assert vocab.decode(ids) == "a dog runs <unk>"
    # decode skips pad/bos and stops at the first eos
    assert vocab.decode([1, vocab.index("dog"), 0, vocab.index("runs"), 2, vocab.index("a")]) == "dog runs"
    with pytest.raises(DataError, match="outside the vocabulary"):
        vocab.word(len(vocab))


def test_round_trip_exactly(tmp_path: Path) -> None:
    vocab = Vocabulary.build(["the cat sat on the mat", "zebra", "the end"], min_count=1)
    again = Vocabulary.from_dict(vocab.to_dict())
    assert again == vocab and again.words == vocab.words and again.min_count == 1
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocabulary.load(tmp_path / "vocab.json")
    assert loaded == vocab
    assert [loaded.index(w) for w in vocab.words] == list(range(len(vocab)))


def test_bad_vocabulary_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        Vocabulary.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        Vocabulary.load(tmp_path / "bad.json")
    with pytest.raises(DataError, match="must start with"):
        Vocabulary.from_dict({"words": ["a", "b"]})
    with pytest.raises(DataError, match="repeats"):
        Vocabulary.from_dict({"words": [PAD, BOS, EOS, UNK, "a", "a"]})
