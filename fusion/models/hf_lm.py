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

Cost: with ``use_cache`` (the default) each row keeps the model's key/value cache of its
prefix, reordered with the beam, so a step runs the LM only over the subwords the rows just
consumed (first subwords of all words at once) and, for each word with more than one
subword, over that word's subwords on top of the row's cache, in chunks of ``chunk_rows``
sequences. Without the cache (``use_cache=False``, also for models whose cache cannot be
passed back) every step re-runs each row's whole prefix; both give the same scores up to
float rounding (``tests/test_lm_hf_cache.py``; ``scripts/bench_lm_cache.py`` times them).
Rows consume different numbers of subwords per step, so the cache holds padding slots,
masked out by the attention mask (and squeezed out after every step), and every subword gets
its position id from the count of real subwords before it, exactly as in the full prefix.

Loading: a local folder (``save_pretrained`` output) or, for users who are online, a hub id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fusion.errors import WeightsError
from fusion.models.bound_lm import LOG_ZERO
from fusion.models.hf_cache import (
    HFState,
    KVCache,
    cache_argument_name,
    compact,
    from_model_cache,
    pad,
    positions,
    to_model_cache,
)
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
        use_cache: keep each row's key/value cache between steps instead of re-running its
            whole prefix (same scores; False for models whose cache cannot be passed back).
    """

    model: Any
    tokenizer: Any
    word_prefix: str = " "
    chunk_rows: int = 512
    use_cache: bool = True

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

    @torch.no_grad()
    def forward_cached(self, ids: Tensor, mask: Tensor, position_ids: Tensor,
                       past: KVCache | None) -> tuple[Tensor, KVCache]:
        """Run new subwords on top of a key/value cache.

        Args:
            ids: long (N, W) new subword ids (padding slots hold any id).
            mask: long (N, S + W) 1 for real subwords over the cache's S slots and the W new ones.
            position_ids: long (N, W) position id of each new subword.
            past: the cache of the S earlier slots (None: S = 0).

        Returns:
            logits float32 (N, W, V_sub) and the cache of all S + W slots.
        """
        name = cache_argument_name(self.model)
        kwargs = {name: to_model_cache(past)} if past is not None else {}
        out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                         position_ids=position_ids.to(self.device), use_cache=True, **kwargs)
        return out.logits.float(), from_model_cache(getattr(out, name))


class BoundHF:
    """:class:`HFWordLM` scoring a caption vocabulary (see :class:`fusion.models.bound_lm.BoundLM`).

    The state (:class:`HFState`) is each row's subword prefix, starting with BOS, and, with
    ``lm.use_cache``, the model's key/value cache of it.
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
        self.multi_by_length: dict[int, list[int]] = {}  # subwords after the first -> multi-subword words
        for i in self.multi:
            self.multi_by_length.setdefault(len(self.pieces[i]) - 1, []).append(i)
        self.spelled = [i for i, p in enumerate(self.pieces) if p]
        logger.info("HF LM on %d caption words: %d single-subword, %d multi-subword", len(vocab), len(self.single), len(self.multi))

    def init_state(self, num_rows: int, device: torch.device | str = "cpu") -> HFState:
        """Empty prefixes (BOS is added when the caption ``<bos>`` is consumed)."""
        return HFState([[] for _ in range(num_rows)])

    def step(self, prev: Tensor, state: HFState) -> tuple[Tensor, HFState]:
        """Consume caption ids ``prev`` (N,) long; return (N, V) float32 next-word log-probs on ``prev``'s device."""
        new = [self._spell(int(p)) for p in prev.tolist()]
        prefixes = [row + piece for row, piece in zip(state.prefixes, new)]
        if not self.lm.use_cache:
            return self.word_log_probs(prefixes).to(prev.device), HFState(prefixes)
        scores, state = self._cached_step(new, prefixes, state)
        return scores.to(prev.device), state

    def _spell(self, caption_id: int) -> list[int]:
        if caption_id == self.vocab.bos_id:
            return [self.bos]
        return self.pieces[caption_id]  # an <unk>/<pad> in a prefix adds nothing

    def _finish(self, scores: Tensor) -> Tensor:
        """``<unk>`` at each row's lowest spelled-word score; everything at least LOG_ZERO."""
        scores[:, self.vocab.unk_id] = scores[:, self.spelled].min(dim=1).values
        return scores.clamp_min(LOG_ZERO)

    def word_log_probs(self, prefixes: list[list[int]]) -> Tensor:
        """Log-probs (N, V) float32 of every caption word after each subword prefix (non-empty
        lists), from the whole prefixes (the path without the cache)."""
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
        return self._finish(scores)

    def _cached_step(self, new: list[list[int]], prefixes: list[list[int]], state: HFState) -> tuple[Tensor, HFState]:
        """Scores (N, V) after each row consumed its ``new`` subwords on top of ``state``'s cache."""
        if any(not p for p in prefixes):
            raise ValueError("the HF LM scores a row only after <bos>: every prefix must be non-empty")
        if not any(new):  # no row consumed a subword (all <unk>): nothing changes
            return state.scores, HFState(prefixes, state.past, state.mask, state.scores)
        device = self.lm.device
        ids, new_mask = pad(new)  # (N, W)
        width = ids.shape[1]
        mask = new_mask if state.mask is None else torch.cat([state.mask, new_mask], 1)  # (N, S + W)
        logits, past = self.lm.forward_cached(ids, mask, positions(mask, width), state.past)  # (N, W, V_sub)
        last = (new_mask.sum(1) - 1).clamp(min=0).to(device)  # (N,) each row's last new slot
        first = torch.log_softmax(logits[torch.arange(len(new), device=device), last], dim=-1)  # (N, V_sub)
        scores = torch.full((len(new), len(self.vocab)), LOG_ZERO, device=device)
        scores[:, self.single] = first[:, self.single_first.to(device)]
        past, mask = compact(past, mask)
        rows = [r for r, piece in enumerate(new) if piece]
        self._multi_scores(scores, first, rows, past, mask)
        scores = self._finish(scores)
        kept = [r for r, piece in enumerate(new) if not piece]  # rows that consumed nothing keep their scores
        if kept and state.scores is not None:
            keep = torch.tensor(kept, device=device)
            scores[keep] = state.scores.to(device)[keep]
        return scores, HFState(prefixes, past, mask, scores)

    def _multi_scores(self, scores: Tensor, first: Tensor, rows: list[int], past: KVCache, mask: Tensor) -> None:
        """Fill ``scores[r, w]`` (in place) for rows ``rows`` and every multi-subword word ``w``.

        The word's first subword is scored by ``first`` (N, V_sub); the others by running its
        subwords but the last on top of the row's cache (``past`` over ``mask`` (N, S) slots),
        words of the same length together (no padding).
        """
        for words in self.multi_by_length.values():
            self._multi_group_scores(scores, first, [(r, w) for r in rows for w in words], past, mask)

    def _multi_group_scores(self, scores: Tensor, first: Tensor, pairs: list[tuple[int, int]], past: KVCache,
                            mask: Tensor) -> None:
        """:meth:`_multi_scores` for (row, word) ``pairs`` whose words have the same number of subwords."""
        device = scores.device
        for start in range(0, len(pairs), self.lm.chunk_rows):
            chunk = pairs[start : start + self.lm.chunk_rows]
            row_idx = torch.tensor([r for r, _ in chunk], device=device)
            word_idx = torch.tensor([w for _, w in chunk], device=device)
            ids, cont_mask = pad([self.pieces[w][:-1] for _, w in chunk])  # (P, K)
            targets, _ = pad([self.pieces[w][1:] for _, w in chunk])  # (P, K)
            full_mask = torch.cat([mask.index_select(0, row_idx.cpu()), cont_mask], 1)  # (P, S + K)
            sub_past = [(k.index_select(0, row_idx), v.index_select(0, row_idx)) for k, v in past]
            logits, _ = self.lm.forward_cached(ids, full_mask, positions(full_mask, ids.shape[1]), sub_past)
            log_probs = torch.log_softmax(logits, dim=-1)  # (P, K, V_sub)
            rest = log_probs.gather(2, targets.to(device)[..., None])[..., 0] * cont_mask.to(device)  # (P, K)
            heads = torch.tensor([self.pieces[w][0] for _, w in chunk], device=device)
            scores[row_idx, word_idx] = first[row_idx, heads] + rest.sum(1)

    def select_state(self, state: HFState, idx: Tensor) -> HFState:
        """Reorder the rows (prefixes, cache and last scores) after beam pruning."""
        return state.select(idx)
