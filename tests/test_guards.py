"""Caption guards: no sound words for a clip without audio, no repeated content pair, no dangling end."""

from __future__ import annotations

import torch

from fusion.decoding.beam_search import beam_search
from fusion.decoding.guards import (
    NoDanglingEndProcessor,
    NoRepeatBigramProcessor,
    SuppressOnRowsProcessor,
    caption_guards,
    word_ids,
)
from fusion.decoding.processors import apply_processors
from fusion.decoding.scorer import BatchInputs, DecodeContext, bind_inputs
from fusion.features import FeatureRecord
from fusion.text import Vocabulary
from tests.builders import MarkovScorer

VOCAB = Vocabulary.build(["a classroom a teacher is heard to the left to the right", "a dog barks in a public"])
W = VOCAB.index


def ids(*words: str) -> list[int]:
    return [VOCAB.bos_id, *[W(w) for w in words]]


def banned(processor, *prefixes: tuple[str, ...]) -> list[set[str]]:
    """Per prefix, the words ``processor`` bans next (prefixes of one length form one batch)."""
    tokens = torch.tensor([ids(*p) for p in prefixes])  # (N, t)
    scores = processor(tokens, torch.zeros(len(prefixes), len(VOCAB)))
    return [{VOCAB.word(i) for i in torch.nonzero(torch.isinf(row)).flatten().tolist()} for row in scores]


def test_sound_words_are_banned_only_on_rows_without_audio() -> None:
    rows = torch.tensor([False, True])
    proc = SuppressOnRowsProcessor(word_ids(VOCAB, {"heard", "barks", "nonsense"}), rows)
    assert banned(proc, ("a",), ("a",)) == [set(), {"heard", "barks"}]


def test_a_content_pair_may_not_repeat_but_function_pairs_may() -> None:
    proc = NoRepeatBigramProcessor(word_ids(VOCAB, {"a", "to", "the", "is", "in"}))
    got = [banned(proc, p)[0] for p in (("a", "classroom", "a"), ("to", "the", "left", "to"),
                                         ("a", "teacher", "is", "heard", "a"))]
    assert got == [{"classroom"}, set(), {"teacher"}]


def test_no_caption_ends_on_an_article_or_preposition() -> None:
    proc = NoDanglingEndProcessor(word_ids(VOCAB, {"a", "the", "to", "in"}), VOCAB.eos_id, max_len=4)
    got = [banned(proc, p)[0] for p in (("a", "dog", "barks", "in"), ("a", "dog"), ("a", "dog", "barks"))]
    assert got[0] == {"<eos>"} and got[1] == set()
    assert got[2] == {"a", "the", "to", "in"}  # the 4th word is the last one allowed: it may not dangle


def test_guarded_beam_search_never_loops_dangles_or_hears_without_audio() -> None:
    """A toy captioner that loves "a classroom a classroom ... a" and "is heard"."""
    table = torch.full((len(VOCAB), len(VOCAB)), -8.0)  # (V, V) next-word log-probs given the last word
    for prev, nxt, logp in [("<bos>", "a", -0.1), ("a", "classroom", -0.1), ("classroom", "a", -0.1),
                            ("a", "<eos>", -0.2), ("a", "teacher", -1.0), ("teacher", "<eos>", -0.1),
                            ("classroom", "is", -0.3), ("is", "heard", -0.1), ("heard", "<eos>", -0.5),
                            ("classroom", "<eos>", -1.0)]:
        table[W(prev), W(nxt)] = logp
    tables = torch.stack([table, table])  # (2 videos, V, V)
    audio_present = torch.tensor([True, False])
    guards = caption_guards(VOCAB, eos_id=VOCAB.eos_id, max_len=8, audio_present=audio_present, beam_size=3)

    def decode(processors: list) -> list[str]:
        toy_videos = BatchInputs(records=[FeatureRecord(id=str(v), frames=None, audio=None) for v in (0, 1)])
        caption = bind_inputs(MarkovScorer(tables), toy_videos)  # the scorer holds which toy video each row is
        hyps = beam_search({"caption": caption}, {"caption": 1.0}, DecodeContext(batch_size=2, beam_size=3),
                           bos_id=VOCAB.bos_id, eos_id=VOCAB.eos_id, max_len=8, processors=processors,
                           decode_words=VOCAB.decode)
        return [h[0].words for h in hyps]

    free = decode([])
    assert any("a classroom a classroom" in c or c.endswith(" a") for c in free), free  # what the guards stop
    with_audio, without_audio = decode(guards)
    for caption in (with_audio, without_audio):
        words = caption.split()
        pairs = list(zip(words, words[1:]))
        assert len(pairs) == len(set(pairs)) and words[-1] not in {"a", "the", "to", "in"}, caption
    assert "heard" in with_audio.split() and "heard" not in without_audio.split(), (with_audio, without_audio)


def test_guards_are_on_by_default_and_switch_off() -> None:
    from fusion.decoding.config import DecodeConfig, resolve_decode_config

    config = DecodeConfig()
    assert config.no_sound_without_audio and config.no_repeat_bigram and config.no_dangling_end
    off = resolve_decode_config(None, {"no_sound_without_audio": False, "no_repeat_bigram": False})
    assert not off.no_sound_without_audio and not off.no_repeat_bigram and off.no_dangling_end
    guards = caption_guards(VOCAB, eos_id=2, max_len=5, audio_present=torch.tensor([True]), beam_size=2,
                            no_sound_without_audio=False, no_repeat_bigram=False, no_dangling_end=False)
    assert guards == []
    scores = torch.zeros(2, len(VOCAB))
    assert torch.equal(apply_processors(guards, torch.tensor([ids("a"), ids("a")]), scores), scores)
