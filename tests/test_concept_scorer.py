"""The concept scorers (visual-noun verifier, zero-shot audio) and the visual scorer's registration."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from fusion.concepts import VISUAL_SOURCES, ConceptEvidence
from fusion.concepts.links import ConceptLinks, LinkEntry
from fusion.decoding.beam_search import beam_search
from fusion.decoding.concept_scorer import ConceptScorer
from fusion.decoding.scorer import BatchInputs, DecodeContext
from fusion.features import FeatureRecord

WORDS = ["<pad>", "<bos>", "<eos>", "<unk>", "a", "dog", "dogs", "cat", "heard", "runs"]


def _links() -> ConceptLinks:
    entries = [LinkEntry("dog", "n", ("dog", "dogs"), {"imagenet": (0, 1)}), LinkEntry("cat", "n", ("cat",), {"imagenet": (2,)})]
    return ConceptLinks(entries, {"imagenet": ["n1 poodle", "n2 beagle", "n3 tabby", "n4 car"]})


def _record(i: int, probs: list[float] | None, audio: bool = True) -> FeatureRecord:
    posteriors = {"frames/imagenet": np.asarray(probs, np.float32)} if probs is not None else {}
    return FeatureRecord(id=str(i), frames=np.zeros((2, 3), np.float32), audio=np.zeros((2, 2), np.float32) if audio else None,
                         posteriors=posteriors)


class TableScorer:
    """A toy LM: the same next-token log-probs for every row, given the last token."""

    def __init__(self, table: Tensor) -> None:
        self.table = table  # (V, V)

    def init_state(self, ctx: DecodeContext) -> None:
        return None

    def score(self, tokens: Tensor, state: None) -> tuple[Tensor, None]:
        return self.table[tokens[:, -1]], state

    def select_state(self, state: None, idx: Tensor) -> None:
        return state


def test_evidence_per_word_first_mention_and_negative_scale() -> None:
    evidence = ConceptEvidence(_links(), VISUAL_SOURCES)
    scorer = ConceptScorer(WORDS, evidence, negative_scale=0.5)
    records = [_record(0, [0.45, 0.45, 0.05, 0.05]), _record(1, None)]
    per_video = scorer.video_scores(records)  # (2, V)
    dog = np.log(0.9 / 0.1) - np.log(0.5 / 0.5)  # mass 0.9 on dog's 2 of 4 classes, uniform share 0.5
    cat = 0.5 * (np.log(0.05 / 0.95) - np.log(0.25 / 0.75))
    assert torch.allclose(per_video[0, [5, 6, 7]], torch.tensor([dog, dog, cat], dtype=torch.float32), atol=1e-4)
    assert per_video[1].abs().sum() == 0  # no frame posteriors: no evidence
    ctx = DecodeContext(batch_size=2, beam_size=1)
    state = scorer.with_inputs(BatchInputs(records=records)).init_state(ctx)
    scores, state = scorer.score(torch.tensor([[1, 5], [1, 5]]), state)  # both rows just said "dog"
    assert scores[0, 6] == 0 and scores[0, 5] == 0  # dog's support counts once ("dogs" too)
    assert torch.isclose(scores[0, 7], torch.tensor(cat, dtype=torch.float32))  # contradiction at every mention


def test_zero_weight_equals_absent_and_support_changes_caption() -> None:
    table = torch.full((len(WORDS), len(WORDS)), -10.0)
    table[1, 4] = 0.0  # <bos> -> a
    table[4, 7], table[4, 5] = -0.5, -1.0  # a -> cat preferred over dog
    table[5, 9] = table[7, 9] = table[9, 2] = 0.0  # -> runs -> <eos>
    records = [_record(0, [0.45, 0.45, 0.05, 0.05])]
    ctx = DecodeContext(batch_size=1, beam_size=3)
    visual = ConceptScorer(WORDS, ConceptEvidence(_links(), VISUAL_SOURCES)).with_inputs(BatchInputs(records=records))
    decode = lambda scorers, weights: beam_search(scorers, weights, ctx, bos_id=1, eos_id=2, max_len=5,  # noqa: E731
                                                  decode_words=lambda ids: " ".join(WORDS[i] for i in ids))[0][0]
    blind = decode({"lm": TableScorer(table)}, {"lm": 1.0})
    off = decode({"lm": TableScorer(table), "visual": visual}, {"lm": 1.0, "visual": 0.0})
    on = decode({"lm": TableScorer(table), "visual": visual}, {"lm": 1.0, "visual": 1.0})
    assert blind.words == off.words == "a cat runs" and off.total == blind.total
    assert on.words == "a dog runs"  # the frames show dogs
    assert abs(sum(on.weighted_scores().values()) - on.total) < 1e-4


def test_visual_verifier_is_a_registered_scorer_any_run_can_use() -> None:
    from fusion.decoding.config import DecodeConfig
    from fusion.decoding.registry import scorer_spec

    spec = scorer_spec("visual")
    config = DecodeConfig(visual_weight=1.5, visual_negative_scale=0.0)
    assert spec.active(config) and not spec.active(DecodeConfig())
    assert spec.label == "seen" and spec.inputs == ("records",)
