"""The language model as a beam-search scorer: late fusion, log-linear and linear.

Late fusion (Venugopalan et al., EMNLP 2016, sec. 3.2) combines the caption model and a
language model trained on text at every decoding step. Two forms:

- **log-linear** (shallow fusion, Gulcehre et al. 2015): the scorer ``"lm"`` returns
  ``log p_LM(w | prefix)`` and the beam search adds ``alpha * log p_LM`` to the caption
  model's ``log p_cap`` (``weights["lm"] = alpha``). :class:`LMScorer`.
- **linear** (the paper's form): ``p(w) = alpha * p_LM(w) + (1 - alpha) * p_cap(w)``. A
  weighted *sum of log scores* cannot express a sum of probabilities directly, so the
  scorer ``"lm"`` returns the correction that turns the caption score into the mixture:
  ``log((1 - alpha) + alpha * p_LM / p_cap)``, with weight 1, beside ``"caption"`` with
  weight 1. ``caption + lm`` is then exactly ``log p(w)`` of the mixture, and the
  hypothesis breakdown still shows the caption model's own score and how much the LM moved
  it. :class:`LinearInterpolationScorer` (it steps its own copy of the caption scorer).

:data:`LM_SPEC` declares the scorer (settings ``lm``, ``lm_weight``, ``lm_mode``); :func:`lm_fusion`
builds the scorers and weights of either form by hand. An LM is bound to the
caption model's vocabulary (given to :class:`LMScorer`): every caption word id is
mapped to the LM's vocabulary, words the LM does not know to its ``<unk>``
(:func:`fusion.models.lm.vocab_map`, :class:`fusion.models.bound_lm.BoundLSTM`); the Hugging Face
adapter scores each caption word as the sum of its subword log-probabilities (:mod:`fusion.models.hf_lm`).
"""

from __future__ import annotations

import logging
import math
import typing
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import torch
from torch import Tensor

from fusion.decoding.scorer import DecodeContext, Scorer, bind_inputs
from fusion.decoding.scorers import CAPTION_SPEC
from fusion.decoding.spec import BatchInputs, ScorerParts, ScorerSpec, Setting
from fusion.errors import CheckpointError, ConfigError
from fusion.models.bound_lm import LOG_ZERO, BoundLM, bind_lm
from fusion.models.lm import WordLM
from fusion.text import Vocabulary

logger = logging.getLogger(__name__)

LMFusionMode = Literal["loglinear", "linear"]  # late fusion: log-linear (shallow) or linear interpolation
LM_MODES: tuple[LMFusionMode, ...] = typing.get_args(LMFusionMode)

class LMScorer:
    """Scorer ``"lm"`` for log-linear (shallow) fusion: ``log p_LM(next word | prefix)``.

    Args:
        lm: a :class:`WordLM`, a :class:`~fusion.models.hf_lm.HFWordLM`, or anything with
            ``bind(vocab) -> BoundLM``.
        vocab: the caption vocabulary (the scores are over its words).
    """

    def __init__(self, lm: Any, vocab: Vocabulary) -> None:
        self.lm = lm
        self.vocab = vocab
        self._bound: tuple[Vocabulary, BoundLM] | None = None

    def bind(self, vocab: Vocabulary) -> BoundLM:
        """The LM bound to ``vocab`` (cached for the last vocabulary)."""
        if self._bound is None or self._bound[0] != vocab:
            bound = bind_lm(self.lm, vocab)
            self._bound = (vocab, bound)
        return self._bound[1]

    def init_state(self, ctx: DecodeContext) -> Any:
        """Empty prefixes for N = batch * beam rows."""
        bound = self.bind(self.vocab)
        return bound, bound.init_state(ctx.num_rows, ctx.device)

    def score(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        """Log-probs (N, V) of the next caption word after ``tokens`` (N, t) long."""
        bound, lm_state = state
        scores, lm_state = bound.step(tokens[:, -1], lm_state)  # (N, V)
        return scores, (bound, lm_state)

    def select_state(self, state: Any, idx: Tensor) -> Any:
        """Reorder rows after pruning."""
        bound, lm_state = state
        return bound, bound.select_state(lm_state, idx)


def interpolation_correction(caption_scores: Tensor, lm_scores: Tensor, lm_weight: float) -> Tensor:
    """``log((1 - a) + a * p_lm / p_cap)``: added to ``log p_cap`` gives ``log(a p_lm + (1 - a) p_cap)``.

    Args:
        caption_scores: (N, V) float caption-model log-probs.
        lm_scores: (N, V) float LM log-probs.
        lm_weight: a in [0, 1].

    Returns:
        (N, V) float; 0 everywhere when a = 0.
    """
    if not 0.0 <= lm_weight <= 1.0:
        raise ConfigError(f"lm_weight {lm_weight} must be in [0, 1] for linear interpolation; pick alpha in [0, 1]")
    if lm_weight == 0.0:
        return torch.zeros_like(caption_scores)
    cap = caption_scores.clamp_min(LOG_ZERO)
    ratio = math.log(lm_weight) + lm_scores.clamp_min(LOG_ZERO) - cap  # log(a p_lm / p_cap)
    if lm_weight == 1.0:
        return ratio
    return torch.logaddexp(torch.full_like(ratio, math.log1p(-lm_weight)), ratio)


class LinearInterpolationScorer:
    """Scorer ``"lm"`` (weight 1) for the paper's linear interpolation of probabilities.

    Adds :func:`interpolation_correction` to the ``"caption"`` scorer's log-probs, so that
    ``caption + lm = log(alpha p_LM + (1 - alpha) p_cap)``. It steps a caption scorer of its
    own (the same model as ``"caption"``; one extra caption step per decoding step).

    Args:
        caption: the caption-model scorer (``init_state`` reads the same ``DecodeContext``).
        lm: the LM scorer (:class:`LMScorer`).
        lm_weight: alpha in [0, 1].
    """

    def __init__(self, caption: Scorer, lm: Scorer, lm_weight: float) -> None:
        interpolation_correction(torch.zeros(1, 1), torch.zeros(1, 1), lm_weight)  # validates alpha
        self.caption = caption
        self.lm = lm
        self.lm_weight = lm_weight

    def with_inputs(self, inputs: BatchInputs) -> LinearInterpolationScorer:
        """The same interpolation over a caption scorer (and LM scorer) holding ``inputs``."""
        return LinearInterpolationScorer(bind_inputs(self.caption, inputs), bind_inputs(self.lm, inputs), self.lm_weight)

    def init_state(self, ctx: DecodeContext) -> tuple[Any, Any]:
        """Both scorers' states."""
        return self.caption.init_state(ctx), self.lm.init_state(ctx)

    def score(self, tokens: Tensor, state: tuple[Any, Any]) -> tuple[Tensor, tuple[Any, Any]]:
        """The correction (N, V) for the next word after ``tokens`` (N, t) long."""
        cap_scores, cap_state = self.caption.score(tokens, state[0])  # (N, V)
        lm_scores, lm_state = self.lm.score(tokens, state[1])  # (N, V)
        return interpolation_correction(cap_scores, lm_scores.to(cap_scores.device), self.lm_weight), (cap_state, lm_state)

    def select_state(self, state: tuple[Any, Any], idx: Tensor) -> tuple[Any, Any]:
        """Reorder both states."""
        return self.caption.select_state(state[0], idx), self.lm.select_state(state[1], idx)


def lm_fusion(
    caption: Scorer, lm: Any | None, lm_weight: float, mode: LMFusionMode = "loglinear",
    vocab: Vocabulary | None = None,
) -> tuple[dict[str, Scorer], dict[str, float]]:
    """Scorers and weights for decoding with late fusion.

    Args:
        caption: the ``"caption"`` scorer.
        lm: a language model (:class:`WordLM`, ``HFWordLM``) or an LM scorer; None = no LM.
        lm_weight: alpha (log-linear: weight of ``log p_LM``, >= 0; linear: mixture weight in [0, 1]).
        mode: ``"loglinear"`` (shallow fusion) or ``"linear"`` (interpolation of probabilities).
        vocab: the caption vocabulary, needed when ``lm`` is a language model (not a scorer).

    Returns:
        ``(scorers, weights)`` for ``beam_search``; with no LM or alpha 0, the caption scorer alone.
    """
    probe = SimpleNamespace(lm_weight=lm_weight, lm_mode=mode)
    for name in ("lm_mode", "lm_weight"):  # the decode configuration's own checks (:data:`LM_SPEC`)
        LM_SPEC.setting(name).check(probe)
    if lm is None or lm_weight == 0:
        return {CAPTION_SPEC.name: caption}, {CAPTION_SPEC.name: 1.0}
    if not (hasattr(lm, "select_state") and hasattr(lm, "score")):
        if vocab is None:
            raise ConfigError("lm_fusion: give the caption vocabulary (vocab=) to bind the language model to")
        lm = LMScorer(lm, vocab)
    fused = _fused_lm(caption, lm, lm_weight, mode)
    weight = 1.0 if mode == "linear" else float(lm_weight)
    return {CAPTION_SPEC.name: caption, LM_SPEC.name: fused}, {CAPTION_SPEC.name: 1.0, LM_SPEC.name: weight}


def _fused_lm(caption: Scorer, lm_scorer: Scorer, lm_weight: float, mode: str) -> Scorer:
    """Scorer ``"lm"``: the LM scorer itself (log-linear) or the interpolation correction (linear)."""
    return lm_scorer if mode == "loglinear" else LinearInterpolationScorer(caption, lm_scorer, lm_weight)


def load_language_model(spec: str | Path, device: torch.device | str = "cpu") -> Any:
    """Load an LM for fusion: a ``fusion lm train`` folder, a Hugging Face folder, or a hub id.

    Raises:
        CheckpointError / WeightsError: nothing loadable at ``spec``.
    """
    path = Path(spec)
    if (path / "lm.json").is_file():
        return WordLM.load(path, device=device)
    if path.exists() and not (path / "config.json").is_file():
        raise CheckpointError(f"{path}: neither an LM folder (lm.json) nor a Hugging Face model folder (config.json); "
                              "train one with `fusion lm train CORPUS --out DIR`")
    from fusion.models.hf_lm import HFWordLM

    return HFWordLM.from_pretrained(str(spec), device=device)


def _build(parts: ScorerParts) -> Scorer:
    """Scorer ``"lm"`` of a decoder: the language model ``decode.lm``, loaded once per ``parts.shared``."""
    config = parts.config
    model = parts.load(("lm", str(config.lm), str(parts.device)),
                       lambda: load_language_model(config.lm, device=parts.device))
    return _fused_lm(parts.built[CAPTION_SPEC.name], LMScorer(model, parts.vocab), config.lm_weight, config.lm_mode)


def _validate(config: Any) -> None:
    if config.lm is not None and config.lm_weight <= 0:
        raise ConfigError(f"decode.lm={config.lm!r} is given without a weight: add --lm-weight ALPHA > 0, or run "
                          "`fusion tune RUN --lm LM`, which writes its choice into the run's config.yaml")


LM_SPEC = ScorerSpec(
    name="lm", label="LM", build=_build, weight="lm_weight", requires="lm", ablation="lm_off", slider=True,
    off={"lm": None, "lm_weight": 0.0}, validate=_validate,
    fused_weight=lambda config: 1.0 if config.lm_mode == "linear" else config.lm_weight,
    settings=(
        Setting("lm", str | None, None, "language model for late fusion (`fusion lm train` folder or HF model)",
                metavar="PATH", noun="a language model"),
        Setting("lm_weight", float, 0.0, "weight alpha of the language model (in [0, 1] with --lm-mode linear)",
                metavar="ALPHA", minimum=0.0, maximum=lambda config: 1.0 if config.lm_mode == "linear" else None,
                scale=2.0, step=0.05),
        Setting("lm_mode", LMFusionMode, "loglinear",
                "late fusion form: log-linear (shallow fusion, default) or linear interpolation", choices=LM_MODES),
    ),
)
