"""LSTM word language model: config, model, training and perplexity on a text corpus.

The language model of Venugopalan et al., "Improving LSTM-based Video Description with
Linguistic Knowledge Mined from Text" (EMNLP 2016): an LSTM over words, trained on plain
text (one sentence per line), used by the caption decoder in three ways: early fusion
(initialising the decoder's language layer, :mod:`fusion.models.deep_fusion`), late fusion
(a beam-search scorer, :mod:`fusion.decoding.lm_scorer`) and deep fusion (its hidden state
beside the decoder's before the softmax).

Tokens follow :mod:`fusion.text`: ``tokenize`` and a :class:`~fusion.text.Vocabulary` built
on the training corpus; each sentence is ``<bos> w1 ... wn <eos>`` and the model predicts
``w1 ... wn <eos>`` (words below ``min_count`` become ``<unk>``). ``<pad>`` and ``<bos>`` are
never a next token: their logits are masked, so the distribution covers the words, ``<unk>``
and ``<eos>`` only. Perplexity is ``exp(mean NLL)`` over those predicted tokens.

A trained LM is a folder: ``lm.json`` (kind + config), ``vocab.json``, ``model.safetensors``
and ``history.json`` (per-epoch losses), written atomically.
"""

from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

from fusion.config import from_dict, to_dict
from fusion.errors import CheckpointError, ConfigError, DataError
from fusion.io import atomic_write_bytes, atomic_write_json
from fusion.text import Vocabulary, tokenize

logger = logging.getLogger(__name__)

LSTMState = tuple[Tensor, Tensor]  # h, c: each (num_layers, N, hidden_dim) float32


@dataclass
class LMConfig:
    """Architecture and training of the LSTM word LM.

    Attributes:
        embed_dim: word embedding size.
        hidden_dim: LSTM hidden size.
        num_layers: stacked LSTM layers.
        dropout: dropout on embeddings, between layers and before the softmax
            (Zaremba et al. 2014 regularisation of LSTM LMs).
        tie_weights: share the input embedding and the output projection (Press & Wolf
            2017); a projection hidden->embed is added when the sizes differ.
        min_count: words seen fewer times in the training corpus become ``<unk>``.
        max_len: sentences are cut to this many words (plus ``<eos>``).
        batch_size: sentences per step.
        max_epochs: passes over the corpus.
        lr: Adam learning rate; halved whenever validation perplexity stops improving.
        clip_grad_norm: gradient-norm clip (0 = off).
        patience: epochs without validation improvement before stopping.
        val_fraction: share of the corpus held out for validation when no validation
            corpus is given.
        seed: seed of initialisation, the held-out split and the batch order.
    """

    embed_dim: int = 256
    hidden_dim: int = 512
    num_layers: int = 1
    dropout: float = 0.5
    tie_weights: bool = True
    min_count: int = 2
    max_len: int = 40
    batch_size: int = 64
    max_epochs: int = 10
    lr: float = 3e-3
    clip_grad_norm: float = 1.0
    patience: int = 2
    val_fraction: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("embed_dim", "hidden_dim", "num_layers", "max_len", "batch_size", "max_epochs", "min_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


class LSTMLanguageModel(nn.Module):
    """Embedding -> LSTM -> (projection) -> softmax over the vocabulary.

    Args:
        vocab_size: V, output classes (the LM's own vocabulary).
        config: the architecture.
        masked_ids: token ids that are never a next token (``<pad>``, ``<bos>``).
    """

    def __init__(self, vocab_size: int, config: LMConfig, masked_ids: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, config.embed_dim)
        self.drop = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(config.embed_dim, config.hidden_dim, num_layers=config.num_layers, batch_first=True,
                            dropout=config.dropout if config.num_layers > 1 else 0.0)
        needs_proj = config.tie_weights and config.embed_dim != config.hidden_dim
        self.proj = nn.Linear(config.hidden_dim, config.embed_dim) if needs_proj else None
        self.out = nn.Linear(config.embed_dim if needs_proj else config.hidden_dim, vocab_size)
        if config.tie_weights:
            self.out.weight = self.embedding.weight
        mask = torch.zeros(vocab_size, dtype=torch.bool)
        mask[list(masked_ids)] = True
        self.register_buffer("logit_mask", mask, persistent=False)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)

    @property
    def hidden_dim(self) -> int:
        """Size of the top LSTM layer's hidden state (what deep fusion reads)."""
        return self.config.hidden_dim

    def init_state(self, num_rows: int, device: torch.device | str = "cpu") -> LSTMState:
        """Zero state for ``num_rows`` sequences: (h, c), each (num_layers, N, H) float32."""
        shape = (self.config.num_layers, num_rows, self.config.hidden_dim)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    def forward(self, tokens: Tensor, state: LSTMState | None = None) -> tuple[Tensor, Tensor, LSTMState]:
        """Run over whole sequences: ``tokens`` (B, L) long, optional initial (h, c).

        Returns:
            log_probs (B, L, V) float32 of the next token, hidden (B, L, H) float32 top-layer
            LSTM outputs (before dropout), and the final (h, c).
        """
        hidden, state = self.hidden_states(tokens, state)  # (B, L, H)
        return self.log_probs(hidden), hidden, state

    def hidden_states(self, tokens: Tensor, state: LSTMState | None = None) -> tuple[Tensor, LSTMState]:
        """Top-layer LSTM outputs (B, L, H) float32 for ``tokens`` (B, L) long, and the final
        (h, c); no softmax (what deep fusion reads)."""
        emb = self.drop(self.embedding(tokens))  # (B, L, E)
        return self.lstm(emb, state)

    def log_probs(self, hidden: Tensor) -> Tensor:
        """Next-token log-probs (..., V) float32 from top-layer outputs (..., H); pad/bos get -inf."""
        x = self.drop(hidden)
        if self.proj is not None:
            x = self.proj(x)  # (..., E)
        logits = self.out(x).masked_fill(self.logit_mask, float("-inf"))  # (..., V)
        return torch.log_softmax(logits, dim=-1)

    def step(self, tokens: Tensor, state: LSTMState) -> tuple[Tensor, Tensor, LSTMState]:
        """One step: previous tokens (N,) long -> log_probs (N, V), hidden (N, H), new (h, c)."""
        log_probs, hidden, state = self.forward(tokens[:, None], state)
        return log_probs[:, 0], hidden[:, 0], state


@dataclass
class WordLM:
    """A trained LSTM LM with its vocabulary and config (the unit saved to / loaded from a folder)."""

    model: LSTMLanguageModel
    vocab: Vocabulary
    config: LMConfig
    history: list[dict[str, float]] = field(default_factory=list)

    def save(self, out_dir: str | Path) -> Path:
        """Write ``lm.json``, ``vocab.json``, ``model.safetensors``, ``history.json`` atomically."""
        from safetensors.torch import save

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        if self.config.tie_weights:
            tensors.pop("out.weight", None)  # the same tensor as embedding.weight
        atomic_write_bytes(out / "model.safetensors", save(tensors))
        atomic_write_json(out / "vocab.json", self.vocab.to_dict())
        atomic_write_json(out / "history.json", self.history)
        atomic_write_json(out / "lm.json", {"kind": "lstm", "config": to_dict(self.config)})
        return out

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> "WordLM":
        """Load an LM folder written by :meth:`save` (CheckpointError if missing or unreadable)."""
        from safetensors.torch import load_file

        path = Path(path)
        meta_path = path / "lm.json"
        if not meta_path.is_file():
            raise CheckpointError(f"{path}: not an LM folder (no lm.json); train one with `fusion lm train CORPUS --out DIR`")
        try:
            meta = json.loads(meta_path.read_text())
            config = from_dict(LMConfig, meta["config"], prefix="config")
            vocab = Vocabulary.from_dict(json.loads((path / "vocab.json").read_text()))
            tensors = load_file(str(path / "model.safetensors"))
            history = json.loads((path / "history.json").read_text()) if (path / "history.json").is_file() else []
        except (OSError, KeyError, ValueError, ConfigError, DataError) as err:
            raise CheckpointError(f"{path}: unreadable LM folder ({err}); retrain it with `fusion lm train`") from None
        model = LSTMLanguageModel(len(vocab), config, masked_ids=(vocab.pad_id, vocab.bos_id))
        if config.tie_weights:
            tensors["out.weight"] = tensors["embedding.weight"]
        try:
            model.load_state_dict(tensors)
        except RuntimeError as err:
            raise CheckpointError(f"{path}: weights do not fit the config ({str(err).splitlines()[0]})") from None
        model.to(device).eval()
        return cls(model=model, vocab=vocab, config=config, history=history)


def vocab_map(caption_vocab: Vocabulary, lm_vocab: Vocabulary) -> Tensor:
    """LM id of every caption-vocabulary id, (V_caption,) long: specials by role, a caption
    word unknown to the LM -> the LM's ``<unk>``."""
    ids = [lm_vocab.index(w) for w in caption_vocab.words]  # unknown -> lm unk
    for cap_id, lm_id in ((caption_vocab.pad_id, lm_vocab.pad_id), (caption_vocab.bos_id, lm_vocab.bos_id),
                          (caption_vocab.eos_id, lm_vocab.eos_id), (caption_vocab.unk_id, lm_vocab.unk_id)):
        ids[cap_id] = lm_id
    return torch.tensor(ids, dtype=torch.long)


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
            with ``config.min_count``.
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
    vocab = vocab or Vocabulary.build([tokenize(s) for s in sentences], min_count=config.min_count)
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
    bar = tqdm(batches, desc=f"lm epoch {epoch}", disable=not progress, leave=False)
    for idx in bar:
        nll = _token_nll(model, [seqs[i] for i in idx], pad_id)  # (n,)
        optimizer.zero_grad(set_to_none=True)
        nll.mean().backward()
        if config.clip_grad_norm > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()
        total, count = total + float(nll.detach().sum()), count + nll.numel()
        bar.set_postfix(ppl=f"{math.exp(total / count):.1f}")
    return total / max(count, 1)
