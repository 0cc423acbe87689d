"""Deep fusion (frozen LM hidden state beside the decoder's) and early fusion (LM init)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import pytest
import torch

from fusion.decoding.beam_search import beam_search
from fusion.decoding.scorer import DecodeContext
from fusion.decoding.scorers import CaptionScorer
from fusion.errors import ConfigError
from fusion.data import Batch
from fusion.models.deep_fusion import DeepFusionS2VT, LMFusionConfig, build_captioner, early_fusion_init
from fusion.models.lm import LMConfig, LSTMLanguageModel, WordLM
from fusion.models.s2vt import S2VT, S2VTConfig
from fusion.text import Vocabulary

CAP_VOCAB = Vocabulary.build(["a man is riding a horse", "a dog is playing"])
LM_VOCAB = Vocabulary.build(["a man is playing a guitar", "a dog is running"])
S2VT_CFG = S2VTConfig(hidden_size=8, frame_embed_size=6, word_embed_size=4, dropout=0.0)
FRAME_DIM = 5


def _lm(hidden: int = 8, embed: int = 4, tie: bool = False) -> WordLM:
    torch.manual_seed(3)
    cfg = LMConfig(embed_size=embed, hidden_size=hidden, dropout=0.2, tie_weights=tie)
    return WordLM(LSTMLanguageModel(len(LM_VOCAB), cfg, (0, 1)).eval(), LM_VOCAB, cfg)


def _batch(b: int = 2, t: int = 3) -> Batch:
    g = torch.Generator().manual_seed(0)
    tokens = torch.tensor([[1, 4, 5, 6, 2], [1, 7, 2, 0, 0]])[:b]
    return Batch(ids=[f"v{i}" for i in range(b)], frames=torch.randn(b, t, FRAME_DIM, generator=g),
                 frame_mask=torch.ones(b, t, dtype=torch.bool), frame_present=torch.ones(b, dtype=torch.bool),
                 audio=torch.zeros(b, 1, 0), audio_mask=torch.zeros(b, 1, dtype=torch.bool),
                 audio_present=torch.zeros(b, dtype=torch.bool), tokens=tokens)


def _s2vt() -> S2VT:
    torch.manual_seed(1)
    return S2VT(S2VT_CFG, len(CAP_VOCAB), FRAME_DIM).eval()


def test_deep_fusion_starts_as_s2vt_and_has_right_shape() -> None:
    s2vt = _s2vt()
    reference = copy.deepcopy(s2vt)
    model = DeepFusionS2VT(s2vt, _lm(), CAP_VOCAB).eval()
    batch = _batch()
    logits = model(batch)
    assert logits.shape == (2, 4, len(CAP_VOCAB))
    assert torch.allclose(logits, reference(batch), atol=1e-6)  # LM columns start at 0
    assert model.fused_out.in_features == S2VT_CFG.hidden_size + 8


def test_step_equals_teacher_forcing() -> None:
    model = DeepFusionS2VT(_s2vt(), _lm(), CAP_VOCAB).eval()
    with torch.no_grad():
        model.fused_out.weight.normal_()  # make the LM part count
    batch = _batch()
    full = torch.log_softmax(model(batch), -1)  # (B, 4, V)
    state = model.encode(batch)
    for t in range(4):
        lp, state = model.step(batch.tokens[:, t], state)
        assert torch.allclose(lp, full[:, t], atol=1e-5)


def test_lm_hidden_state_changes_the_output() -> None:
    model = DeepFusionS2VT(_s2vt(), _lm(), CAP_VOCAB).eval()
    with torch.no_grad():
        model.fused_out.weight[:, 8:].normal_()
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.lm.lstm.weight_hh_l0.mul_(-1.0)
    assert not torch.allclose(model(_batch()), other(_batch()))


def test_lm_is_frozen_during_training() -> None:
    lm = _lm()
    model = DeepFusionS2VT(_s2vt(), lm, CAP_VOCAB)
    model.train()
    assert not model.lm.training and model.s2vt.training
    lm_before = {k: v.clone() for k, v in model.lm.state_dict().items()}
    fused_before = model.fused_out.weight.clone()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    batch = _batch()
    for _ in range(2):
        loss = torch.nn.functional.cross_entropy(model(batch).transpose(1, 2), batch.tokens[:, 1:], ignore_index=0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(v, model.lm.state_dict()[k]) for k, v in lm_before.items())
    assert not torch.equal(fused_before, model.fused_out.weight)
    assert all(not p.requires_grad for p in model.lm.parameters())


def test_beam_search_over_deep_fusion() -> None:
    model = DeepFusionS2VT(_s2vt(), _lm(), CAP_VOCAB).eval()
    ctx = DecodeContext(batch_size=2, beam_size=3)
    hyps = beam_search({"caption": CaptionScorer(model, _batch())}, {"caption": 1.0}, ctx, bos_id=1, eos_id=2, max_len=5)
    assert len(hyps) == 2 and all(len(h) == 1 for h in hyps)
    greedy = model.greedy(_batch(), 1, 2, max_len=5)
    beam1 = beam_search({"caption": CaptionScorer(model, _batch())}, {"caption": 1.0},
                        DecodeContext(batch_size=2, beam_size=1), bos_id=1, eos_id=2,
                        max_len=5, min_len=0)
    assert [h[0].tokens for h in beam1] == greedy


@pytest.mark.parametrize("tie", [False, True])
def test_early_fusion_copies_language_layer(tie: bool) -> None:
    lm = _lm(hidden=8, embed=4 if not tie else 4, tie=tie)
    s2vt = _s2vt()
    untouched = copy.deepcopy(s2vt)
    stats = early_fusion_init(s2vt, lm, CAP_VOCAB)
    m = lm.model
    for word in ("a", "dog", "is", "playing", "<eos>", "<bos>"):
        i, j = CAP_VOCAB.index(word), LM_VOCAB.index(word)
        assert torch.equal(s2vt.embed.weight[i], m.embedding.weight[j])
    horse = CAP_VOCAB.index("horse")  # unknown to the LM: keeps its initialisation
    assert torch.equal(s2vt.embed.weight[horse], untouched.embed.weight[horse])
    assert torch.equal(s2vt.lstm2.weight_ih_l0[:, 8:], m.lstm.weight_ih_l0)
    assert torch.equal(s2vt.lstm2.weight_ih_l0[:, :8], untouched.lstm2.weight_ih_l0[:, :8])
    assert torch.equal(s2vt.lstm2.weight_hh_l0, m.lstm.weight_hh_l0)
    # the output layer gives the LM's logits for the copied words, from the same hidden state
    h = torch.randn(3, 8)
    with torch.no_grad():
        lm_logits = m.out(m.proj(h) if m.proj is not None else h)
        cap_logits = s2vt.out(h)
    dog_i, dog_j = CAP_VOCAB.index("dog"), LM_VOCAB.index("dog")
    assert torch.allclose(cap_logits[:, dog_i], lm_logits[:, dog_j], atol=1e-5)
    assert stats["words_unknown"] == 2  # riding, horse


def test_early_fusion_size_mismatch() -> None:
    with pytest.raises(ConfigError, match="hidden_size=8"):
        early_fusion_init(_s2vt(), _lm(hidden=6), CAP_VOCAB)


@dataclass
class _Experiment:
    model: S2VTConfig = field(default_factory=lambda: S2VT_CFG)
    lm_fusion: LMFusionConfig | None = None


def test_build_captioner_and_reload(tmp_path) -> None:
    _lm().save(tmp_path / "lm")
    dims = {"vocab_size": len(CAP_VOCAB), "frame_dim": FRAME_DIM, "audio_dim": 0}
    assert type(build_captioner(_Experiment(), CAP_VOCAB, dims)) is S2VT
    early = build_captioner(_Experiment(lm_fusion=LMFusionConfig("early", str(tmp_path / "lm"))), CAP_VOCAB, dims)
    assert type(early) is S2VT
    deep_cfg = _Experiment(lm_fusion=LMFusionConfig("deep", str(tmp_path / "lm")))
    deep = build_captioner(deep_cfg, CAP_VOCAB, dims).eval()
    assert isinstance(deep, DeepFusionS2VT)
    with torch.no_grad():
        deep.fused_out.weight.normal_()
    again = build_captioner(deep_cfg, CAP_VOCAB, dims, initialise=False).eval()
    again.load_state_dict(deep.state_dict())
    assert torch.allclose(again(_batch()), deep(_batch()))
    with pytest.raises(ValueError, match="needs lm_fusion.lm"):
        LMFusionConfig("deep")


@pytest.mark.parametrize("mode", ["early", "deep"])
def test_train_and_load_run_with_lm_fusion(tmp_path, mode: str) -> None:
    """`fusion train` builds the fused model from the config's lm_fusion; load_run rebuilds it."""
    from fusion.checkpoint import load_run
    from fusion.training.lm import train_lm
    from fusion.training import train
    from tests.builders import make_toy, toy_config

    make_toy(tmp_path)
    corpus = ["a red ball and a dog", "the green ball and a clock", "a blue ball and rain"] * 4
    train_lm(corpus, LMConfig(embed_size=8, hidden_size=16, max_epochs=1), out_dir=tmp_path / "lm", progress=False)
    cfg = toy_config(tmp_path, max_epochs=1)
    cfg.train.tensorboard = False
    cfg.lm_fusion = LMFusionConfig(mode, str(tmp_path / "lm"))
    result = train(cfg, tmp_path / "run", progress=False)
    run = load_run(result.run_dir, which="last")
    assert run.config.lm_fusion.mode == mode
    assert isinstance(run.model, DeepFusionS2VT) == (mode == "deep")
    if mode == "deep":  # the wrapped S2VT got the training set's input statistics
        assert not torch.allclose(run.model.s2vt.frame_norm.std, torch.ones_like(run.model.s2vt.frame_norm.std))
