"""The S2VT from text: real-shaped noise pools, synthesis, training on text alone, the caption scorer."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fusion.concept_s2vt.model import (ConceptCaptionScorer, ConceptInputs, ConceptS2VTConfig, load_model, save_model,
                                       train_concept_s2vt)
from fusion.data import collate
from fusion.concept_s2vt.synth import EvidencePools, Synthesizer, measure_pools
from fusion.decoding.beam_search import beam_search
from fusion.decoding.scorer import BatchInputs, DecodeContext, bind_inputs
from fusion.errors import CheckpointError, DataError
from fusion.features import FeatureRecord
from fusion.text import Vocabulary

KEYS = {"visual": ["dog", "guitar", "car"], "audio": ["dog", "guitar", "speech"]}
FORMS = {"dog": "dog", "dogs": "dog", "guitar": "guitar", "car": "car", "talking": "speech"}


def _record(clip: str, visual: list[float], audio: list[float] | None) -> FeatureRecord:
    return FeatureRecord(id=clip, frames=np.zeros((1, 2), np.float32), audio=None if audio is None else np.zeros((1, 2)),
                         meta={"visual": visual, "audio": audio})


def _evidence(modality: str) -> Any:
    def fn(record: Any) -> Mapping[str, float] | None:
        values = record.meta[modality]
        return None if values is None else dict(zip(KEYS[modality], values))
    return fn


def test_pools_split_named_and_other_keys_and_skip_absent_modalities() -> None:
    items = [(_record("a", [2.5, -1.0, 0.5], [1.0, 0.0, 0.0]), ["two dogs play"]),
             (_record("b", [-0.5, 3.0, 0.0], None), ["a guitar"])]
    named, other = measure_pools(items, _evidence("visual"), FORMS.get)
    assert sorted(named.tolist()) == [2.5, 3.0] and sorted(other.tolist()) == [-1.0, -0.5, 0.0, 0.5]
    named, other = measure_pools(items, _evidence("audio"), FORMS.get)  # clip b has no audio: skipped
    assert named.tolist() == [1.0] and len(other) == 2
    with pytest.raises(DataError, match="no evidence"):
        measure_pools(items[1:], _evidence("audio"), FORMS.get)


def _pools() -> EvidencePools:
    return EvidencePools({"visual": np.array([3.0], np.float32), "audio": np.array([2.0], np.float32)},
                         {"visual": np.array([-1.0], np.float32), "audio": np.array([-2.0], np.float32)}, {})


def test_synthesizer_draws_named_values_at_the_caption_keys() -> None:
    synth = Synthesizer(_pools(), KEYS, FORMS.get, audio_absent_rate=0.0)
    visual, audio = synth.sample("a dog is talking", np.random.default_rng(0))
    assert visual.tolist() == [3.0, -1.0, -1.0] and audio is not None and audio.tolist() == [2.0, -2.0, 2.0]
    never = Synthesizer(_pools(), KEYS, FORMS.get, audio_absent_rate=1.0)
    assert never.sample("a dog", np.random.default_rng(0))[1] is None
    with pytest.raises(DataError, match="audio"):
        Synthesizer(EvidencePools({"visual": np.ones(1)}, {"visual": np.ones(1)}, {}), KEYS, FORMS.get)


def test_trained_on_text_alone_it_reads_the_concepts_of_a_clip(tmp_path: Path) -> None:
    captions = ["a dog runs on the grass", "a man plays the guitar", "a red car drives"] * 20
    vocab = Vocabulary.build(captions)
    synth = Synthesizer(_pools(), KEYS, FORMS.get, audio_absent_rate=0.5)
    config = ConceptS2VTConfig(hidden_size=32, frame_embed_size=16, word_embed_size=16, audio_embed_size=8,
                               dropout=0.0, sentences=None, epochs=15, batch_size=12, lr=1e-2, time_budget_s=120)
    model, history = train_concept_s2vt(captions, vocab, synth, (3, 3), config)
    assert history["steps"] > 0 and history["final_loss"] < np.mean(history["losses"][:5])
    inputs = ConceptInputs({m: _evidence(m) for m in KEYS}, KEYS)
    clips = [_record("g", [-1.0, 3.0, -1.0], None), _record("c", [-1.0, -1.0, 3.0], [-2.0, -2.0, -2.0])]
    scorer = bind_inputs(ConceptCaptionScorer(model, inputs), BatchInputs(records=clips))
    hyps = beam_search({"caption": scorer}, {"caption": 1.0}, DecodeContext(batch_size=2, beam_size=3),
                       bos_id=vocab.bos_id, eos_id=vocab.eos_id, decode_words=vocab.decode)
    assert [h[0].words for h in hyps] == ["a man plays the guitar", "a red car drives"]
    save_model(tmp_path / "m", model, config, vocab, {"input_dims": [3, 3]})
    loaded, info, loaded_vocab = load_model(tmp_path / "m")
    batch = collate([inputs.record(c) for c in clips], 3, 3, tokens=[vocab.encode("a dog")] * 2)
    assert loaded_vocab.words == vocab.words and info["config"]["hidden_size"] == 32
    assert torch.equal(loaded(batch), model(batch))
    with pytest.raises(CheckpointError, match="no S2VT-from-text model"):
        load_model(tmp_path / "absent")
