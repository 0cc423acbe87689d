"""The Kneser-Ney baseline of scripts/lm_vs_kneser_ney.py: nltk's numbers, same events as the LSTM."""

from __future__ import annotations

import json
import math

import pytest
from nltk.lm.smoothing import KneserNey

from fusion.models.lm import LMConfig
from fusion.training.lm import evaluate_lm, train_lm
from fusion.text import Vocabulary
from scripts.lm_vs_kneser_ney import fit_kn3, kn_perplexity, map_unk, sentence_events

TRAIN = ["a man is playing a guitar", "a man is playing a piano", "a woman is slicing an onion",
         "a dog is running", "a man is slicing a tomato", "a cat is playing", "a rare word appears once"]
TEST = ["a man is slicing an onion", "a zebra is playing a guitar"]


def test_tabulated_estimator_equals_nltk() -> None:
    vocab = Vocabulary.build(TRAIN, min_count=2)
    model = fit_kn3(map_unk(TRAIN, vocab), discount=0.75)
    fast = model.estimator
    slow = KneserNey(model.vocab, model.counts, order=3, discount=0.75)
    events = [e for s in map_unk(TEST + TRAIN, vocab) for e in sentence_events(s)]
    assert events[0] == ("a", ("<s>", "<s>"))
    for word, context in events:
        model.estimator = fast
        a = model.score(word, context)
        model.estimator = slow
        b = model.score(word, context)
        assert a == pytest.approx(b, abs=1e-12) and a > 0


def test_same_events_for_both_models() -> None:
    vocab = Vocabulary.build(TRAIN, min_count=2)
    test_words = map_unk(TEST, vocab)
    assert test_words[1][1] == "<unk>"  # zebra
    ppl, tokens = kn_perplexity(fit_kn3(map_unk(TRAIN, vocab), 0.75), test_words)
    lm = train_lm(TRAIN, LMConfig(embed_size=8, hidden_size=8, max_epochs=1, val_fraction=0.0), vocab=vocab, progress=False)
    result = evaluate_lm(lm, TEST)
    assert tokens == result.tokens == sum(len(s.split()) + 1 for s in TEST)
    assert math.isfinite(ppl) and ppl > 1


@pytest.mark.real_data
@pytest.mark.slow
def test_script_on_msvd_slice(data_dir, tmp_path, monkeypatch) -> None:
    """The whole script on MSVD with a 1-epoch tiny LSTM: writes results.json with both numbers."""
    from scripts import lm_vs_kneser_ney as script

    monkeypatch.setattr(script, "read_corpus", lambda path, _real=script.read_corpus: _real(path)[:3000])
    code = script.main(["--out", str(tmp_path), "--discounts", "0.75", "--set", "max_epochs=1",
                        "--set", "hidden_size=32", "--set", "embed_size=32"])
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["test_tokens"] > 10000 and results["kn3_tabulation_max_abs_error"] < 1e-12
    assert 1 < results["kn3_perplexity"] < 200 and 1 < results["lstm_perplexity"] < 1000
