"""Any Hugging Face causal LM as a word-level language model for fusion.

The caption model speaks words; a pretrained causal LM (GPT-2, Llama, ...) speaks subword
tokens. :class:`HFWordLM` bridges them: a caption word ``w`` is the subword sequence of
``word_prefix + w`` (``" dog"`` for GPT-2's byte-level BPE, where a leading space marks a
word start), and

    log p(w | prefix) = sum_j log p_LM(s_j | prefix subwords, s_0 .. s_{j-1})

however many subwords ``w`` has. A sentence starts with the tokenizer's BOS token (GPT-2:
``<|endoftext|>``) and ends with its EOS token (the caption ``<eos>``). ``<pad>`` and
``<bos>`` cannot be produced; the caption ``<unk>`` has no text, so it gets the lowest score
of any real word in that row (never better than a word the LM can spell).

Cost: each step runs the LM once over every row's prefix (first subwords of all words at
once) and once over prefix + subwords for each word with more than one subword, in chunks
of ``chunk_rows`` sequences. Exact, and fine for small vocabularies or GPUs; a large
caption vocabulary on a CPU is slow.

Loading: a local folder (``save_pretrained`` output) or, for users who are online, a hub id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fusion.decoding.lm_scorer import LOG_ZERO
from fusion.errors import WeightsError
from fusion.text import Vocabulary

logger = logging.getLogger(__name__)


@dataclass
class HFWordLM:
    """A causal LM and its tokenizer, scored at the word level.

    Attributes:
        model: a ``transformers`` causal LM (``logits`` (B, L, V_sub) from ``input_ids``).
        tokenizer: its tokenizer (``__call__``/``encode`` with ``add_special_tokens=False``).
        word_prefix: prepended to each word before tokenising (``" "`` for GPT-2-style BPE).
        chunk_rows: sequences per forward pass when scoring multi-subword words.
    """

    model: Any
    tokenizer: Any
    word_prefix: str = " "
    chunk_rows: int = 512

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: torch.device | str = "cpu", **kwargs: Any) -> "HFWordLM":
        """Load ``AutoModelForCausalLM`` + ``AutoTokenizer`` from a folder or a hub id.

        Raises:
            WeightsError: not a loadable model (missing folder, offline and not cached, ...).
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        local = Path(name_or_path).is_dir()
        try:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local)
            model = AutoModelForCausalLM.from_pretrained(name_or_path, local_files_only=local)
        except (OSError, ValueError) as err:
            where = "folder" if local else "hub id (needs internet, or a folder made with save_pretrained)"
            raise WeightsError(f"{name_or_path}: cannot load a Hugging Face causal LM from this {where}: "
                               f"{str(err).splitlines()[0]}") from None
        model.to(device).eval()
        return cls(model=model, tokenizer=tokenizer, **kwargs)

    @property
    def device(self) -> torch.device:
        """Where the model's parameters live."""
        return next(self.model.parameters()).device

    def word_tokens(self, word: str) -> list[int]:
        """Subword ids of one caption word (with ``word_prefix``)."""
        return list(self.tokenizer.encode(self.word_prefix + word, add_special_tokens=False))

    def special_id(self, kind: str) -> int:
        """The tokenizer's BOS or EOS id (BOS falls back to EOS, as GPT-2 uses one token for both).

        Raises:
            WeightsError: the tokenizer has neither.
        """
        tok = self.tokenizer
        ids = [tok.bos_token_id, tok.eos_token_id] if kind == "bos" else [tok.eos_token_id]
        for i in ids:
            if i is not None:
                return int(i)
        raise WeightsError(f"the Hugging Face tokenizer has no {kind.upper()} token; set tokenizer.{kind}_token")

    def bind(self, vocab: Vocabulary) -> "BoundHF":
        """This LM scoring the words of a caption vocabulary."""
        return BoundHF(self, vocab)

    @torch.no_grad()
    def sequence_log_probs(self, sequences: list[list[int]]) -> list[Tensor]:
        """Next-subword log-probs at every position of each sequence (batched, right-padded).

        Args:
            sequences: subword id lists, each non-empty.

        Returns:
            One (L_i, V_sub) float32 tensor per sequence: row j is log p(. | seq[: j + 1]).
        """
        out: list[Tensor] = []
        for start in range(0, len(sequences), self.chunk_rows):
            chunk = sequences[start : start + self.chunk_rows]
            width = max(len(s) for s in chunk)
            ids = torch.zeros(len(chunk), width, dtype=torch.long)
            mask = torch.zeros(len(chunk), width, dtype=torch.long)
            for i, s in enumerate(chunk):
                ids[i, : len(s)] = torch.tensor(s)
                mask[i, : len(s)] = 1
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits  # (B, L, V_sub)
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            out.extend(log_probs[i, : len(s)] for i, s in enumerate(chunk))
        return out


class BoundHF:
    """:class:`HFWordLM` scoring a caption vocabulary (see :class:`fusion.decoding.lm_scorer.BoundLM`).

    The state is the subword prefix of each row (a list of id lists), starting with BOS.
    """

    def __init__(self, lm: HFWordLM, vocab: Vocabulary) -> None:
        self.lm = lm
        self.vocab = vocab
        self.bos = lm.special_id("bos")
        eos = lm.special_id("eos")
        self.pieces: list[list[int]] = []
        for i, word in enumerate(vocab.words):
            if i == vocab.eos_id:
                self.pieces.append([eos])
            elif i in (vocab.pad_id, vocab.bos_id, vocab.unk_id):
                self.pieces.append([])  # not spelled: scored specially
            else:
                pieces = lm.word_tokens(word)
                if not pieces:
                    raise WeightsError(f"the tokenizer maps the caption word {word!r} to no token")
                self.pieces.append(pieces)
        self.single = [i for i, p in enumerate(self.pieces) if len(p) == 1]
        self.single_first = torch.tensor([self.pieces[i][0] for i in self.single], dtype=torch.long)
        self.multi = [i for i, p in enumerate(self.pieces) if len(p) > 1]
        logger.info("HF LM on %d caption words: %d single-subword, %d multi-subword", len(vocab), len(self.single), len(self.multi))

    def init_state(self, num_rows: int, device: torch.device | str = "cpu") -> list[list[int]]:
        """Empty prefixes (BOS is added when the caption ``<bos>`` is consumed)."""
        return [[] for _ in range(num_rows)]

    def step(self, prev: Tensor, state: list[list[int]]) -> tuple[Tensor, list[list[int]]]:
        """Consume caption ids ``prev`` (N,) long; return (N, V) float32 next-word log-probs on ``prev``'s device."""
        prefixes = [row + self._spell(int(p)) for row, p in zip(state, prev.tolist())]
        scores = self.word_log_probs(prefixes)
        return scores.to(prev.device), prefixes

    def _spell(self, caption_id: int) -> list[int]:
        if caption_id == self.vocab.bos_id:
            return [self.bos]
        return self.pieces[caption_id]  # an <unk>/<pad> in a prefix adds nothing

    def word_log_probs(self, prefixes: list[list[int]]) -> Tensor:
        """Log-probs (N, V) float32 of every caption word after each subword prefix (non-empty lists)."""
        n, v = len(prefixes), len(self.vocab)
        scores = torch.full((n, v), LOG_ZERO)
        first = torch.stack([lp[-1] for lp in self.lm.sequence_log_probs(prefixes)]).cpu()  # (N, V_sub)
        scores[:, self.single] = first[:, self.single_first]
        pairs = [(r, w) for r in range(n) for w in self.multi]
        seqs = [prefixes[r] + self.pieces[w][:-1] for r, w in pairs]
        for (r, w), lp in zip(pairs, self.lm.sequence_log_probs(seqs) if seqs else []):
            start = len(prefixes[r]) - 1  # row predicting the word's first subword
            pieces = torch.tensor(self.pieces[w])
            scores[r, w] = lp[start : start + len(pieces)].cpu().gather(1, pieces[:, None]).sum()
        spelled = [i for i, p in enumerate(self.pieces) if p]
        scores[:, self.vocab.unk_id] = scores[:, spelled].min(dim=1).values
        return scores.clamp_min(LOG_ZERO)

    def select_state(self, state: list[list[int]], idx: Tensor) -> list[list[int]]:
        """Reorder the prefixes."""
        return [list(state[i]) for i in idx.tolist()]
