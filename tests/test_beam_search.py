"""Beam search over weighted scorers: equivalences on toy scorers and a tiny random S2VT."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor

from fusion.decoding.beam_search import beam_search
from fusion.decoding.processors import (
    MaxLengthProcessor,
    MinLengthProcessor,
    NoRepeatNGramProcessor,
    NoUnkProcessor,
    SuppressTokensProcessor,
    caption_processors,
)
from fusion.decoding.scorer import DecodeContext, Scorer, bind_inputs
from fusion.decoding.scorers import CaptionScorer, LengthScorer
from fusion.decoding.spec import BatchInputs
from fusion.errors import ConfigError
from fusion.features import FeatureRecord
from tests.builders import MarkovScorer

BOS, EOS = 1, 2
V = 7


class FinalBonusScorer(MarkovScorer):
    """Adds ``bonus * number of words`` when a hypothesis ends."""

    def __init__(self, tables: Tensor, bonus: float) -> None:
        super().__init__(tables)
        self.bonus = bonus

    def final_score(self, tokens: Tensor, state: Tensor) -> Tensor:
        return torch.full((tokens.shape[0],), self.bonus) * (tokens.shape[1] - 2)


def random_tables(num_videos: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(num_videos, V, V, generator=g) * 2.0, dim=-1)


def search(scorers: dict[str, Scorer], weights: dict[str, float], videos: list[int], beam: int, **kw):
    kw.setdefault("max_len", 8)
    inputs = BatchInputs(records=[FeatureRecord(id=str(v), frames=None, audio=None) for v in videos])
    bound = {name: bind_inputs(scorer, inputs) for name, scorer in scorers.items()}
    return beam_search(bound, weights, DecodeContext(batch_size=len(videos), beam_size=beam), bos_id=BOS, eos_id=EOS,
                       **kw)


def test_batched_equals_one_video_at_a_time() -> None:
    scorers = {"caption": MarkovScorer(random_tables(6, 0)), "lm": MarkovScorer(random_tables(6, 1)),
               "length": LengthScorer(V)}
    weights = {"caption": 1.0, "lm": 0.3, "length": 0.2}
    batched = search(scorers, weights, list(range(6)), beam=3, nbest=3)
    for b in range(6):
        single = search(scorers, weights, [b], beam=3, nbest=3)[0]
        assert [h.tokens for h in batched[b]] == [h.tokens for h in single]
        for hb, hs in zip(batched[b], single):
            assert hb.score == pytest.approx(hs.score, abs=1e-9)
            assert hb.scores == pytest.approx(hs.scores, abs=1e-9)


def greedy(table: Tensor, max_len: int) -> list[int]:
    """Reference greedy decoding on one (V, V) table (no constraints)."""
    out, last = [], BOS
    for _ in range(max_len):
        last = int(table[last].argmax())
        if last == EOS:
            return out
        out.append(last)
    return out


def test_beam_one_equals_greedy() -> None:
    tables = random_tables(8, 2)
    hyps = search({"caption": MarkovScorer(tables)}, {"caption": 1.0}, list(range(8)), beam=1, min_len=0)
    for b in range(8):
        assert hyps[b][0].tokens == greedy(tables[b], 8)


def test_weight_zero_equals_scorer_absent() -> None:
    cap, lm = MarkovScorer(random_tables(4, 3)), MarkovScorer(random_tables(4, 4))
    with_zero = search({"caption": cap, "lm": lm}, {"caption": 1.0, "lm": 0.0}, [0, 1, 2, 3], beam=4, nbest=2)
    absent = search({"caption": cap}, {"caption": 1.0}, [0, 1, 2, 3], beam=4, nbest=2)
    for a, b in zip(with_zero, absent):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b])
        assert all(set(h.scores) == {"caption"} for h in a)


@pytest.mark.parametrize("length_norm", [True, False])
def test_per_scorer_scores_times_weights_sum_to_total(length_norm: bool) -> None:
    scorers = {"caption": MarkovScorer(random_tables(5, 5)), "lm": FinalBonusScorer(random_tables(5, 6), 0.25),
               "length": LengthScorer(V)}
    weights = {"caption": 1.0, "lm": 0.5, "length": -0.1}
    for hyps in search(scorers, weights, list(range(5)), beam=4, nbest=4, length_norm=length_norm):
        assert len(hyps) == 4
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        for h in hyps:
            assert sum(weights[n] * s for n, s in h.scores.items()) == pytest.approx(h.total, abs=1e-9)
            assert sum(h.weighted_scores().values()) == pytest.approx(h.total, abs=1e-9)
            assert h.scores["length"] == pytest.approx(len(h.tokens) + 1)
            expected = h.total / (len(h.tokens) + 1) if length_norm else h.total
            assert h.score == pytest.approx(expected)


def test_scores_recomputed_from_tables() -> None:
    """Each per-scorer sum equals the table entries along the caption (EOS included) + final."""
    cap_t, lm_t = random_tables(3, 7), random_tables(3, 8)
    scorers = {"caption": MarkovScorer(cap_t), "lm": FinalBonusScorer(lm_t, 0.5)}
    for b, hyps in enumerate(search(scorers, {"caption": 1.0, "lm": 0.7}, [0, 1, 2], beam=3, nbest=3)):
        for h in hyps:
            seq = [BOS, *h.tokens, EOS]
            cap = sum(float(cap_t[b, p, n]) for p, n in zip(seq, seq[1:]))
            lm = sum(float(lm_t[b, p, n]) for p, n in zip(seq, seq[1:])) + 0.5 * len(h.tokens)
            assert h.scores["caption"] == pytest.approx(cap, abs=1e-9)
            assert h.scores["lm"] == pytest.approx(lm, abs=1e-9)


def hand_table() -> Tensor:
    """Greedy takes word 3 (p=.6) then is stuck with p=1/3 words; beam 2 finds 4 (p=.4) then EOS (p=.9)."""
    p = torch.full((V, V), 1e-6)
    p[BOS, 3], p[BOS, 4] = 0.6, 0.4
    p[3, 5], p[3, 6], p[3, EOS] = 1 / 3, 1 / 3, 1 / 3
    p[4, EOS], p[4, 5] = 0.9, 0.1
    p[5, EOS], p[6, EOS] = 1.0, 1.0
    return torch.log(p / p.sum(-1, keepdim=True)).unsqueeze(0)


def test_hand_made_scores_beam_beats_greedy() -> None:
    table = hand_table()
    scorer = {"caption": MarkovScorer(table)}
    g = search(scorer, {"caption": 1.0}, [0], beam=1, length_norm=False)[0][0]
    b = search(scorer, {"caption": 1.0}, [0], beam=2, length_norm=False)[0][0]
    assert g.tokens[0] == 3
    assert b.tokens == [4]
    assert b.total == pytest.approx(math.log(0.4) + math.log(0.9), abs=1e-4)
    assert b.total > g.total


def test_exhaustive_beam_finds_brute_force_optimum() -> None:
    """EOS only at max_len: with K = 5**3 beams the search is exhaustive over 3-word captions."""
    tables = random_tables(2, 9).clone()
    tables[:, :, EOS] = 0.0  # min_len = max_len = 3: EOS only (and always) after 3 words
    scorer = MarkovScorer(tables)
    words = [0, 3, 4, 5, 6]
    for b in range(2):
        best = max(itertools.product(words, repeat=3),
                   key=lambda s: sum(float(tables[b, p, n]) for p, n in zip((BOS, *s, EOS), (*s, EOS))))
        got = search({"caption": scorer}, {"caption": 1.0}, [b], beam=125, max_len=3, min_len=3,
                     length_norm=False, processors=[SuppressTokensProcessor([BOS])])[0][0]
        assert tuple(got.tokens) == best


def test_min_and_max_length() -> None:
    tables = random_tables(4, 10)
    tables[:, :, EOS] = 0.0  # EOS very likely
    hyps = search({"caption": MarkovScorer(tables)}, {"caption": 1.0}, [0, 1, 2, 3], beam=3, min_len=2, max_len=4,
                  nbest=3)
    for per_video in hyps:
        assert all(2 <= len(h.tokens) <= 4 for h in per_video)
    tables[:, :, EOS] = -50.0  # EOS very unlikely: stops at max_len
    hyps = search({"caption": MarkovScorer(tables)}, {"caption": 1.0}, [0, 1], beam=2, max_len=5)
    assert all(len(h[0].tokens) == 5 for h in hyps)


def test_processors_mask_only() -> None:
    scores = torch.zeros(2, V)
    tokens = torch.tensor([[BOS, 3, 4, 3], [BOS, 5, 6, 5]])
    out = NoRepeatNGramProcessor(2)(tokens, scores)
    assert out[0, 4] == -math.inf and out[1, 6] == -math.inf
    assert torch.isfinite(out).sum() == 2 * V - 2
    assert MinLengthProcessor(4, EOS)(tokens, scores)[:, EOS].eq(-math.inf).all()
    assert MinLengthProcessor(3, EOS)(tokens, scores)[:, EOS].eq(0).all()
    forced = MaxLengthProcessor(3, EOS)(tokens, scores)
    assert torch.isfinite(forced).sum() == 2 and forced[:, EOS].eq(0).all()
    assert NoUnkProcessor(3)(tokens, scores)[:, 3].eq(-math.inf).all()
    banned = caption_processors(pad_id=0, bos_id=BOS, unk_id=3)[0](tokens, scores)
    assert banned[:, [0, BOS, 3]].eq(-math.inf).all() and torch.isfinite(banned[:, 4:]).all()
    assert scores.eq(0).all()  # pure: the input is untouched
    with pytest.raises(ConfigError, match="no_repeat_ngram_size"):
        NoRepeatNGramProcessor(0)


def test_bad_arguments_are_config_errors() -> None:
    scorer = {"caption": MarkovScorer(random_tables(1, 0))}
    with pytest.raises(ConfigError, match="unknown scorer"):
        search(scorer, {"caption": 1.0, "lm": 0.5}, [0], beam=2)
    with pytest.raises(ConfigError, match="no weight"):
        search(scorer, {}, [0], beam=2)
    with pytest.raises(ConfigError, match="nbest"):
        search(scorer, {"caption": 1.0}, [0], beam=2, nbest=3)
    with pytest.raises(ConfigError, match="beam"):
        search(scorer, {"caption": 1.0}, [0], beam=0)


# ---------------------------------------------------------------- a tiny random S2VT as scorer
def tiny_s2vt(seed: int, audio_mode: str = "early"):
    from fusion.models.s2vt import S2VT, S2VTConfig

    torch.manual_seed(seed)
    cfg = S2VTConfig(hidden_size=8, frame_embed_size=6, word_embed_size=5, audio_mode=audio_mode,
                     audio_embed_size=3, dropout=0.0)
    return S2VT(cfg, vocab_size=10, frame_dim=7, audio_dim=4).eval()


def tiny_batch(num_videos: int, seed: int = 0):
    """Feature records of varied lengths (some without audio) collated into a model batch."""
    import numpy as np

    from fusion.data import collate
    from fusion.features import FeatureRecord

    rng = np.random.default_rng(seed)
    records = [FeatureRecord(id=f"v{i}", frames=rng.normal(size=(3 + i % 3, 7)).astype(np.float32),
                             audio=None if i % 4 == 3 else rng.normal(size=(2 + i % 2, 4)).astype(np.float32))
               for i in range(num_videos)]
    return records, collate(records, frame_dim=7, audio_dim=4)


def s2vt_search(scorers, weights, batch, beam, **kw):
    ctx = DecodeContext(batch_size=len(batch), beam_size=beam)
    kw.setdefault("max_len", 6)
    inputs = BatchInputs(records=[None] * len(batch), batch=batch)
    bound = {name: bind_inputs(scorer, inputs) for name, scorer in scorers.items()}
    return beam_search(bound, weights, ctx, bos_id=BOS, eos_id=EOS, **kw)


def test_s2vt_batched_equals_one_video_at_a_time() -> None:
    from fusion.data import collate

    model, other = tiny_s2vt(0), tiny_s2vt(1)
    records, batch = tiny_batch(8)
    scorers = {"caption": CaptionScorer(model), "lm": CaptionScorer(other), "length": LengthScorer(10)}
    weights = {"caption": 1.0, "lm": 0.4, "length": 0.3}
    batched = s2vt_search(scorers, weights, batch, beam=3, nbest=2)
    for i, rec in enumerate(records):
        single = s2vt_search(scorers, weights, collate([rec], 7, 4), beam=3, nbest=2)[0]
        assert [h.tokens for h in batched[i]] == [h.tokens for h in single]
        assert [h.score for h in batched[i]] == pytest.approx([h.score for h in single], abs=1e-5)
        for h in batched[i]:
            assert sum(weights[n] * s for n, s in h.scores.items()) == pytest.approx(h.total, abs=1e-6)


def test_s2vt_beam_one_equals_model_greedy() -> None:
    model = tiny_s2vt(2, audio_mode="stream")
    _, batch = tiny_batch(6, seed=1)
    greedy_ids = model.greedy(batch, BOS, EOS, max_len=6)
    hyps = s2vt_search({"caption": CaptionScorer(model)}, {"caption": 1.0}, batch, beam=1, min_len=0)
    assert [h[0].tokens for h in hyps] == greedy_ids


def test_s2vt_weight_zero_equals_absent() -> None:
    model, other = tiny_s2vt(3), tiny_s2vt(4)
    _, batch = tiny_batch(5, seed=2)
    a = s2vt_search({"caption": CaptionScorer(model), "lm": CaptionScorer(other)}, {"caption": 1.0, "lm": 0.0},
                    batch, beam=4, nbest=4)
    b = s2vt_search({"caption": CaptionScorer(model)}, {"caption": 1.0}, batch, beam=4, nbest=4)
    assert [[h.tokens for h in v] for v in a] == [[h.tokens for h in v] for v in b]
    assert [[h.score for h in v] for v in a] == [[h.score for h in v] for v in b]
