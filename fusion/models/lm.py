"""LSTM word language model: its config and the model (training: :mod:`fusion.training.lm`).

The language model of Venugopalan et al., "Improving LSTM-based Video Description with
Linguistic Knowledge Mined from Text" (EMNLP 2016): an LSTM over words, trained on plain
text (one sentence per line), used by the caption decoder in three ways: early fusion
(initialising the decoder's language layer, :mod:`fusion.models.deep_fusion`), late fusion
(a beam-search scorer, :mod:`fusion.decoding.lm_scorer`) and deep fusion (its hidden state
beside the decoder's before the softmax).

Tokens follow :mod:`fusion.text`: ``tokenize`` and a :class:`~fusion.text.Vocabulary` built
on the training corpus; each sentence is ``<bos> w1 ... wn <eos>`` and the model predicts
``w1 ... wn <eos>`` (words below ``min_word_count`` become ``<unk>``). ``<pad>`` and ``<bos>`` are
never a next token: their logits are masked, so the distribution covers the words, ``<unk>``
and ``<eos>`` only. Perplexity is ``exp(mean NLL)`` over those predicted tokens.

A trained LM is a folder: ``lm.json`` (kind + config), ``vocab.json``, ``model.safetensors``
and ``history.json`` (per-epoch losses), written atomically. LM folders written before the
config keys were renamed (``embed_dim``, ``hidden_dim``, ``min_count``, ``clip_grad_norm``)
load under the new names (``LMConfig.RENAMED_KEYS``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn

from fusion.config import from_dict, to_dict
from fusion.errors import CheckpointError, ConfigError, DataError
from fusion.io import atomic_write_bytes, atomic_write_json
from fusion.text import Vocabulary

logger = logging.getLogger(__name__)

LSTMState = tuple[Tensor, Tensor]  # h, c: each (num_layers, N, hidden_size) float32


@dataclass
class LMConfig:
    """Architecture and training of the LSTM word LM.

    Attributes:
        embed_size: word embedding size.
        hidden_size: LSTM hidden size.
        num_layers: stacked LSTM layers.
        dropout: dropout on embeddings, between layers and before the softmax
            (Zaremba et al. 2014 regularisation of LSTM LMs).
        tie_weights: share the input embedding and the output projection (Press & Wolf
            2017); a projection hidden->embed is added when the sizes differ.
        min_word_count: words seen fewer times in the training corpus become ``<unk>``.
        max_len: sentences are cut to this many words (plus ``<eos>``).
        batch_size: sentences per step.
        max_epochs: passes over the corpus.
        lr: Adam learning rate; halved whenever validation perplexity stops improving.
        grad_clip: clip the global gradient norm to this (0 = off).
        patience: epochs without validation improvement before stopping.
        val_fraction: share of the corpus held out for validation when no validation
            corpus is given.
        seed: seed of initialisation, the held-out split and the batch order.
    """

    embed_size: int = 256
    hidden_size: int = 512
    num_layers: int = 1
    dropout: float = 0.5
    tie_weights: bool = True
    min_word_count: int = 2
    max_len: int = 40
    batch_size: int = 64
    max_epochs: int = 10
    lr: float = 3e-3
    grad_clip: float = 1.0
    patience: int = 2
    val_fraction: float = 0.05
    seed: int = 0

    RENAMED_KEYS: ClassVar[dict[str, str]] = {"embed_dim": "embed_size", "hidden_dim": "hidden_size",
                                              "min_count": "min_word_count", "clip_grad_norm": "grad_clip"}

    def __post_init__(self) -> None:
        for name in ("embed_size", "hidden_size", "num_layers", "max_len", "batch_size", "max_epochs", "min_word_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.grad_clip < 0:
            raise ValueError(f"grad_clip must be >= 0 (0 = off), got {self.grad_clip}")


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
        self.embedding = nn.Embedding(vocab_size, config.embed_size)
        self.drop = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(config.embed_size, config.hidden_size, num_layers=config.num_layers, batch_first=True,
                            dropout=config.dropout if config.num_layers > 1 else 0.0)
        needs_proj = config.tie_weights and config.embed_size != config.hidden_size
        self.proj = nn.Linear(config.hidden_size, config.embed_size) if needs_proj else None
        self.out = nn.Linear(config.embed_size if needs_proj else config.hidden_size, vocab_size)
        if config.tie_weights:
            self.out.weight = self.embedding.weight
        mask = torch.zeros(vocab_size, dtype=torch.bool)
        mask[list(masked_ids)] = True
        self.register_buffer("logit_mask", mask, persistent=False)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)

    @property
    def hidden_size(self) -> int:
        """Size of the top LSTM layer's hidden state (what deep fusion reads)."""
        return self.config.hidden_size

    def init_state(self, num_rows: int, device: torch.device | str = "cpu") -> LSTMState:
        """Zero state for ``num_rows`` sequences: (h, c), each (num_layers, N, H) float32."""
        shape = (self.config.num_layers, num_rows, self.config.hidden_size)
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
        from safetensors import SafetensorError
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
        except (OSError, KeyError, ValueError, TypeError, ConfigError, DataError, SafetensorError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CheckpointError(f"{path}: unreadable LM folder ({reason}); retrain it with `fusion lm train`") from None
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
