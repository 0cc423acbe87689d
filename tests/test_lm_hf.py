"""The Hugging Face causal-LM adapter on a tiny random GPT-2 with an offline BPE tokenizer."""

from __future__ import annotations

import pytest
import torch

from fusion.decoding.lm_scorer import LMScorer, lm_fusion, load_language_model
from fusion.decoding.scorer import DecodeContext
from fusion.models.bound_lm import LOG_ZERO
from fusion.models.hf_lm import HFWordLM
from tests.builders import HF_CAP_VOCAB as CAP_VOCAB, HF_TEXT as TEXT, bpe_tokenizer

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

@pytest.fixture(scope="module")
def hf_lm() -> HFWordLM:
    torch.manual_seed(0)
    tokenizer = bpe_tokenizer()
    config = transformers.GPT2Config(vocab_size=len(tokenizer), n_layer=1, n_embd=16, n_head=2, n_positions=64,
                                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = transformers.GPT2LMHeadModel(config).eval()
    return HFWordLM(model=model, tokenizer=tokenizer, chunk_rows=40)  # several chunks per step: exercises chunking


def _direct_word_log_prob(lm: HFWordLM, prefix_words: list[str], word: str | None) -> float:
    """log p(word | prefix) from one forward pass over BOS + all subwords (None = EOS)."""
    ids = [lm.tokenizer.bos_token_id] + [t for w in prefix_words for t in lm.word_tokens(w)]
    target = lm.word_tokens(word) if word is not None else [lm.tokenizer.eos_token_id]
    full = torch.tensor([ids + target])
    with torch.no_grad():
        log_probs = torch.log_softmax(lm.model(input_ids=full).logits[0], dim=-1)  # (L, V_sub)
    return sum(float(log_probs[len(ids) - 1 + j, t]) for j, t in enumerate(target))


def test_multi_subword_words_sum_subword_log_probs(hf_lm: HFWordLM) -> None:
    lengths = {w: len(hf_lm.word_tokens(w)) for w in CAP_VOCAB.words[4:]}
    assert max(lengths.values()) >= 3 and min(lengths.values()) == 1  # both kinds present
    scorer = LMScorer(hf_lm, CAP_VOCAB)
    state = scorer.init_state(DecodeContext(batch_size=1, beam_size=2))
    rows = [["a", "cat", "is"], ["a", "woman", "slicing"]]
    tokens = torch.tensor([[CAP_VOCAB.bos_id]] * 2)
    scores, state = scorer.score(tokens, state)
    for t in range(3):
        tokens = torch.cat([tokens, torch.tensor([[CAP_VOCAB.index(r[t])] for r in rows])], dim=1)  # (2, t+2)
        scores, state = scorer.score(tokens, state)
    assert scores.shape == (2, len(CAP_VOCAB))
    for r, prefix in enumerate(rows):
        for word in ["eating", "tomato", "a", "guitar", "onion", "slicing"]:
            assert float(scores[r, CAP_VOCAB.index(word)]) == pytest.approx(_direct_word_log_prob(hf_lm, prefix, word), abs=1e-4)
        assert float(scores[r, CAP_VOCAB.eos_id]) == pytest.approx(_direct_word_log_prob(hf_lm, prefix, None), abs=1e-4)
        assert float(scores[r, CAP_VOCAB.pad_id]) == float(scores[r, CAP_VOCAB.bos_id]) == LOG_ZERO
        real = scores[r, 4:]
        assert float(scores[r, CAP_VOCAB.unk_id]) == pytest.approx(float(real.min()), abs=1e-6)


def test_select_state_and_fusion(hf_lm: HFWordLM) -> None:
    scorer = LMScorer(hf_lm, vocab=CAP_VOCAB)
    state = scorer.init_state(DecodeContext(batch_size=2, beam_size=1))
    _, state = scorer.score(torch.tensor([[1], [1]]), state)
    a, state = scorer.score(torch.tensor([[1, CAP_VOCAB.index("dog")], [1, CAP_VOCAB.index("man")]]), state)
    swapped = scorer.select_state(state, torch.tensor([1, 0]))
    b, _ = scorer.score(torch.tensor([[1, 4, 5], [1, 4, 5]]), swapped)
    c, _ = scorer.score(torch.tensor([[1, 4, 5], [1, 4, 5]]), state)
    assert torch.allclose(b[0], c[1]) and torch.allclose(b[1], c[0])
    scorers, weights = lm_fusion(object(), hf_lm, 0.4, vocab=CAP_VOCAB)
    assert isinstance(scorers["lm"], LMScorer) and weights["lm"] == 0.4


def test_load_from_local_folder(hf_lm: HFWordLM, tmp_path) -> None:
    hf_lm.model.save_pretrained(tmp_path / "gpt2tiny")
    hf_lm.tokenizer.save_pretrained(tmp_path / "gpt2tiny")
    loaded = load_language_model(tmp_path / "gpt2tiny")
    assert isinstance(loaded, HFWordLM)
    words = ["a", "man", "is"]
    assert _direct_word_log_prob(loaded, words, "playing") == pytest.approx(_direct_word_log_prob(hf_lm, words, "playing"), abs=1e-5)
