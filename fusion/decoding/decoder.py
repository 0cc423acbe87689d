"""Decode feature records with a trained run: the scorers a run and a decode configuration call for.

:class:`CaptionDecoder` is what ``fusion evaluate``, ``fusion caption``, ``fusion tune``, the
ablation runner and the web app share: it builds the scorer dict once (``"caption"`` from the
run's model, ``"length"``, ``"lm"`` from ``decode.lm`` with weight alpha, ``"audio"`` from the
audio-noun verifier with weight beta, ``"visual"`` from the visual-noun verifier), then decodes any list of feature records in batches of
``batch_size`` videos with the one batched beam search.

Loaded parts can be shared between decoders (``language_model=``, ``verifier=``), so a caller
that decodes one split under many settings (``fusion tune``'s alpha grid, a web app's
sliders) loads the language model and the verifier once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Sequence

import torch

from fusion.decoding.beam_search import beam_search
from fusion.decoding.config import DecodeConfig
from fusion.decoding.hypothesis import Hypothesis
from fusion.decoding.processors import caption_processors
from fusion.decoding.scorer import DecodeContext, Scorer
from fusion.decoding.scorers import CaptionScorer, LengthScorer
from fusion.decoding.sound_claims import NAME, SoundClaimScorer, needs_sound_claim_scorer, without_constraint

if TYPE_CHECKING:
    from fusion.checkpoint import LoadedRun
    from fusion.features import FeatureRecord
    from fusion.verifier import AudioNounVerifier

logger = logging.getLogger(__name__)


def load_verifier(path: str | None) -> AudioNounVerifier:
    """The audio-noun verifier: a trained file (``decode.verifier``) or zero-shot on the committed table."""
    from fusion.verifier import AudioNounVerifier

    return AudioNounVerifier.load(path) if path is not None else AudioNounVerifier()


def visual_scorer(words: Any, negative_scale: float = 1.0) -> Scorer:
    """The visual-noun verifier ``"visual"`` over the committed concept links (frame ImageNet posteriors)."""
    from fusion.concepts import VISUAL_SOURCES, ConceptEvidence, default_links
    from fusion.decoding.concept_scorer import ConceptScorer

    return ConceptScorer(words, ConceptEvidence(default_links(), VISUAL_SOURCES), negative_scale=negative_scale)


def with_sound_claims(scorers: dict[str, Scorer], weights: dict[str, float], vocab: Any,
                      records: Sequence[Any]) -> tuple[dict[str, Scorer], dict[str, float]]:
    """The scorers plus ``"no_sound_claim"`` (weight 1) when a record is a clip without audio."""
    if not needs_sound_claim_scorer(records):
        return scorers, weights
    return {**scorers, NAME: SoundClaimScorer(vocab)}, {**weights, NAME: 1.0}


class CaptionDecoder:
    """A run's model plus the fused scorers, ready to decode feature records.

    Args:
        run: the loaded run (model, vocabulary, config).
        config: the decode configuration (:func:`fusion.decoding.config.resolve_decode_config`).
        device: where the model runs.
        language_model: the loaded ``config.lm`` to reuse (None = load it when ``config.lm`` is set).
        verifier: the loaded audio-noun verifier to reuse (None = load ``config.verifier`` when
            ``audio_weight`` is on, or on first use of :meth:`audio_evidence`).
    """

    def __init__(self, run: LoadedRun, config: DecodeConfig, device: torch.device | str = "cpu", *,
                 language_model: Any | None = None, verifier: AudioNounVerifier | None = None) -> None:
        self.run, self.config, self.device = run, config, device
        self.model, self.vocab = run.model, run.vocab
        caption = CaptionScorer(self.model)
        scorers: dict[str, Scorer] = {"caption": caption}
        weights: dict[str, float] = {"caption": 1.0}
        self.language_model = language_model
        if config.lm is not None:
            from fusion.decoding.lm_scorer import lm_fusion, load_language_model

            if self.language_model is None:
                self.language_model = load_language_model(config.lm, device=device)
            fused, fused_weights = lm_fusion(caption, self.language_model, config.lm_weight, config.lm_mode)  # type: ignore[arg-type]
            scorers, weights = dict(fused), dict(fused_weights)
        self._verifier = verifier
        if config.audio_weight != 0:
            from fusion.decoding.audio_scorer import AudioScorer

            scorers["audio"] = AudioScorer(self.vocab, self.verifier, penalty=config.audio_penalty,
                                           absent_penalty=config.audio_absent_penalty)
            weights["audio"] = float(config.audio_weight)
        if config.visual_weight != 0:
            scorers["visual"] = visual_scorer(self.vocab, config.visual_negative_scale)
            weights["visual"] = float(config.visual_weight)
        if config.length_weight != 0:
            scorers["length"] = LengthScorer(len(self.vocab))
            weights["length"] = float(config.length_weight)
        self._scorers, self._weights = scorers, weights
        vocab = self.vocab
        self.processors = caption_processors(vocab.pad_id, vocab.bos_id, None if config.allow_unk else vocab.unk_id,
                                             config.no_repeat_ngram_size, config.no_immediate_repeat)

    @property
    def weights(self) -> dict[str, float]:
        """Scorer name -> weight of this decoder (a copy)."""
        return dict(self._weights)

    @property
    def scorer_names(self) -> list[str]:
        """The fused scorers, in order."""
        return list(self._scorers)

    @property
    def verifier(self) -> AudioNounVerifier:
        """The audio-noun verifier (``config.verifier``, else zero-shot), loaded on first use."""
        if self._verifier is None:
            self._verifier = load_verifier(self.config.verifier)
        return self._verifier

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

        batch = collate(list(records), self.model.frame_dim, self.model.audio_dim).to(self.device)
        ctx = DecodeContext(batch_size=len(records), beam_size=self.config.beam_size, device=self.device,
                            batch=batch, records=list(records), vocab=self.vocab)
        config = self.config
        scorers, weights = with_sound_claims(self._scorers, self._weights, self.vocab, records)
        return without_constraint(beam_search(
            scorers, weights, ctx, bos_id=self.vocab.bos_id, eos_id=self.vocab.eos_id,
            max_len=config.max_len, min_len=config.min_len, length_norm=config.length_norm, nbest=config.nbest,
            processors=self.processors, decode_words=self.vocab.decode,
        ))

    def decode(self, records: Sequence[FeatureRecord], progress: bool = False) -> list[list[Hypothesis]]:
        """Decode any number of records in batches of ``config.batch_size`` (tqdm if ``progress``)."""
        from tqdm import tqdm

        out: list[list[Hypothesis]] = []
        size = self.config.batch_size
        starts = range(0, len(records), size)
        for start in tqdm(starts, desc="decoding", unit="batch", disable=not progress or len(starts) < 2):
            out.extend(self.decode_batch(records[start : start + size]))
        return out
