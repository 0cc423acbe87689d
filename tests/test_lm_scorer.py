"""The "lm" scorer: vocabulary mapping, log-linear fusion, linear interpolation."""

from __future__ import annotations

import math

import pytest
import torch

from fusion.decoding.beam_search import beam_search
from fusion.decoding.lm_scorer import (
    LinearInterpolationScorer,
    LMScorer,
    interpolation_correction,
    lm_fusion,
    load_language_model,
)
from fusion.decoding.scorer import DecodeContext
from fusion.errors import CheckpointError, ConfigError
from fusion.models.bound_lm import LOG_ZERO
from fusion.models.lm import LMConfig, LSTMLanguageModel, WordLM, vocab_map
from fusion.text import Vocabulary
from tests.builders import BigramScorer

LM_VOCAB = Vocabulary.build(["a man is playing a guitar", "a dog is running"])
CAP_VOCAB = Vocabulary.build(["a man is riding a horse", "a dog is playing"])


@pytest.fixture(scope="module")
def lm() -> WordLM:
    torch.manual_seed(0)
    cfg = LMConfig(embed_size=8, hidden_size=8, dropout=0.0)
    return WordLM(LSTMLanguageModel(len(LM_VOCAB), cfg, (0, 1)).eval(), LM_VOCAB, cfg)


def test_vocab_map() -> None:
    mapping = vocab_map(CAP_VOCAB, LM_VOCAB)
    assert mapping.shape == (len(CAP_VOCAB),)
    for i, word in enumerate(CAP_VOCAB.words):
        expected = LM_VOCAB.index(word)  # specials share ids 0-3; unknown -> <unk>
        assert int(mapping[i]) == expected
    assert int(mapping[CAP_VOCAB.index("horse")]) == LM_VOCAB.unk_id
    assert int(mapping[CAP_VOCAB.index("riding")]) == LM_VOCAB.unk_id
    assert int(mapping[CAP_VOCAB.index("dog")]) == LM_VOCAB.index("dog")


def test_lm_scorer_maps_vocabulary(lm: WordLM) -> None:
    scorer = LMScorer(lm, CAP_VOCAB)
    ctx = DecodeContext(batch_size=2, beam_size=1)
    state = scorer.init_state(ctx)
    prefix = ["a", "horse", "is"]  # "horse" is unknown to the LM: fed as <unk>
    tokens = torch.tensor([[CAP_VOCAB.bos_id]] * 2)
    for word in prefix:
        _, state = scorer.score(tokens, state)
        tokens = torch.cat([tokens, torch.full((2, 1), CAP_VOCAB.index(word))], dim=1)
    scores, _ = scorer.score(tokens, state)  # (2, V_cap)
    with torch.no_grad():
        direct, _, _ = lm.model(torch.tensor([LM_VOCAB.encode(["a", "<unk>", "is"], eos=False)]))
    expected = direct[0, -1]  # (V_lm,)
    for i, word in enumerate(CAP_VOCAB.words):
        if i in (CAP_VOCAB.pad_id, CAP_VOCAB.bos_id):
            assert float(scores[0, i]) == LOG_ZERO
        else:
            assert float(scores[0, i]) == pytest.approx(float(expected[LM_VOCAB.index(word)]), abs=1e-5)
    assert torch.equal(scores[0], scores[1])


def test_select_state_reorders(lm: WordLM) -> None:
    scorer = LMScorer(lm, vocab=CAP_VOCAB)
    state = scorer.init_state(DecodeContext(batch_size=2, beam_size=1))
    tokens = torch.tensor([[1, CAP_VOCAB.index("dog")], [1, CAP_VOCAB.index("man")]])
    _, state = scorer.score(tokens[:, :1], state)
    first, state = scorer.score(tokens, state)
    swapped = scorer.select_state(state, torch.tensor([1, 0]))
    nxt = torch.tensor([[1, 5, 6], [1, 5, 6]])
    a, _ = scorer.score(nxt, state)
    b, _ = scorer.score(nxt, swapped)
    assert torch.allclose(a[0], b[1]) and torch.allclose(a[1], b[0]) and not torch.allclose(a[0], a[1])


def test_interpolation_math_hand_made() -> None:
    p_cap = torch.tensor([[0.5, 0.3, 0.2]])
    p_lm = torch.tensor([[0.1, 0.6, 0.3]])
    for alpha in (0.0, 0.25, 0.5, 1.0):
        corr = interpolation_correction(p_cap.log(), p_lm.log(), alpha)
        mixture = alpha * p_lm + (1 - alpha) * p_cap
        assert torch.allclose(p_cap.log() + corr, mixture.log(), atol=1e-6)
    assert torch.equal(interpolation_correction(p_cap.log(), p_lm.log(), 0.0), torch.zeros(1, 3))
    # alpha 0.25, word 1: log(0.25 * 0.6 + 0.75 * 0.3) = log(0.375)
    assert float((p_cap.log() + interpolation_correction(p_cap.log(), p_lm.log(), 0.25))[0, 1]) == pytest.approx(math.log(0.375))
    with pytest.raises(ConfigError, match="in \\[0, 1\\]"):
        interpolation_correction(p_cap.log(), p_lm.log(), 1.5)


def test_linear_scorer_sums_to_mixture(lm: WordLM) -> None:
    caption = BigramScorer(len(CAP_VOCAB), seed=1)
    lm_scorer = LMScorer(lm, vocab=CAP_VOCAB)
    linear = LinearInterpolationScorer(caption, lm_scorer, 0.3)
    ctx = DecodeContext(batch_size=1, beam_size=2)
    state = linear.init_state(ctx)
    tokens = torch.tensor([[1], [1]])
    corr, state = linear.score(tokens, state)
    cap, _ = caption.score(tokens, None)
    lm_lp, _ = lm_scorer.score(tokens, lm_scorer.init_state(ctx))
    mixture = 0.3 * lm_lp.exp() + 0.7 * cap.exp()
    assert torch.allclose((cap + corr).exp(), mixture, atol=1e-6)
    # The LM's mass on words outside the caption vocabulary (and <unk> shared by several
    # caption words) means the mapped mixture need not sum to 1; the caption part does.
    assert torch.allclose(cap.exp().sum(-1), torch.ones(2), atol=1e-5)


def _decode(scorers, weights, vocab, beam=3):
    ctx = DecodeContext(batch_size=2, beam_size=beam)
    return beam_search(scorers, weights, ctx, bos_id=vocab.bos_id, eos_id=vocab.eos_id, max_len=6, nbest=2)


@pytest.mark.parametrize("mode", ["loglinear", "linear"])
def test_weight_zero_equals_no_lm(lm: WordLM, mode: str) -> None:
    caption = BigramScorer(len(CAP_VOCAB), seed=1)
    scorers, weights = lm_fusion(caption, lm, 0.0, mode, vocab=CAP_VOCAB)
    assert set(scorers) == {"caption"}
    base = _decode({"caption": caption}, {"caption": 1.0}, CAP_VOCAB)
    zero = _decode(scorers, weights, CAP_VOCAB)
    # an explicit "lm" scorer with weight 0 is removed by the search too
    explicit = _decode({"caption": caption, "lm": LMScorer(lm, CAP_VOCAB)}, {"caption": 1.0, "lm": 0.0}, CAP_VOCAB)
    for a, b, c in zip(base, zero, explicit):
        assert [h.tokens for h in a] == [h.tokens for h in b] == [h.tokens for h in c]
        assert [h.score for h in a] == pytest.approx([h.score for h in b])


def test_linear_alpha_zero_scorer_is_neutral(lm: WordLM) -> None:
    caption = BigramScorer(len(CAP_VOCAB), seed=1)
    base = _decode({"caption": caption}, {"caption": 1.0}, CAP_VOCAB)
    neutral = _decode({"caption": caption, "lm": LinearInterpolationScorer(caption, LMScorer(lm, CAP_VOCAB), 0.0)},
                      {"caption": 1.0, "lm": 1.0}, CAP_VOCAB)
    for a, b in zip(base, neutral):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert all(h.scores["lm"] == 0.0 for h in b)


@pytest.mark.parametrize("mode", ["loglinear", "linear"])
def test_fused_breakdown(lm: WordLM, mode: str) -> None:
    caption = BigramScorer(len(CAP_VOCAB), seed=1)
    scorers, weights = lm_fusion(caption, lm, 0.5, mode, vocab=CAP_VOCAB)
    assert weights == ({"caption": 1.0, "lm": 0.5} if mode == "loglinear" else {"caption": 1.0, "lm": 1.0})
    for hyps in _decode(scorers, weights, CAP_VOCAB):
        for h in hyps:
            assert set(h.scores) == {"caption", "lm"}
            assert sum(h.weighted_scores().values()) == pytest.approx(h.total)
            if mode == "linear":  # caption + correction = log of the mixture over the whole caption
                seq = [CAP_VOCAB.bos_id] + h.tokens + [CAP_VOCAB.eos_id]
                lm_state = LMScorer(lm, CAP_VOCAB)
                st = lm_state.init_state(DecodeContext(1, 1))
                expected = 0.0
                for t in range(1, len(seq)):
                    lm_lp, st = lm_state.score(torch.tensor([seq[:t]]), st)
                    cap_lp = caption.table[seq[t - 1]]
                    expected += math.log(0.5 * lm_lp[0, seq[t]].exp() + 0.5 * cap_lp[seq[t]].exp())
                assert h.total == pytest.approx(expected, abs=1e-4)


def test_lm_fusion_errors(lm: WordLM) -> None:
    with pytest.raises(ConfigError, match="mode"):
        lm_fusion(BigramScorer(5, seed=1), lm, 0.5, "deep")
    with pytest.raises(ConfigError, match=">= 0"):
        lm_fusion(BigramScorer(5, seed=1), lm, -1.0)
    with pytest.raises(ConfigError, match="caption vocabulary"):
        lm_fusion(BigramScorer(5, seed=1), lm, 0.5)  # a language model (not a scorer) needs the vocabulary to bind to


def test_load_language_model(lm: WordLM, tmp_path) -> None:
    lm.save(tmp_path / "lm")
    assert isinstance(load_language_model(tmp_path / "lm"), WordLM)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="neither"):
        load_language_model(tmp_path / "empty")
