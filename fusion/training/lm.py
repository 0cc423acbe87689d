"""Training and evaluating the LSTM word LM (:mod:`fusion.models.lm`) on a text corpus.

A corpus is plain text, one sentence per line (``id<TAB>sentence`` lines, as in the S2VT
caption release, keep the sentence). :func:`train_lm` trains with Adam in shuffled,
length-bucketed batches, halves the rate when validation perplexity stops improving and
keeps the best epoch's weights; :func:`evaluate_lm` measures perplexity ``exp(mean NLL)``
over the predicted tokens (words, ``<unk>`` included, and one ``<eos>`` per sentence).
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from fusion.errors import DataError
from fusion.models.lm import LMConfig, LSTMLanguageModel, WordLM
from fusion.progress import progress_bar
from fusion.text import Vocabulary, tokenize

logger = logging.getLogger(__name__)


def read_corpus(path: str | Path) -> list[str]:
    """Sentences of a plain-text corpus, one per line; ``id<TAB>sentence`` lines (the S2VT
    caption release) keep the sentence, blank lines are skipped. DataError if unreadable/empty."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the corpus ({err}); give a UTF-8 text file, one sentence per line") from None
    sentences = [line.split("\t", 1)[-1].strip() for line in lines]
    sentences = [s for s in sentences if s]
    if not sentences:
        raise DataError(f"{path}: the corpus has no sentence; write one sentence per line")
    return sentences


def encode_corpus(sentences: list[str], vocab: Vocabulary, max_len: int) -> list[list[int]]:
    """Tokenise and encode sentences as ``<bos> w1..wn <eos>`` id lists (n <= max_len, empty ones dropped)."""
    out = []
    for sentence in sentences:
        words = tokenize(sentence)[:max_len]
        if words:
            out.append(vocab.encode(words, bos=True, eos=True))
    return out


def pad_batch(seqs: list[list[int]], pad_id: int) -> Tensor:
    """(B, L) long, right-padded with ``pad_id``."""
    width = max(len(s) for s in seqs)
    batch = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        batch[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return batch


def _token_nll(model: LSTMLanguageModel, seqs: list[list[int]], pad_id: int) -> Tensor:
    """NLL (nats) of every non-pad target token of ``seqs`` (teacher forcing): (n,) float32."""
    batch = pad_batch(seqs, pad_id).to(next(model.parameters()).device)  # (B, L)
    log_probs, _, _ = model(batch[:, :-1])  # (B, L-1, V)
    target = batch[:, 1:]  # (B, L-1)
    return -log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)[target != pad_id]  # (n,)


@torch.no_grad()
def sequence_nll(model: LSTMLanguageModel, seqs: list[list[int]], pad_id: int, batch_size: int = 256) -> tuple[float, int]:
    """Total NLL (nats) of ``seq[1:]`` given the prefixes over all ``seqs``, and the token count (eval mode)."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))  # similar lengths together: less padding
    total, count = 0.0, 0
    for start in range(0, len(order), batch_size):
        nll = _token_nll(model, [seqs[i] for i in order[start : start + batch_size]], pad_id)
        total, count = total + float(nll.sum()), count + nll.numel()
    model.train(was_training)
    return total, count


@dataclass
class LMEval:
    """Perplexity ``exp(nll / tokens)`` of an LM on a corpus; ``tokens`` counts the words
    (``<unk>`` included) and one ``<eos>`` per sentence, ``nll`` is in nats, ``oov_rate`` the
    share of words scored as ``<unk>``."""

    perplexity: float
    tokens: int
    nll: float
    oov_rate: float

    def to_dict(self) -> dict[str, float | int]:
        """``{"perplexity", "tokens", "nll", "oov_rate"}``."""
        return {"perplexity": self.perplexity, "tokens": self.tokens, "nll": self.nll, "oov_rate": self.oov_rate}


def evaluate_lm(lm: WordLM, sentences: list[str], batch_size: int = 256) -> LMEval:
    """Perplexity of ``lm`` on ``sentences`` (``fusion.text.tokenize``); DataError if no words."""
    seqs = encode_corpus(sentences, lm.vocab, max_len=10**9)  # evaluation never truncates
    if not seqs:
        raise DataError("the evaluation corpus has no words; give sentences, one per line")
    nll, count = sequence_nll(lm.model, seqs, lm.vocab.pad_id, batch_size)
    words = [t for s in seqs for t in s[1:-1]]
    oov = sum(t == lm.vocab.unk_id for t in words) / max(len(words), 1)
    return LMEval(perplexity=math.exp(nll / count), tokens=count, nll=nll, oov_rate=oov)


def _split(sentences: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded random held-out share of the corpus: (train, validation)."""
    if fraction <= 0 or len(sentences) < 2:
        return sentences, []
    idx = list(range(len(sentences)))
    random.Random(seed).shuffle(idx)
    val = set(idx[: max(1, round(fraction * len(sentences)))])
    return [s for i, s in enumerate(sentences) if i not in val], [s for i, s in enumerate(sentences) if i in val]


def train_lm(sentences: list[str], config: LMConfig | None = None, val_sentences: list[str] | None = None,
             out_dir: str | Path | None = None, vocab: Vocabulary | None = None,
             device: torch.device | str = "cpu", progress: bool = True) -> WordLM:
    """Train an LSTM LM on a text corpus; keep the weights of the best validation epoch.

    Args:
        sentences: training text, one sentence per item.
        config: architecture and training (default :class:`LMConfig`).
        val_sentences: validation text; default ``config.val_fraction`` of ``sentences``.
        out_dir: where to save the best LM (saved after every improving epoch); None = keep in memory.
        vocab: a fixed vocabulary (e.g. shared with a baseline); default built on ``sentences``
            with ``config.min_word_count``.
        device: torch device.
        progress: show a tqdm bar per epoch.

    Returns:
        The trained :class:`WordLM` (best validation perplexity), in eval mode. DataError if
        the corpus has no words.
    """
    config = config or LMConfig()
    torch.manual_seed(config.seed)
    if val_sentences is None:
        sentences, val_sentences = _split(sentences, config.val_fraction, config.seed)
    vocab = vocab or Vocabulary.build([tokenize(s) for s in sentences], min_count=config.min_word_count)
    train = encode_corpus(sentences, vocab, config.max_len)
    val = encode_corpus(val_sentences, vocab, max_len=10**9)
    if not train:
        raise DataError("the training corpus has no words; give sentences, one per line")
    model = LSTMLanguageModel(len(vocab), config, masked_ids=(vocab.pad_id, vocab.bos_id)).to(device)
    lm = WordLM(model=model, vocab=vocab, config=config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    rng = random.Random(config.seed)
    best_ppl, best_state, bad_epochs = math.inf, None, 0
    logger.info("LM: %d training sentences, %d validation, vocabulary %d", len(train), len(val), len(vocab))
    for epoch in range(1, config.max_epochs + 1):
        train_loss = _train_epoch(model, optimizer, train, vocab.pad_id, config, rng, progress, epoch)
        nll, count = sequence_nll(model, val, vocab.pad_id) if val else (train_loss, 1)
        val_ppl = math.exp(nll / count)
        lm.history.append({"epoch": epoch, "train_loss": train_loss, "val_perplexity": val_ppl, "lr": optimizer.param_groups[0]["lr"]})
        logger.info("LM epoch %d: train loss %.4f, validation perplexity %.2f", epoch, train_loss, val_ppl)
        if val_ppl < best_ppl:
            best_ppl, bad_epochs = val_ppl, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if out_dir is not None:
                lm.save(out_dir)
        else:
            bad_epochs += 1
            for group in optimizer.param_groups:
                group["lr"] *= 0.5  # plateau: halve the rate (Zaremba et al. 2014 anneal by epochs)
            if bad_epochs >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    if out_dir is not None:
        lm.save(out_dir)
    return lm


def _train_epoch(model: LSTMLanguageModel, optimizer: torch.optim.Optimizer, seqs: list[list[int]], pad_id: int,
                 config: LMConfig, rng: random.Random, progress: bool, epoch: int) -> float:
    """One pass in shuffled, length-bucketed batches. Returns the mean token NLL (nats)."""
    model.train()
    order = list(range(len(seqs)))
    rng.shuffle(order)
    # Bucket: sort chunks of 50 batches by length so batches carry little padding.
    chunk = config.batch_size * 50
    order = [i for c in range(0, len(order), chunk) for i in sorted(order[c : c + chunk], key=lambda j: len(seqs[j]))]
    batches = [order[s : s + config.batch_size] for s in range(0, len(order), config.batch_size)]
    rng.shuffle(batches)
    total, count = 0.0, 0
    bar = progress_bar(batches, desc=f"lm epoch {epoch}", disable=not progress, leave=False)
    for idx in bar:
        nll = _token_nll(model, [seqs[i] for i in idx], pad_id)  # (n,)
        optimizer.zero_grad(set_to_none=True)
        nll.mean().backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        total, count = total + float(nll.detach().sum()), count + nll.numel()
        bar.set_postfix(ppl=f"{math.exp(total / count):.1f}", refresh=False)
    return total / max(count, 1)
