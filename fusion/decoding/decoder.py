"""Decode feature records with a trained run: the scorers a run and the options call for.

:class:`CaptionDecoder` is what ``fusion evaluate``, ``fusion caption`` and the ablation
runner share: it builds the scorer dict once (``"caption"`` from the run's model,
``"length"``, ``"lm"`` from ``--lm`` with weight alpha, ``"audio"`` from the audio-noun
verifier with weight beta), then decodes any list of feature records in batches of
``batch_size`` videos with the one batched beam search.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from fusion.checkpoint import LEARNED_VERIFIER, VERIFIER_FILE, run_folder
from fusion.decoding.beam_search import beam_search
from fusion.decoding.hypothesis import Hypothesis
from fusion.decoding.processors import caption_processors
from fusion.decoding.scorer import INPUT_BATCH, INPUT_RECORDS, INPUT_VOCAB, DecodeContext, Scorer
from fusion.decoding.scorers import CaptionScorer, LengthScorer
from fusion.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass
class DecodeOptions:
    """How to decode; defaults come from the run's ``decode`` config (:meth:`for_run`).

    Attributes:
        beam_size: beams per video.
        nbest: captions kept per video (<= beam_size).
        max_len / min_len: word limits per caption.
        length_norm: rank by total / (words + 1).
        length_weight: weight of the ``"length"`` scorer (0 = off).
        no_repeat_ngram_size: ban repeated n-grams of this size (0 = off).
        allow_unk: let captions contain ``<unk>``.
        lm: language model for late fusion (``fusion lm train`` folder or HF model), or None.
        lm_weight: alpha, the weight of ``"lm"`` (linear mode: the mixture weight).
        lm_mode: ``"loglinear"`` (shallow fusion) or ``"linear"`` (interpolated probabilities).
        audio_weight: beta, the weight of the audio-noun verifier ``"audio"`` (0 = off).
        verifier: a trained verifier file for learned evidence; None = its default.
        batch_size: videos decoded together.
    """

    beam_size: int = 5
    nbest: int = 1
    max_len: int = 20
    min_len: int = 1
    length_norm: bool = True
    length_weight: float = 0.0
    no_repeat_ngram_size: int = 0
    allow_unk: bool = False
    lm: str | None = None
    lm_weight: float = 0.0
    lm_mode: str = "loglinear"
    audio_weight: float = 0.0
    verifier: str | None = None
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ConfigError(f"beam size {self.beam_size} is invalid: give --beam 1 or more")
        if not 1 <= self.nbest <= self.beam_size:
            raise ConfigError(f"--nbest {self.nbest} is invalid: give 1 <= nbest <= beam size ({self.beam_size})")
        if self.batch_size < 1:
            raise ConfigError(f"batch size {self.batch_size} is invalid: give 1 or more")
        if self.lm is None and self.lm_weight != 0:
            raise ConfigError(f"--lm-weight {self.lm_weight} given without --lm: name the language model (--lm PATH)")
        if self.lm is not None and self.lm_weight <= 0:
            raise ConfigError("--lm given without a weight: add --lm-weight ALPHA > 0, or run `fusion tune RUN --lm LM` "
                              "first (its choice is then used)")

    @classmethod
    def for_run(cls, run: Any, **overrides: Any) -> DecodeOptions:
        """The run's stored decode config (``run.config.decode``), then ``overrides`` (None = keep)."""
        stored = getattr(getattr(run, "config", None), "decode", None)
        base: dict[str, Any] = {}
        if stored is not None:
            names = {f.name for f in dataclasses.fields(cls)}
            base = {k: v for k, v in dataclasses.asdict(stored).items() if k in names}
        base.update({k: v for k, v in overrides.items() if v is not None})
        if base.get("verifier") == LEARNED_VERIFIER:
            folder = run_folder(getattr(run, "checkpoint_dir", "."))
            path = folder / VERIFIER_FILE
            if not path.is_file():
                raise ConfigError(f"{folder}: decode.verifier is 'learned' but {path.name} is missing; run "
                                  f"`fusion train CONFIG --out {folder}` again to fit it (the weights are kept)")
            base["verifier"] = str(path)
        if base.get("lm") is not None and overrides.get("lm_weight") is None:
            tuned = tuned_lm_weight(run, str(base["lm"]), base.get("lm_mode", "loglinear"))
            if tuned is not None:
                base["lm_weight"] = tuned
        return cls(**base)


def tuned_lm_weight(run: Any, lm: str, mode: str) -> float | None:
    """alpha chosen by ``fusion tune`` for this run and LM (``RUN/tune/lm_<mode>.json``), or None."""
    import json

    path = run_folder(getattr(run, "checkpoint_dir", ".")) / "tune" / f"lm_{mode}.json"
    try:
        choice = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    same_lm = Path(str(choice.get("lm", ""))).resolve() == Path(lm).resolve() or choice.get("lm") == lm
    alpha = choice.get("best_alpha")
    if not same_lm or not isinstance(alpha, (int, float)) or alpha <= 0:
        return None
    logger.info("using the tuned lm weight %g from %s", alpha, path)
    return float(alpha)


def load_verifier(path: str | None) -> Any:
    """The audio-noun verifier: a trained file (``--verifier``) or zero-shot on the committed table."""
    try:
        from fusion.verifier import AudioNounVerifier
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("fusion"):
            raise ConfigError("--audio-weight / --explain need the audio-noun verifier (fusion/verifier), "
                              "which this installation lacks; drop the option") from None
        raise
    return AudioNounVerifier.load(path) if path is not None else AudioNounVerifier()


class CaptionDecoder:
    """A run's model plus the fused scorers, ready to decode feature records.

    Args:
        run: a ``fusion.checkpoint.LoadedRun`` (model, vocab, config).
        options: decoding options.
        device: where the model runs.
    """

    def __init__(self, run: Any, options: DecodeOptions, device: torch.device | str = "cpu") -> None:
        self.run, self.options, self.device = run, options, device
        self.model, self.vocab = run.model, run.vocab
        caption = CaptionScorer(self.model)
        scorers: dict[str, Scorer] = {"caption": caption}
        weights: dict[str, float] = {"caption": 1.0}
        if options.lm is not None:
            from fusion.decoding.lm_scorer import lm_fusion, load_language_model

            lm = load_language_model(options.lm, device=device)
            scorers, weights = lm_fusion(caption, lm, options.lm_weight, options.lm_mode)  # type: ignore[arg-type]
            scorers, weights = dict(scorers), dict(weights)
        self.verifier: Any = None
        if options.audio_weight != 0:
            from fusion.decoding.audio_scorer import AudioScorer

            self.verifier = load_verifier(options.verifier)
            scorers["audio"] = AudioScorer(self.vocab, self.verifier)
            weights["audio"] = float(options.audio_weight)
        if options.length_weight != 0:
            scorers["length"] = LengthScorer(len(self.vocab))
            weights["length"] = float(options.length_weight)
        self.scorers, self.weights = scorers, weights
        v = self.vocab
        self.processors = caption_processors(v.pad_id, v.bos_id, None if options.allow_unk else v.unk_id,
                                             options.no_repeat_ngram_size)

    def decode_batch(self, records: Sequence[Any]) -> list[list[Hypothesis]]:
        """Decode up to ``batch_size`` feature records at once (one beam search).

        Args:
            records: ``fusion.features.FeatureRecord`` objects (frames (T, Dv), audio (A, Da) or None).

        Returns:
            Per record, ``nbest`` hypotheses, best first.
        """
        from fusion.data import collate

        batch = collate(list(records), self.model.frame_dim, self.model.audio_dim).to(self.device)
        ctx = DecodeContext(
            batch_size=len(records), beam_size=self.options.beam_size, device=self.device,
            inputs={INPUT_BATCH: batch, INPUT_RECORDS: list(records), INPUT_VOCAB: self.vocab},
        )
        o = self.options
        return beam_search(
            self.scorers, self.weights, ctx, bos_id=self.vocab.bos_id, eos_id=self.vocab.eos_id,
            max_len=o.max_len, min_len=o.min_len, length_norm=o.length_norm, nbest=o.nbest,
            processors=self.processors, decode_words=self.vocab.decode,
        )

    def decode(self, records: Sequence[Any], progress: bool = False) -> list[list[Hypothesis]]:
        """Decode any number of records in batches of ``options.batch_size`` (tqdm if ``progress``)."""
        from tqdm import tqdm

        out: list[list[Hypothesis]] = []
        size = self.options.batch_size
        starts = range(0, len(records), size)
        for start in tqdm(starts, desc="decoding", unit="batch", disable=not progress or len(starts) < 2):
            out.extend(self.decode_batch(records[start : start + size]))
        return out
