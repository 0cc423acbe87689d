"""The zero-shot captioner: real captions chosen or composed by what the frames show and the sound says.

No video-caption pair trains it. It has two modes (:class:`fusion.zeroshot.config.ZeroShotConfig`):
``"consensus"``, the default, picks the consensus caption of the corpus clips whose captions the
clip's evidence supports (:mod:`fusion.zeroshot.neighbours`); ``"fused"`` composes a caption word
by word. In the fused mode the language model (an LSTM trained on ~190,000 real
captions) proposes words; the visual-noun verifier (``"visual"``: the frame CNN's ImageNet
posteriors on each word's linked classes) and the zero-shot audio verifier (``"audio"``:
SoundNet's ImageNet / Places2 and, where present, AudioSet posteriors of the sound) add
log-odds evidence for linked nouns and the verbs they imply; ``"length"`` a bonus per word.
One batched beam search fuses them, ``lm + w_v * visual + w_a * audio + w_l * length``;
a clip without an audio stream gets no audio evidence and no sound-claiming word
(the caption guards of :mod:`fusion.decoding.guards`, as for every run).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from fusion.concepts import AUDIO_SOURCES, VISUAL_SOURCES, ConceptEvidence, ConceptLinks
from fusion.decoding.beam_search import beam_search
from fusion.decoding.concept_scorer import ConceptScorer
from fusion.decoding.guards import caption_guards
from fusion.decoding.hypothesis import Hypothesis
from fusion.decoding.lm_scorer import LMScorer
from fusion.decoding.processors import caption_processors
from fusion.decoding.scorer import BatchInputs, DecodeContext, Scorer, bind_inputs
from fusion.decoding.scorers import LengthScorer
from fusion.models.lm import WordLM
from fusion.zeroshot.config import LINKS_FILE, LM_DIR, ZeroShotConfig, ZeroShotFolder
from fusion.zeroshot.neighbours import CaptionIndex, Consensus, caption_filter

logger = logging.getLogger(__name__)


class ZeroShotModel:
    """A loaded zero-shot model folder, ready to decode feature records.

    Args:
        folder: the model folder (``fusion zeroshot build --out``).
        device: where the LM runs.
        config: decode settings (default: the folder's).
        lm: an already loaded LM to use instead of the folder's (the build's tuning reuses it).
    """

    def __init__(self, folder: str | Path, device: torch.device | str = "cpu", config: ZeroShotConfig | None = None,
                 lm: WordLM | None = None) -> None:
        self.folder = Path(folder)
        self.saved = ZeroShotFolder.load(self.folder)
        self.config = config or self.saved.config
        self.device = device
        self.lm = lm if lm is not None else WordLM.load(self.folder / LM_DIR, device=device)
        self.vocab = self.lm.vocab
        self.links = ConceptLinks.load(self.folder / LINKS_FILE)
        self.visual = ConceptEvidence(self.links, VISUAL_SOURCES)
        self.audio = ConceptEvidence(self.links, AUDIO_SOURCES)
        self._lm_scorer = LMScorer(self.lm, self.vocab)
        self._concept_scorers: dict[tuple[str, float], ConceptScorer] = {}
        self._index: CaptionIndex | None = None

    @property
    def index(self) -> CaptionIndex:
        """The corpus caption index of the consensus mode (read from the folder on first use)."""
        if self._index is None:
            self._index = CaptionIndex.load(self.folder)
        return self._index

    def _concepts(self, name: str, negative_scale: float) -> ConceptScorer:
        """The ``"visual"`` / ``"audio"`` scorer at a negative scale (built once per scale)."""
        key = (name, negative_scale)
        if key not in self._concept_scorers:
            evidence = self.visual if name == "visual" else self.audio
            self._concept_scorers[key] = ConceptScorer(self.vocab, evidence, negative_scale)
        return self._concept_scorers[key]

    def scorers(self, config: ZeroShotConfig | None = None) -> tuple[dict[str, Scorer], dict[str, float]]:
        """The fused scorers and their weights under ``config`` (weight-0 scorers left out)."""
        config = config or self.config
        scorers: dict[str, Scorer] = {"lm": self._lm_scorer}
        weights = {"lm": 1.0}
        for name, weight, negative in (("visual", config.visual_weight, config.visual_negative_scale),
                                       ("audio", config.audio_weight, config.audio_negative_scale)):
            if weight:
                scorers[name], weights[name] = self._concepts(name, negative), float(weight)
        if config.length_weight:
            scorers["length"], weights["length"] = LengthScorer(len(self.vocab)), float(config.length_weight)
        return scorers, weights

    def consensus(self, record: Any, config: ZeroShotConfig | None = None) -> Consensus:
        """The consensus mode's candidates, neighbours and driving words for one record."""
        from fusion.decoding.guards import FUNCTION_WORDS

        config = config or self.config
        evidence = self.index.evidence_vector((self.visual.evidence(record), config.visual_weight),
                                              (self.audio.evidence(record), config.audio_weight))
        allowed = caption_filter(record is not None and record.audio is not None, FUNCTION_WORDS)
        return self.index.caption(evidence, config.neighbours, config.nbest, allowed)

    def consensus_hypotheses(self, found: Consensus) -> list[Hypothesis]:
        """The candidates of :meth:`consensus` as n-best hypotheses (scored by ``"consensus"`` alone)."""
        return [Hypothesis(tokens=self.vocab.encode(c.caption, bos=False, eos=False), words=c.caption, score=c.score,
                           scores={"consensus": c.score}, total=c.score, weights={"consensus": 1.0})
                for c in found.candidates]

    @torch.no_grad()
    def decode_batch(self, records: Sequence[Any], config: ZeroShotConfig | None = None) -> list[list[Hypothesis]]:
        """N-best hypotheses of up to ``batch_size`` records (fused mode: in one beam search)."""
        config = config or self.config
        if config.mode == "consensus":
            return [self.consensus_hypotheses(self.consensus(r, config)) for r in records]
        scorers, weights = self.scorers(config)
        inputs = BatchInputs(records=list(records))
        scorers = {name: bind_inputs(scorer, inputs) for name, scorer in scorers.items()}
        ctx = DecodeContext(batch_size=len(records), beam_size=config.beam_size, device=self.device)
        processors = caption_processors(self.vocab.pad_id, self.vocab.bos_id, self.vocab.unk_id,
                                        config.no_repeat_ngram_size, no_immediate_repeat=True)
        audio_present = torch.tensor([r is not None and r.audio is not None for r in records])  # (B,)
        guards = caption_guards(self.vocab, eos_id=self.vocab.eos_id, max_len=config.max_len,
                                audio_present=audio_present, beam_size=config.beam_size)
        return beam_search(scorers, weights, ctx, bos_id=self.vocab.bos_id, eos_id=self.vocab.eos_id,
                           max_len=config.max_len, min_len=config.min_len, nbest=config.nbest,
                           processors=[*processors, *guards], decode_words=self.vocab.decode)

    def decode(self, records: Sequence[Any], config: ZeroShotConfig | None = None) -> list[list[Hypothesis]]:
        """Decode any number of records in batches of ``config.batch_size``."""
        config = config or self.config
        out: list[list[Hypothesis]] = []
        for start in range(0, len(records), config.batch_size):
            out.extend(self.decode_batch(records[start : start + config.batch_size], config))
        return out
