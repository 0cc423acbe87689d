"""Caption guards: masks that keep a caption from saying what it cannot know or from looping.

Three rules in the style of :mod:`fusion.decoding.processors` (they only set tokens to
``-inf``, so a hypothesis's per-scorer breakdown still sums to its total), each a
``DecodeConfig`` switch, on by default for every run:

- ``no_sound_without_audio``: on the rows of a video without an audio stream, no word that
  says something is heard (:data:`SOUND_CLAIM_WORDS`: "heard", "sound", "barking", ...). A
  model trained on clips with sound otherwise writes "... and a baby can be heard" for a
  silent-film clip while the verifier says nothing is heard.
- ``no_repeat_bigram``: no word pair twice in one caption ("a classroom a classroom"),
  except pairs of two function words ("to the ... to the", "and a ... and a"), which real
  captions repeat: with this exception 1.0% of the benchmark's and 0.4% of MSVD's training
  captions repeat a pair, against 3.2% and 0.5% counting every pair.
- ``no_dangling_end``: no caption ends on an article, a preposition or a conjunction
  (:data:`DANGLING_END_WORDS`; "up", "down", "around", "on", "over" end real captions and are
  not in it): EOS is banned after one, and one is banned as the last word the length allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from fusion.decoding.processors import NEG_INF, Processor, ban_pairs

if TYPE_CHECKING:
    from fusion.text import Vocabulary

# Words that say a sound is heard: hearing, sound itself, and verbs of sound-only events (the
# cue verbs of the benchmark's ESC-10 sources, fusion.benchmark, that no clip can show).
SOUND_CLAIM_WORDS = frozenset(
    "heard hear hears hearing listen listens listening audible sound sounds noise noises noisy loud loudly "
    "bark barks barking cry cries crying wail wails wailing tick ticks ticking sneeze sneezes sneezing "
    "crowing crackle crackles crackling buzz buzzes buzzing".split()
)
ARTICLES = frozenset({"a", "an", "the"})
# Never the last word of a caption (MSVD's 48,774 training captions: 8 end on one of these).
DANGLING_END_WORDS = ARTICLES | frozenset(
    "of to with from for into onto at and or while as than but because if".split()
)
# Pairs of two of these may repeat in a caption ("moves to the left to the sound of ...").
FUNCTION_WORDS = DANGLING_END_WORDS | frozenset(
    "in on by is are was were be it its his her their this that some".split()
)


def word_ids(vocab: Vocabulary, words: Iterable[str]) -> list[int]:
    """The ids of those ``words`` the vocabulary holds."""
    return sorted(vocab.index(w) for w in words if w in vocab)


class SuppressOnRowsProcessor:
    """Ban ``token_ids`` on the rows where ``rows`` is True (e.g. the beams of videos without audio).

    Args:
        token_ids: the banned ids.
        rows: bool (N,), one flag per beam row (videos outer, beams inner).
    """

    def __init__(self, token_ids: Sequence[int], rows: Tensor) -> None:
        self.token_ids, self.rows = list(token_ids), rows

    def __call__(self, tokens: Tensor, scores: Tensor) -> Tensor:
        if not self.token_ids or not bool(self.rows.any()):
            return scores
        scores = scores.clone()
        banned = scores[self.rows]  # (R, V) rows of videos without audio
        banned[:, self.token_ids] = NEG_INF
        scores[self.rows] = banned
        return scores


class NoRepeatBigramProcessor:
    """Ban a word that would repeat a pair already in the prefix, unless both words are function words.

    Args:
        function_ids: ids of :data:`FUNCTION_WORDS` in the vocabulary.
    """

    def __init__(self, function_ids: Iterable[int]) -> None:
        self.function_ids = frozenset(function_ids)

    def __call__(self, tokens: Tensor, scores: Tensor) -> Tensor:
        if tokens.shape[1] < 3:  # BOS and one word: no pair yet
            return scores
        rows, cols = [], []
        for r, seq in enumerate(tokens[:, 1:].tolist()):  # without BOS
            last = seq[-1]
            for i in range(len(seq) - 1):
                nxt = seq[i + 1]
                if seq[i] == last and not (last in self.function_ids and nxt in self.function_ids):
                    rows.append(r)
                    cols.append(nxt)
        return ban_pairs(scores, rows, cols)


class NoDanglingEndProcessor:
    """No caption ends on an article, preposition or conjunction.

    Args:
        dangling_ids: ids of :data:`DANGLING_END_WORDS` in the vocabulary.
        eos_id: the end-of-sentence id.
        max_len: the most words per caption (the word at ``max_len`` must not dangle, since
            EOS is forced after it).
    """

    def __init__(self, dangling_ids: Sequence[int], eos_id: int, max_len: int) -> None:
        self.dangling_ids = torch.tensor(sorted(set(dangling_ids)), dtype=torch.long)
        self.eos_id, self.max_len = eos_id, max_len

    def __call__(self, tokens: Tensor, scores: Tensor) -> Tensor:
        if not len(self.dangling_ids):
            return scores
        ids = self.dangling_ids.to(tokens.device)
        scores = scores.clone()
        if tokens.shape[1] - 1 == self.max_len - 1:  # the next word is the last one allowed
            scores[:, ids] = NEG_INF
        ends_dangling = torch.isin(tokens[:, -1], ids)  # (N,)
        scores[ends_dangling, self.eos_id] = NEG_INF
        return scores


def caption_guards(vocab: Vocabulary, *, eos_id: int, max_len: int, audio_present: Tensor, beam_size: int,
                   no_sound_without_audio: bool = True, no_repeat_bigram: bool = True,
                   no_dangling_end: bool = True) -> list[Processor]:
    """The guards a decode configuration turns on, for one batch.

    Args:
        vocab: the caption vocabulary.
        eos_id: end-of-sentence id.
        max_len: the most words per caption.
        audio_present: bool (B,), whether each video has an audio stream.
        beam_size: beams per video (rows are videos outer, beams inner).
        no_sound_without_audio / no_repeat_bigram / no_dangling_end: the switches.
    """
    guards: list[Processor] = []
    if no_sound_without_audio:
        rows = (~audio_present.bool()).repeat_interleave(beam_size)  # (B*K,)
        guards.append(SuppressOnRowsProcessor(word_ids(vocab, SOUND_CLAIM_WORDS), rows))
    if no_repeat_bigram:
        guards.append(NoRepeatBigramProcessor(word_ids(vocab, FUNCTION_WORDS)))
    if no_dangling_end:
        guards.append(NoDanglingEndProcessor(word_ids(vocab, DANGLING_END_WORDS), eos_id, max_len))
    return guards
