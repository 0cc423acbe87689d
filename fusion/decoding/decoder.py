"""Decode feature records with a trained run: the scorers a run and a decode configuration call for.

:class:`CaptionDecoder` is what ``fusion evaluate``, ``fusion caption``, ``fusion tune``, the
ablation runner and the web app share: it builds, once, every registered scorer that the
configuration turns on (:mod:`fusion.decoding.registry`, in registry order, each by its
spec's ``build``), then decodes any list of feature records in batches of ``batch_size``
videos with the one batched beam search, handing each scorer its batch's inputs first.

Loaded parts (a language model, a verifier) live in a ``shared`` mapping that decoders can
pass on (``shared=``), so a caller that decodes one split under many settings (``fusion
tune``'s grid, a web app's sliders) loads each once.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Sequence

import torch

from fusion.decoding.beam_search import beam_search
from fusion.decoding.config import DecodeConfig
from fusion.decoding.guards import caption_guards
from fusion.decoding.hypothesis import Hypothesis
from fusion.decoding.processors import caption_processors
from fusion.decoding.registry import SCORERS
from fusion.decoding.scorer import DecodeContext, Scorer, bind_inputs
from fusion.decoding.spec import BatchInputs, ScorerParts

if TYPE_CHECKING:
    from fusion.checkpoint import LoadedRun
    from fusion.features import FeatureRecord
    from fusion.verifier import AudioNounVerifier

logger = logging.getLogger(__name__)


class CaptionDecoder:
    """A run's model plus the fused scorers, ready to decode feature records.

    Args:
        run: the loaded run (model, vocabulary, config).
        config: the decode configuration (:func:`fusion.decoding.config.resolve_decode_config`).
        device: where the model runs.
        shared: loaded parts by key (``ScorerParts.shared``) to reuse and add to; None = a new one.
    """

    def __init__(self, run: LoadedRun, config: DecodeConfig, device: torch.device | str = "cpu", *,
                 shared: dict[Hashable, Any] | None = None) -> None:
        self.run, self.config, self.device = run, config, device
        self.model, self.vocab = run.model, run.vocab
        self.parts = ScorerParts(config, self.model, self.vocab, device, shared=shared if shared is not None else {})
        self._weights: dict[str, float] = {}
        for spec in SCORERS:
            if spec.active(config):
                self.parts.built[spec.name] = spec.build(self.parts)
                self._weights[spec.name] = spec.weight_of(config)
        vocab = self.vocab
        self.processors = caption_processors(vocab.pad_id, vocab.bos_id, None if config.allow_unk else vocab.unk_id,
                                             config.no_repeat_ngram_size, config.no_immediate_repeat)

    @property
    def shared(self) -> dict[Hashable, Any]:
        """The loaded parts, for another decoder of the same run (``CaptionDecoder(..., shared=)``)."""
        return self.parts.shared

    @property
    def scorers(self) -> dict[str, Scorer]:
        """Scorer name -> the built scorer (before a batch's inputs), in the order they are fused."""
        return dict(self.parts.built)

    @property
    def weights(self) -> dict[str, float]:
        """Scorer name -> weight of this decoder (a copy), in the order they are fused."""
        return dict(self._weights)

    @property
    def verifier(self) -> AudioNounVerifier:
        """The audio-noun verifier (``config.verifier``, else zero-shot), loaded on first use and shared."""
        from fusion.decoding.audio_scorer import shared_verifier

        return shared_verifier(self.parts)

    def audio_evidence(self, record: FeatureRecord) -> dict[str, float] | None:
        """What the verifier hears in one record: audible noun -> evidence, None without audio."""
        return self.verifier.evidence(record)

    def decode_batch(self, records: Sequence[FeatureRecord]) -> list[list[Hypothesis]]:
        """Decode up to ``batch_size`` feature records at once (one beam search).

        Args:
            records: feature records (frames (T, Dv), audio (A, Da) or None).

        Returns:
            Per record, ``nbest`` hypotheses, best first.
        """
        from fusion.data import collate

        batch = collate(list(records), self.model.frame_dim, self.model.audio_dim).to(self.device)  # guards read it too
        inputs = BatchInputs(records=list(records), batch=batch)
        scorers = {name: bind_inputs(scorer, inputs) for name, scorer in self.parts.built.items()}
        ctx = DecodeContext(batch_size=len(records), beam_size=self.config.beam_size, device=self.device)
        config = self.config
        guards = caption_guards(self.vocab, eos_id=self.vocab.eos_id, max_len=config.max_len,
                                audio_present=batch.audio_present, beam_size=config.beam_size,
                                no_sound_without_audio=config.no_sound_without_audio,
                                no_repeat_bigram=config.no_repeat_bigram, no_dangling_end=config.no_dangling_end)
        return beam_search(
            scorers, self._weights, ctx, bos_id=self.vocab.bos_id, eos_id=self.vocab.eos_id,
            max_len=config.max_len, min_len=config.min_len, length_norm=config.length_norm, nbest=config.nbest,
            processors=[*self.processors, *guards], decode_words=self.vocab.decode,
        )

    def decode(self, records: Sequence[FeatureRecord], progress: bool = False) -> list[list[Hypothesis]]:
        """Decode any number of records in batches of ``config.batch_size`` (tqdm if ``progress``)."""
        from fusion.progress import progress_bar

        out: list[list[Hypothesis]] = []
        size = self.config.batch_size
        starts = range(0, len(records), size)
        for start in progress_bar(starts, desc="decoding", unit="batch", disable=not progress or len(starts) < 2):
            out.extend(self.decode_batch(records[start : start + size]))
        return out
