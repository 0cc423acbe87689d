"""The LSTM word LM: training lowers perplexity, save/load, corpus reading, `fusion lm`."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fusion.cli import main as cli_main
from fusion.config import load_config
from fusion.errors import CheckpointError, ConfigError, DataError
from fusion.models.lm import LMConfig, LSTMLanguageModel, WordLM
from fusion.text import Vocabulary
from fusion.training.lm import evaluate_lm, read_corpus, train_lm

CORPUS = [
    "a man is playing a guitar",
    "a woman is slicing an onion",
    "a dog is running in the park",
    "a man is riding a horse",
    "a cat is playing with a ball",
    "a woman is playing a piano",
    "a man is slicing a tomato",
    "a dog is playing with a ball",
] * 6

TINY = LMConfig(embed_size=16, hidden_size=16, min_word_count=1, batch_size=8, max_epochs=12, lr=0.02,
                dropout=0.0, val_fraction=0.0, patience=12)


@pytest.fixture(scope="module")
def trained() -> WordLM:
    return train_lm(CORPUS, TINY, progress=False)


def test_training_lowers_perplexity(trained: WordLM) -> None:
    untrained = WordLM(model=LSTMLanguageModel(len(trained.vocab), TINY, (0, 1)).eval(), vocab=trained.vocab, config=TINY)
    before = evaluate_lm(untrained, CORPUS[:8])
    after = evaluate_lm(trained, CORPUS[:8])
    assert before.tokens == after.tokens == sum(len(s.split()) + 1 for s in CORPUS[:8])
    # An untrained softmax is near uniform over the words + <unk> + <eos> (pad, bos masked).
    assert before.perplexity == pytest.approx(len(trained.vocab) - 2, rel=0.3)
    assert after.perplexity < 0.3 * before.perplexity
    losses = [h["train_loss"] for h in trained.history]
    assert losses[-1] < losses[0]


def test_never_predicts_pad_or_bos(trained: WordLM) -> None:
    log_probs, hidden, _ = trained.model(torch.tensor([[1, 4, 5]]))
    assert hidden.shape == (1, 3, TINY.hidden_size)
    assert torch.isneginf(log_probs[..., :2]).all()
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(1, 3))


def test_step_equals_sequence(trained: WordLM) -> None:
    seq = torch.tensor([[1, 5, 6, 7]])
    full, _, _ = trained.model(seq)  # (1, 4, V)
    state = trained.model.init_state(1)
    for t in range(4):
        lp, _, state = trained.model.step(seq[:, t], state)
        assert torch.allclose(lp, full[:, t], atol=1e-5)


def test_unknown_words_score_as_unk(trained: WordLM) -> None:
    result = evaluate_lm(trained, ["a zebra is playing a kazoo"])
    assert result.tokens == 7
    assert result.oov_rate == pytest.approx(2 / 6)
    assert math.isfinite(result.perplexity)


def test_save_load_round_trip(trained: WordLM, tmp_path) -> None:
    trained.save(tmp_path / "lm")
    loaded = WordLM.load(tmp_path / "lm")
    assert loaded.vocab == trained.vocab and loaded.config == trained.config
    assert evaluate_lm(loaded, CORPUS[:4]).perplexity == pytest.approx(evaluate_lm(trained, CORPUS[:4]).perplexity, rel=1e-6)


def test_load_errors(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="fusion lm train"):
        WordLM.load(tmp_path)
    (tmp_path / "lm.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable"):
        WordLM.load(tmp_path)


def test_read_corpus_strips_ids(tmp_path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("vid1\ta squirrel is eating\n\nplain sentence here\n")
    assert read_corpus(path) == ["a squirrel is eating", "plain sentence here"]
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(DataError, match="no sentence"):
        read_corpus(tmp_path / "empty.txt")
    with pytest.raises(DataError, match="cannot read"):
        read_corpus(tmp_path / "missing.txt")


def test_fixed_vocabulary_is_used() -> None:
    vocab = Vocabulary.build(["a man is playing"], min_count=1)
    lm = train_lm(CORPUS[:8], LMConfig(embed_size=8, hidden_size=8, max_epochs=1, val_fraction=0.0), vocab=vocab, progress=False)
    assert lm.vocab is vocab and lm.model.vocab_size == len(vocab)


def test_cli_train_and_eval_json(tmp_path, capsys) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"vid{i}\t{s}" for i, s in enumerate(CORPUS)) + "\n")
    config = tmp_path / "lm.yaml"
    config.write_text("embed_size: 8\nhidden_size: 8\nmax_epochs: 2\nmin_word_count: 1\nbatch_size: 16\n")
    out = tmp_path / "lm"
    assert cli_main(["lm", "train", str(corpus), "--out", str(out), "--config", str(config), "--set", "lr=0.01"]) == 0
    assert (out / "model.safetensors").is_file() and (out / "vocab.json").is_file()
    capsys.readouterr()
    assert cli_main(["lm", "eval", str(out), str(corpus), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"perplexity", "tokens"}
    assert result["tokens"] == sum(len(s.split()) + 1 for s in CORPUS)
    assert result["perplexity"] == pytest.approx(evaluate_lm(WordLM.load(out), CORPUS).perplexity, rel=1e-6)


def test_cli_user_errors_are_one_line(tmp_path, capsys) -> None:
    assert cli_main(["lm", "eval", str(tmp_path), str(tmp_path / "nope.txt"), "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lm.json" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("hiden_dim: 3\n")
    (tmp_path / "c.txt").write_text("a b c\n")
    assert cli_main(["lm", "train", str(tmp_path / "c.txt"), "--out", str(tmp_path / "o"), "--config", str(bad)]) == 2
    assert "hiden_dim" in capsys.readouterr().err


def test_lm_folders_and_configs_with_the_former_key_names_still_load(trained: WordLM, tmp_path, caplog) -> None:
    """embed_dim / hidden_dim / min_count / clip_grad_norm were renamed; old LM folders and configs load as before."""
    trained.save(tmp_path / "lm")
    meta = json.loads((tmp_path / "lm" / "lm.json").read_text())
    old = {"embed_size": "embed_dim", "hidden_size": "hidden_dim", "min_word_count": "min_count", "grad_clip": "clip_grad_norm"}
    meta["config"] = {old.get(k, k): v for k, v in meta["config"].items()}
    assert "hidden_dim" in meta["config"] and "hidden_size" not in meta["config"]
    (tmp_path / "lm" / "lm.json").write_text(json.dumps(meta))
    with caplog.at_level("WARNING"):
        loaded = WordLM.load(tmp_path / "lm")
    assert loaded.config == trained.config
    assert "'config.hidden_dim' is now 'config.hidden_size'" in caplog.text
    seq = torch.tensor([[1, 4, 5]])
    assert torch.equal(loaded.model(seq)[0], trained.model(seq)[0])
    config = tmp_path / "old.yaml"
    config.write_text("embed_dim: 8\nhidden_dim: 12\nmin_count: 3\nclip_grad_norm: 0.5\n")
    assert load_config(LMConfig, config) == LMConfig(embed_size=8, hidden_size=12, min_word_count=3, grad_clip=0.5)
    config.write_text("hidden_dim: 8\nhidden_size: 12\n")
    with pytest.raises(ConfigError, match="hidden_dim.*hidden_size.*same setting"):
        load_config(LMConfig, config)


@pytest.mark.real_data
def test_msvd_captions_corpus(data_dir) -> None:
    sentences = read_corpus(data_dir / "msvd" / "captions" / "sents_val_lc_nopunc.txt")
    assert len(sentences) == 4290 and not any("\t" in s for s in sentences)
    lm = train_lm(sentences[:400], LMConfig(embed_size=16, hidden_size=16, max_epochs=1), progress=False)
    assert evaluate_lm(lm, sentences[400:600]).tokens > 1000
