"""The Hugging Face LM scorer's key/value cache gives the full-prefix scores, step by step and in a beam search.

A tiny GPT-2 with random weights is saved to a folder and loaded by path (no hub), once with
the cache and once re-running whole prefixes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fusion.decoding.beam_search import beam_search
from fusion.decoding.lm_scorer import LMScorer
from fusion.decoding.scorer import DecodeContext
from fusion.models.bound_lm import LOG_ZERO
from fusion.models.hf_lm import HFWordLM
from tests.builders import HF_CAP_VOCAB as CAP_VOCAB, bpe_tokenizer

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    tokenizer = bpe_tokenizer()
    config = transformers.GPT2Config(vocab_size=len(tokenizer), n_layer=2, n_embd=16, n_head=2, n_positions=128,
                                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    folder = tmp_path_factory.mktemp("gpt2tiny")
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _pair(folder: Path) -> tuple[HFWordLM, HFWordLM]:
    cached = HFWordLM.from_pretrained(str(folder), chunk_rows=40)  # several chunks per step
    full = HFWordLM.from_pretrained(str(folder), use_cache=False)
    assert cached.use_cache and not full.use_cache
    return cached, full


def test_cached_steps_equal_full_prefix_steps(gpt2_dir: Path) -> None:
    cached, full = (lm.bind(CAP_VOCAB) for lm in _pair(gpt2_dir))
    assert cached.multi and cached.single  # words of one and of several subwords
    words = ["a", "cat", "<unk>", "slicing", "tomato", "<eos>"]  # <unk> consumes no subword
    rows = 3
    state_c, state_f = cached.init_state(rows), full.init_state(rows)
    prev = torch.full((rows,), CAP_VOCAB.bos_id)
    for t in range(len(words)):
        got, state_c = cached.step(prev, state_c)
        want, state_f = full.step(prev, state_f)
        assert got.shape == want.shape == (rows, len(CAP_VOCAB))
        torch.testing.assert_close(got, want, atol=2e-5, rtol=0)
        assert float(got[0, CAP_VOCAB.pad_id]) == LOG_ZERO
        # rows differ: a shifted copy of the sentence, and the beam reorders them every step
        prev = torch.tensor([CAP_VOCAB.index(words[(t + r) % len(words)]) for r in range(rows)])
        order = torch.tensor([(r + t) % rows for r in range(rows)][::-1])
        state_c, state_f = cached.select_state(state_c, order), full.select_state(state_f, order)
        prev = prev[order]


def test_beam_search_same_captions_with_and_without_cache(gpt2_dir: Path) -> None:
    results = []
    for lm in _pair(gpt2_dir):
        ctx = DecodeContext(batch_size=2, beam_size=3)
        hyps = beam_search({"lm": LMScorer(lm, CAP_VOCAB)}, {"lm": 1.0}, ctx, bos_id=CAP_VOCAB.bos_id,
                           eos_id=CAP_VOCAB.eos_id, max_len=6, min_len=3, nbest=3)
        results.append(hyps)
    for video_c, video_f in zip(*results):
        assert [h.tokens for h in video_c] == [h.tokens for h in video_f]
        for h_c, h_f in zip(video_c, video_f):
            assert h_c.score == pytest.approx(h_f.score, abs=1e-4)
