"""The S2VT from text: an S2VT whose inputs are concept evidence, trained on synthesised inputs.

:func:`train_concept_s2vt` trains :class:`fusion.models.s2vt.S2VT` (``audio_mode: early``: one
frame step holding the visual evidence vector, the audio evidence vector beside it or the learned
"absent" input) on corpus captions, each with a fresh synthetic input per epoch
(:class:`fusion.concept_s2vt.synth.Synthesizer`). :class:`ConceptInputs` turns a real clip's
feature record into the same input, so at test time the model reads the real posteriors of
frames and sound. :class:`ConceptCaptionScorer` is the model as the beam search's ``"caption"``
scorer, fused with the LM and the verifiers like the zero-shot model's other scorers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fusion.concept_s2vt.synth import MODALITIES, Synthesizer
from fusion.data import Batch, collate
from fusion.decoding.scorer import BatchInputs
from fusion.decoding.scorers import CaptionScorer
from fusion.errors import CheckpointError
from fusion.features import FeatureRecord
from fusion.io import atomic_write_json
from fusion.models.s2vt import S2VT, S2VTConfig
from fusion.text import Vocabulary

logger = logging.getLogger(__name__)


@dataclass
class ConceptS2VTConfig:
    """Size and training of the S2VT from text (sized for <= ~10 min on 2 CPU cores).

    Attributes:
        hidden_size / frame_embed_size / word_embed_size / audio_embed_size: S2VT widths.
        dropout: S2VT dropout.
        sentences: corpus captions trained on (a seeded sample); None = all.
        epochs: passes over them (each with fresh synthetic inputs).
        batch_size / lr / grad_clip: optimisation.
        max_words: longer captions are cut.
        time_budget_s: training stops after this many seconds (the last full step counts).
        seed: sampling, synthesis and initialisation.
    """

    hidden_size: int = 256
    frame_embed_size: int = 256
    word_embed_size: int = 128
    audio_embed_size: int = 64
    dropout: float = 0.2
    sentences: int | None = 40_000
    epochs: int = 2
    batch_size: int = 64
    lr: float = 3e-3
    grad_clip: float = 1.0
    max_words: int = 16
    time_budget_s: float = 480.0
    seed: int = 0

    def s2vt(self) -> S2VTConfig:
        """The S2VT architecture config."""
        return S2VTConfig(hidden_size=self.hidden_size, frame_embed_size=self.frame_embed_size,
                          word_embed_size=self.word_embed_size, audio_mode="early",
                          audio_embed_size=self.audio_embed_size, dropout=self.dropout)


class ConceptInputs:
    """A feature record -> the S2VT-from-text input record (visual and audio evidence vectors).

    Args:
        evidence: modality (``visual`` / ``audio``) -> record -> key -> evidence (None = absent).
        keys: modality -> the input's keys, in order.
    """

    def __init__(self, evidence: Mapping[str, Callable[[Any], Mapping[str, float] | None]],
                 keys: Mapping[str, Sequence[str]]) -> None:
        self.evidence = dict(evidence)
        self.keys = {m: list(keys[m]) for m in MODALITIES}

    def vector(self, modality: str, record: Any) -> np.ndarray | None:
        """(K,) float32 evidence in input order (0 for keys without evidence), or None (absent)."""
        values = self.evidence[modality](record)
        if values is None:
            return None
        return np.asarray([values.get(k, 0.0) for k in self.keys[modality]], dtype=np.float32)

    def record(self, record: Any) -> FeatureRecord:
        """The model's input for one clip: frames (1, Kv), audio (1, Ka) or None."""
        visual, audio = self.vector("visual", record), self.vector("audio", record)
        if visual is None:
            visual = np.zeros(len(self.keys["visual"]), np.float32)
        return FeatureRecord(id=record.id, frames=visual[None], audio=None if audio is None else audio[None])

    @property
    def dims(self) -> tuple[int, int]:
        """(Kv, Ka)."""
        return len(self.keys["visual"]), len(self.keys["audio"])


def build_model(config: ConceptS2VTConfig, vocab: Vocabulary, dims: tuple[int, int]) -> S2VT:
    """A fresh S2VT for ``dims`` = (Kv, Ka) concept inputs."""
    return S2VT(config.s2vt(), len(vocab), frame_dim=dims[0], audio_dim=dims[1])


def _synthetic_batch(captions: Sequence[str], synth: Synthesizer, vocab: Vocabulary, dims: tuple[int, int],
                     max_words: int, rng: np.random.Generator) -> Batch:
    records, tokens = [], []
    for n, caption in enumerate(captions):
        visual, audio = synth.sample(caption, rng)
        records.append(FeatureRecord(id=str(n), frames=visual[None], audio=None if audio is None else audio[None]))
        ids = vocab.encode(caption)
        tokens.append(ids[:max_words + 1] + [vocab.eos_id] if len(ids) > max_words + 2 else ids)
    return collate(records, dims[0], dims[1], tokens=tokens, pad_id=vocab.pad_id)


def _fit_input_stats(model: S2VT, captions: Sequence[str], synth: Synthesizer, rng: np.random.Generator) -> None:
    """Standardise the inputs with a synthetic sample's mean / std (as training features would)."""
    draws = [synth.sample(c, rng) for c in captions[:2000]]
    frames = torch.from_numpy(np.stack([v for v, _ in draws]))  # (n, Kv)
    audio = [a for _, a in draws if a is not None]
    model.set_input_stats(frames, torch.from_numpy(np.stack(audio)) if audio else None)


def train_concept_s2vt(captions: Sequence[str], vocab: Vocabulary, synth: Synthesizer, dims: tuple[int, int],
                       config: ConceptS2VTConfig | None = None, progress: Callable[[str], None] | None = None
                       ) -> tuple[S2VT, dict[str, Any]]:
    """Train the S2VT from text on synthesised concept inputs.

    Args:
        captions: corpus captions (sampled to ``config.sentences``).
        vocab: the caption vocabulary (the LM's, so that fusion needs no word mapping).
        synth: draws the inputs.
        dims: (Kv, Ka) input widths.
        config: sizes and training.
        progress: called with a line after each logged step.

    Returns:
        The model (eval mode) and a history (steps, losses, seconds).
    """
    config = config or ConceptS2VTConfig()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    pool = list(captions)
    if config.sentences is not None and config.sentences < len(pool):
        pool = random.Random(config.seed).sample(pool, config.sentences)
    model = build_model(config, vocab, dims)
    _fit_input_stats(model, pool, synth, rng)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = nn.CrossEntropyLoss(ignore_index=vocab.pad_id)
    history: dict[str, Any] = {"losses": [], "steps": 0, "sentences": len(pool)}
    start, order = time.monotonic(), list(range(len(pool)))
    model.train()
    for epoch in range(config.epochs):
        random.Random(config.seed + epoch).shuffle(order)
        for b in range(0, len(order), config.batch_size):
            batch = _synthetic_batch([pool[i] for i in order[b:b + config.batch_size]], synth, vocab, dims,
                                     config.max_words, rng)
            logits: Tensor = model(batch)  # (B, L-1, V)
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), batch.tokens[:, 1:].reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            history["steps"] += 1
            history["losses"].append(loss.item())
            if progress is not None and history["steps"] % 50 == 0:
                progress(f"epoch {epoch + 1} step {history['steps']}: loss {np.mean(history['losses'][-50:]):.3f}")
            if time.monotonic() - start > config.time_budget_s:
                break
        if time.monotonic() - start > config.time_budget_s:
            logger.info("S2VT from text: time budget reached after %d steps", history["steps"])
            break
    history["seconds"] = time.monotonic() - start
    history["final_loss"] = float(np.mean(history["losses"][-50:])) if history["losses"] else math.nan
    model.eval()
    return model, history


MODEL_FILE, CONFIG_FILE, VOCAB_FILE = "model.safetensors", "concept_s2vt.json", "vocab.json"


def save_model(folder: Path, model: S2VT, config: ConceptS2VTConfig, vocab: Vocabulary, info: Mapping[str, Any]) -> None:
    """Write the model folder: weights, config + input keys + provenance, vocabulary (atomically)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{MODEL_FILE}.tmp"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(folder / MODEL_FILE)
    vocab.save(folder / VOCAB_FILE)
    atomic_write_json(folder / CONFIG_FILE, {"config": dataclasses.asdict(config), **info})


def load_model(folder: Path) -> tuple[S2VT, dict[str, Any], Vocabulary]:
    """(model in eval mode, the saved config + info, vocabulary) of a folder :func:`save_model` wrote."""
    from safetensors.torch import load_file

    if not (folder / MODEL_FILE).is_file():
        raise CheckpointError(f"{folder}: no S2VT-from-text model; train one with python -m scripts.concept_s2vt")
    info = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    vocab = Vocabulary.load(folder / VOCAB_FILE)
    model = build_model(ConceptS2VTConfig(**info["config"]), vocab, tuple(info["input_dims"]))
    model.load_state_dict(load_file(str(folder / MODEL_FILE)))
    return model.eval(), info, vocab


class ConceptCaptionScorer(CaptionScorer):
    """The S2VT from text as scorer ``"caption"``: per search it reads the B feature records
    (:meth:`with_inputs`) and turns them into concept inputs through :class:`ConceptInputs`."""

    def __init__(self, model: S2VT, inputs: ConceptInputs, batch: Any | None = None) -> None:
        super().__init__(model, batch)
        self.inputs = inputs

    def with_inputs(self, inputs: BatchInputs) -> ConceptCaptionScorer:
        """This captioner holding the concept batch of ``inputs.records``."""
        records = [self.inputs.record(r) for r in inputs.records]
        return ConceptCaptionScorer(self.model, self.inputs, collate(records, *self.inputs.dims))
