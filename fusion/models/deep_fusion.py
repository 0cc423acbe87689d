"""Early and deep fusion of a text-trained LSTM LM into the S2VT caption decoder.

Venugopalan et al., "Improving LSTM-based Video Description with Linguistic Knowledge
Mined from Text", EMNLP 2016, sec. 3:

- **early fusion** (:func:`early_fusion_init`): the caption decoder's language layer starts
  from the LM trained on text: S2VT's word embedding, the word-input columns and recurrent
  weights of its second LSTM, and its output layer are copied from the LM (caption words
  mapped to LM words); then the captioner trains as usual.
- **deep fusion** (:class:`DeepFusionS2VT`): at every decoding step the frozen LM reads the
  previous caption word, and its top hidden state is concatenated with the decoder's
  before the output layer: ``p(w_t) = softmax(W [h_dec ; h_lm] + b)``. Only ``W, b`` and the
  S2VT weights train; the LM's weights never change and it stays in eval mode.
- late fusion is a decoding scorer (:mod:`fusion.decoding.lm_scorer`).

:class:`LMFusionConfig` chooses one; :func:`build_captioner` builds the model a run trains
(a plain :class:`~fusion.models.s2vt.S2VT` for ``none`` and ``early``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

from fusion.errors import ConfigError
from fusion.models.captioner import CaptionDecoder
from fusion.models.lm import WordLM, vocab_map
from fusion.models.s2vt import S2VT, DecoderState
from fusion.text import Vocabulary

if TYPE_CHECKING:
    from fusion.data import Batch

logger = logging.getLogger(__name__)

FusionKind = Literal["none", "early", "deep"]


@dataclass
class LMFusionConfig:
    """Which training-time LM fusion a captioner run uses.

    Attributes:
        mode: ``"none"``, ``"early"`` (initialise the language layer from the LM) or
            ``"deep"`` (frozen LM hidden state beside the decoder's before the softmax).
        lm: the LM folder written by ``fusion lm train`` (needed for early and deep).
    """

    mode: FusionKind = "none"
    lm: str | None = None

    def __post_init__(self) -> None:
        if self.mode != "none" and not self.lm:
            raise ValueError(f"lm_fusion.mode={self.mode!r} needs lm_fusion.lm, an LM folder from `fusion lm train`")


@dataclass
class DeepFusionState:
    """Decoder state plus the LM's state for N rows.

    Attributes:
        dec: S2VT's :class:`~fusion.models.s2vt.DecoderState`.
        lm_h, lm_c: float32 (num_layers, N, H_lm) LM hidden / cell state.
    """

    dec: DecoderState
    lm_h: Tensor
    lm_c: Tensor

    def index_select(self, idx: Tensor) -> DeepFusionState:
        """Rows ``idx`` (long (N',)) of every tensor."""
        return DeepFusionState(self.dec.index_select(idx), self.lm_h.index_select(1, idx), self.lm_c.index_select(1, idx))

    @property
    def num_rows(self) -> int:
        """N, the number of decoding rows."""
        return self.dec.num_rows

    @property
    def device(self) -> torch.device:
        """Where the state lives."""
        return self.dec.device


class DeepFusionS2VT(CaptionDecoder):
    """S2VT whose output layer reads ``[h_dec ; h_lm]`` from a frozen LSTM LM.

    Same interface as :class:`S2VT` (both are :class:`~fusion.models.captioner.CaptionDecoder`),
    so training, validation and the beam search use it as is; the decoding step is S2VT's
    (:meth:`S2VT.decoder_outputs`) with the fused output layer after it.

    Args:
        s2vt: the caption model (its ``out`` layer is replaced by the fused one).
        lm: the trained LM; frozen here.
        vocab: the caption vocabulary (mapped onto the LM's, unknown words -> LM ``<unk>``).
    """

    def __init__(self, s2vt: S2VT, lm: WordLM, vocab: Vocabulary) -> None:
        super().__init__()
        if len(vocab) != s2vt.vocab_size:
            raise ConfigError(f"caption vocabulary has {len(vocab)} words, the model {s2vt.vocab_size}")
        self.s2vt = s2vt
        self.lm = lm.model
        for p in self.lm.parameters():
            p.requires_grad_(False)
        self.lm.eval()
        self.register_buffer("to_lm", vocab_map(vocab, lm.vocab))  # (V,) caption id -> LM id
        hidden = s2vt.config.hidden_size
        self.fused_out = nn.Linear(hidden + self.lm.hidden_size, s2vt.vocab_size)
        with torch.no_grad():  # start as S2VT: the LM columns at 0
            self.fused_out.weight.zero_()
            self.fused_out.weight[:, :hidden] = s2vt.out.weight
            self.fused_out.bias.copy_(s2vt.out.bias)
        del self.s2vt.out  # replaced by fused_out
        self.vocab_size, self.frame_dim, self.audio_dim = s2vt.vocab_size, s2vt.frame_dim, s2vt.audio_dim
        self.config = s2vt.config

    def set_input_stats(self, frames: Tensor, audio: Tensor | None) -> None:
        """Input standardisation of the wrapped S2VT (see :meth:`S2VT.set_input_stats`)."""
        self.s2vt.set_input_stats(frames, audio)

    def train(self, mode: bool = True) -> DeepFusionS2VT:
        """Train mode for S2VT and the fusion layer; the frozen LM stays in eval mode."""
        super().train(mode)
        self.lm.eval()
        return self

    def encode(self, batch: Batch) -> DeepFusionState:
        """S2VT's encoding phase; the LM starts from its zero state (N = B rows)."""
        dec = self.s2vt.encode(batch)
        lm_h, lm_c = self.lm.init_state(dec.num_rows, dec.device)
        return DeepFusionState(dec, lm_h, lm_c)

    def _decode(self, words: Tensor, state: DeepFusionState) -> tuple[Tensor, DeepFusionState]:
        """Decoding phase over given previous words (BOS first), ``words`` long (N, L).

        Returns:
            logits float32 (N, L, V) and the state after the L steps.
        """
        o2, dec = self.s2vt.decoder_outputs(words, state.dec)  # (N, L, H)
        with torch.no_grad():
            lm_hidden, (lm_h, lm_c) = self.lm.hidden_states(self.to_lm[words], (state.lm_h, state.lm_c))  # (N, L, H_lm)
        fused = self.s2vt.drop(torch.cat([o2, lm_hidden], -1))  # (N, L, H + H_lm)
        return self.fused_out(fused), DeepFusionState(dec, lm_h, lm_c)


def early_fusion_init(s2vt: S2VT, lm: WordLM, vocab: Vocabulary) -> dict[str, int]:
    """Initialise S2VT's language layer from a trained LM, in place.

    Copies, for every caption word the LM knows (and ``<bos>``/``<eos>``): its embedding row
    and its output-layer row; and the LM's LSTM input-to-hidden weights into the word-input
    columns of S2VT's second LSTM, plus its recurrent weights and biases. The columns that
    read the first LSTM keep their initialisation. An LM with tied weights and a projection
    contributes ``W_out @ W_proj`` (exactly the same linear map).

    Raises:
        ConfigError: sizes differ (LM embed_size vs model.word_embed_size, hidden_size vs
            model.hidden_size) or the LM has more than one layer.

    Returns:
        ``{"words_copied": int, "words_unknown": int}``.
    """
    cfg, m = s2vt.config, lm.model
    if m.config.num_layers != 1:
        raise ConfigError(f"early fusion needs a one-layer LM (S2VT's language layer is one LSTM); "
                          f"this LM has {m.config.num_layers}: train it with --set num_layers=1")
    for lm_key, lm_size, model_key, model_size in (("embed_size", m.config.embed_size, "word_embed_size", cfg.word_embed_size),
                                                   ("hidden_size", m.config.hidden_size, "hidden_size", cfg.hidden_size)):
        if lm_size != model_size:
            raise ConfigError(f"early fusion needs LM {lm_key} == model.{model_key} ({lm_size} != {model_size}); "
                              f"train the LM with --set {lm_key}={model_size}")
    to_lm = vocab_map(vocab, lm.vocab)
    known = [i for i, w in enumerate(vocab.words)
             if i in (vocab.bos_id, vocab.eos_id) or (w in lm.vocab and i not in (vocab.pad_id, vocab.unk_id))]
    idx, lm_idx = torch.tensor(known), to_lm[known]
    out_w, out_b = m.out.weight, m.out.bias  # (V_lm, E or H), (V_lm,)
    if m.proj is not None:
        out_w, out_b = out_w @ m.proj.weight, out_w @ m.proj.bias + out_b  # (V_lm, H), (V_lm,)
    w = cfg.word_embed_size
    with torch.no_grad():
        s2vt.embed.weight[idx] = m.embedding.weight[lm_idx]
        s2vt.lstm2.weight_ih_l0[:, cfg.hidden_size : cfg.hidden_size + w] = m.lstm.weight_ih_l0
        s2vt.lstm2.weight_hh_l0.copy_(m.lstm.weight_hh_l0)
        s2vt.lstm2.bias_ih_l0.copy_(m.lstm.bias_ih_l0)
        s2vt.lstm2.bias_hh_l0.copy_(m.lstm.bias_hh_l0)
        s2vt.out.weight[idx] = out_w[lm_idx]
        s2vt.out.bias[idx] = out_b[lm_idx]
    stats = {"words_copied": len(known), "words_unknown": len(vocab) - len(known) - 2}
    logger.info("early fusion: language layer from the LM, %d caption words copied, %d unknown to the LM",
                stats["words_copied"], stats["words_unknown"])
    return stats


def build_captioner(config: Any, vocab: Vocabulary, dims: dict[str, int], initialise: bool = True) -> nn.Module:
    """The captioner a run trains or loads, by ``config.lm_fusion`` (absent = ``none``).

    Args:
        config: an ExperimentConfig (``.model`` S2VTConfig, optional ``.lm_fusion`` LMFusionConfig).
        vocab: the caption vocabulary.
        dims: ``{"vocab_size", "frame_dim", "audio_dim"}``.
        initialise: apply early fusion's initialisation (False when weights are loaded next).

    Returns:
        S2VT (none / early) or DeepFusionS2VT (deep).
    """
    fusion = getattr(config, "lm_fusion", None) or LMFusionConfig()
    s2vt = S2VT(config.model, int(dims["vocab_size"]), int(dims["frame_dim"]), int(dims.get("audio_dim", 0)))
    if fusion.mode == "none":
        return s2vt
    lm = WordLM.load(fusion.lm)
    if fusion.mode == "early":
        if initialise:
            early_fusion_init(s2vt, lm, vocab)
        return s2vt
    return DeepFusionS2VT(s2vt, lm, vocab)
