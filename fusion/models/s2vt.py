"""S2VT: sequence to sequence video to text, with an optional audio input.

Venugopalan et al., "Sequence to Sequence -- Video to Text", ICCV 2015. Two stacked LSTMs
share one timeline. In the *encoding* phase the first LSTM reads the (projected) frame
features while the second reads the first's output next to an empty word slot; in the
*decoding* phase the first LSTM reads padding and the second reads the first's output
concatenated with the embedding of the previous word; a linear layer and a softmax over the
vocabulary follow the second LSTM.

Audio (SoundNet features), chosen by ``S2VTConfig.audio_mode``:

* ``"none"``: the paper's video-only model.
* ``"early"``: the audio steps are resampled (linear interpolation over time) to the frame
  steps, projected to ``audio_embed_size`` and concatenated to every frame step.
* ``"stream"``: a separate audio input stream. An audio LSTM reads the SoundNet steps at their
  own rate (~0.37 s per pool5 step); the mean of its outputs over the clip (a summary that
  does not care when the sound happens) joins the second LSTM's input at every step, next to
  the first LSTM's output and the word. The frame stream is S2VT's, untouched, so the sound
  never competes with the picture for the first LSTM's memory (the README's benchmark
  tables compare the modes).

A clip-level picture summary (``frame_summary_size > 0``) joins the second LSTM the same way:
the standardised frame features' mean and their change (mean of the second half of the frames
minus the first half's), projected. S2VT's first LSTM must carry what it saw through its
state; the summary hands the decoder, at every word, what a linear probe reads best from
pooled features (which object is which colour and shape, and where it goes).

An absent audio modality (a video without an audio stream, e.g. every MSVD clip) is never fed
as zeros pretending to be sound: it is replaced by a *learned* ``absent`` vector (one per
frame step in ``early`` mode, the audio summary in ``stream`` mode). With
``modality_dropout = p`` training replaces present audio by the absent input with
probability ``p`` per video, so the model also learns to caption without sound.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from fusion.models.captioner import CaptionDecoder
from fusion.models.layers import Standardize, pool_steps, resample_steps

if TYPE_CHECKING:
    from fusion.data import Batch

logger = logging.getLogger(__name__)

AudioMode = Literal["none", "early", "stream"]


@dataclass
class S2VTConfig:
    """Hyper-parameters of :class:`S2VT` (input and vocabulary sizes come from the data).

    Defaults follow the released S2VT Caffe model: 1000 hidden units per LSTM, frame
    features and words embedded to 500 dimensions, dropout 0.5.
    """

    hidden_size: int = 1000
    frame_embed_size: int = 500
    word_embed_size: int = 500
    audio_mode: AudioMode = "none"
    audio_embed_size: int = 128  # "early": audio part of every frame step; "stream": audio LSTM width
    dropout: float = 0.5
    modality_dropout: float = 0.0  # training only: P(present audio -> learned absent input)
    input_norm: bool = True  # standardise each feature dim with training-set mean / std
    frame_deltas: bool = False  # also feed x_t - x_(t-1): a cheap motion cue (S2VT used optical flow)
    frame_summary_size: int = 0  # > 0: a clip-level picture summary of this width joins the second LSTM
    audio_pooled_size: int = 0  # "stream" only, > 0: a linear summary of the audio steps' mean and std beside the LSTM's
    # > 1: the first LSTM reads the mean of each run of this many frame steps (S2VT read every 10th
    # frame); a value >= the frames per clip reads one mean-pooled vector (Venugopalan et al., NAACL 2015)
    frame_pool: int = 1

    def __post_init__(self) -> None:
        for name in ("hidden_size", "frame_embed_size", "word_embed_size", "audio_embed_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.frame_pool < 1:
            raise ValueError(f"model.frame_pool must be >= 1 (1 = every frame step), got {self.frame_pool}")
        for name in ("frame_summary_size", "audio_pooled_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"model.{name} must be >= 0 (0 = off), got {getattr(self, name)}")
        if self.audio_pooled_size and self.audio_mode != "stream":
            raise ValueError(f"model.audio_pooled_size is part of the audio stream; set audio_mode: stream or 0, "
                             f"got audio_mode {self.audio_mode!r}")
        for name in ("dropout", "modality_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"model.{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def uses_audio(self) -> bool:
        """Whether the model reads the audio features at all."""
        return self.audio_mode != "none"


@dataclass
class DecoderState:
    """Recurrent state of both LSTMs for ``N`` decoding rows.

    Attributes:
        h1, c1: float32 (1, N, H) first LSTM hidden / cell state.
        h2, c2: float32 (1, N, H) second LSTM hidden / cell state.
        context: float32 (N, S) the clip summaries that join the second LSTM at every step
            (picture summary, then the audio stream's), or None when the model has none.
    """

    h1: Tensor
    c1: Tensor
    h2: Tensor
    c2: Tensor
    context: Tensor | None = None  # float32 (N, S): [picture summary, audio summary], else None

    def index_select(self, idx: Tensor) -> DecoderState:
        """Rows ``idx`` (long (N',)) of every tensor, in that order."""
        context = None if self.context is None else self.context.index_select(0, idx)
        return DecoderState(*(t.index_select(1, idx) for t in (self.h1, self.c1, self.h2, self.c2)), context=context)

    @property
    def num_rows(self) -> int:
        """N, the number of decoding rows."""
        return self.h1.shape[1]

    @property
    def device(self) -> torch.device:
        """Where the state lives."""
        return self.h1.device


class S2VT(CaptionDecoder):
    """The S2VT captioner; see the module docstring. ``forward``, ``step``, ``greedy`` and the
    beam's row bookkeeping come from :class:`~fusion.models.captioner.CaptionDecoder`.

    Args:
        config: hyper-parameters.
        vocab_size: V, output classes (the vocabulary, specials included).
        frame_dim: Dv, raw frame feature width (EfficientNet-Lite0: 1280, VGG16 fc7: 4096).
        audio_dim: Da, raw audio feature width (SoundNet pool5: 256); ignored for "none".
    """

    def __init__(self, config: S2VTConfig, vocab_size: int, frame_dim: int, audio_dim: int = 0) -> None:
        super().__init__()
        self.config = config
        self.vocab_size, self.frame_dim, self.audio_dim = vocab_size, frame_dim, audio_dim
        self.frame_norm = Standardize(frame_dim)
        self.frame_proj = nn.Linear(frame_dim * (2 if config.frame_deltas else 1), config.frame_embed_size)
        # A video with no video stream (audio-only file) reads one learned step.
        self.absent_frames = nn.Parameter(torch.zeros(config.frame_embed_size))
        self.input_size = config.frame_embed_size
        if config.uses_audio:
            if audio_dim < 1:
                raise ValueError(f"audio_mode {config.audio_mode!r} needs audio_dim >= 1, got {audio_dim}")
            width = config.audio_embed_size
            self.audio_norm = Standardize(audio_dim)
            self.audio_proj = nn.Linear(audio_dim, width)
            self.absent_audio = nn.Parameter(torch.randn(width) * 0.1)  # learned "no sound" input
            if config.audio_mode == "early":
                self.input_size += width
            else:
                self.audio_lstm = nn.LSTM(width, width, batch_first=True)
                if config.audio_pooled_size:
                    self.audio_pooled_proj = nn.Linear(2 * audio_dim, config.audio_pooled_size)
                    self.absent_audio_pooled = nn.Parameter(torch.randn(config.audio_pooled_size) * 0.1)
        if config.frame_summary_size:
            self.frame_summary_proj = nn.Linear(2 * frame_dim, config.frame_summary_size)
            self.absent_frame_summary = nn.Parameter(torch.randn(config.frame_summary_size) * 0.1)  # no video stream
        audio_summary = config.audio_embed_size + config.audio_pooled_size if config.audio_mode == "stream" else 0
        self.summary_size = config.frame_summary_size + audio_summary
        self.embed = nn.Embedding(vocab_size, config.word_embed_size)
        self.lstm1 = nn.LSTM(self.input_size, config.hidden_size, batch_first=True)
        self.lstm2 = nn.LSTM(config.hidden_size + config.word_embed_size + self.summary_size, config.hidden_size, batch_first=True)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden_size, vocab_size)
        self._init_forget_gates()

    def _init_forget_gates(self) -> None:
        """Forget-gate biases start at 1 (Jozefowicz et al., ICML 2015), so the video seen in
        the encoding phase survives the decoding phase's steps from the start of training."""
        h = self.config.hidden_size
        with torch.no_grad():
            for lstm in (self.lstm1, self.lstm2):
                lstm.bias_ih_l0[h : 2 * h].fill_(1.0)  # gate order i, f, g, o
                lstm.bias_hh_l0[h : 2 * h].zero_()

    def set_input_stats(self, frames: Tensor, audio: Tensor | None) -> None:
        """Standardise inputs with these training features' per-dimension mean / std, and cap each
        standardised step's root mean square at the largest of these training steps.

        Args:
            frames: float32 (N, Dv) training frame features (all steps of all videos).
            audio: float32 (M, Da) training audio steps, or None (no audio anywhere).
        """
        has_audio = self.config.uses_audio and audio is not None and len(audio) > 0
        if self.config.input_norm:
            self.frame_norm.set_stats(frames.mean(0), frames.std(0))
            if has_audio and len(audio) > 1:
                self.audio_norm.set_stats(audio.mean(0), audio.std(0))
        self.frame_norm.fit_max_rms(frames)  # identity on the training steps themselves
        if has_audio:
            self.audio_norm.fit_max_rms(audio)

    # ------------------------------------------------------------------ encoding inputs
    def _frame_inputs(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Projected frame steps (B, T, E) and their lengths long (B,)."""
        f = self.frame_norm(batch.frames)  # (B, T, Dv)
        if self.config.frame_deltas:
            delta = torch.cat([torch.zeros_like(f[:, :1]), f[:, 1:] - f[:, :-1]], 1)  # (B, T, Dv)
            f = torch.cat([f, delta], -1)  # (B, T, 2 Dv)
        mask = batch.frame_mask  # (B, T)
        if self.config.frame_pool > 1:
            f, mask = pool_steps(f, mask, self.config.frame_pool)  # (B, T', Dv'), (B, T')
        x = self.drop(self.frame_proj(f))  # (B, T', E)
        x = x * mask[..., None]
        lengths = mask.sum(1)  # (B,)
        no_frames = ~batch.frame_present  # (B,)
        if no_frames.any():
            x = x.clone()
            x[no_frames, 0] = self.absent_frames
            lengths = torch.where(no_frames, torch.ones_like(lengths), lengths)
        return x, lengths

    def _audio_present(self, batch: Batch) -> Tensor:
        """bool (B,): audio present and, in training, not dropped by modality dropout."""
        present = batch.audio_present.clone()
        p = self.config.modality_dropout
        if self.training and p > 0:
            present &= torch.rand(present.shape, device=present.device) >= p
        return present

    def audio_summary(self, batch: Batch) -> Tensor:
        """The "stream" mode's audio summary: mean audio-LSTM output over the clip.

        Returns:
            float32 (B, Ha [+ Pa]); the learned absent vector where audio is absent (or dropped).
            With ``audio_pooled_size`` = Pa, a linear summary of the standardised steps' mean
            and standard deviation follows the LSTM's.
        """
        present = self._audio_present(batch)  # (B,)
        x = self.audio_norm(batch.audio)  # (B, A, Da)
        a = self.drop(self.audio_proj(x))  # (B, A, Ha)
        a_len = batch.audio_mask.sum(1).clamp(min=1)  # (B,)
        packed = pack_padded_sequence(a, a_len.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.audio_lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=a.shape[1])  # (B, A, Ha), zeros past length
        summary = out.sum(1) / a_len[:, None].to(out.dtype)  # (B, Ha)
        absent = self.absent_audio
        if self.config.audio_pooled_size:
            mask = batch.audio_mask.to(x.dtype)[..., None]  # (B, A, 1)
            n = a_len[:, None].to(x.dtype)  # (B, 1)
            mean = (x * mask).sum(1) / n  # (B, Da)
            std = ((((x - mean[:, None]) ** 2) * mask).sum(1) / n).clamp(min=1e-6).sqrt()  # (B, Da)
            pooled = self.drop(self.audio_pooled_proj(torch.cat([mean, std], -1)))  # (B, Pa)
            summary = torch.cat([summary, pooled], -1)
            absent = torch.cat([absent, self.absent_audio_pooled])
        return torch.where(present[:, None], summary, absent.expand_as(summary))

    def frame_summary(self, batch: Batch) -> Tensor:
        """The clip-level picture summary (``frame_summary_size > 0``).

        Returns:
            float32 (B, Sv): projected [mean frame, mean of the second half of the frames minus
            the first half's] of the standardised features; the learned absent vector for a
            video without frames. Padding steps are never read.
        """
        f = self.frame_norm(batch.frames)  # (B, T, Dv)
        mask = batch.frame_mask.to(f.dtype)  # (B, T)
        n = mask.sum(1, keepdim=True)  # (B, 1)
        t = torch.arange(f.shape[1], device=f.device, dtype=f.dtype)[None]  # (1, T)
        second = mask * (t >= n / 2).to(f.dtype)  # (B, T)
        first = mask - second
        pool = lambda w: (f * w[..., None]).sum(1) / w.sum(1, keepdim=True).clamp(min=1)  # noqa: E731  (B, Dv)
        change = torch.where(n > 1, pool(second) - pool(first), torch.zeros_like(f[:, 0]))  # (B, Dv)
        summary = self.drop(self.frame_summary_proj(torch.cat([pool(mask), change], -1)))  # (B, Sv)
        present = batch.frame_present[:, None]  # (B, 1)
        return torch.where(present, summary, self.absent_frame_summary.expand_as(summary))

    def context(self, batch: Batch) -> Tensor | None:
        """float32 (B, S): the summaries that join the second LSTM at every step, or None."""
        parts = []
        if self.config.frame_summary_size:
            parts.append(self.frame_summary(batch))  # (B, Sv)
        if self.config.audio_mode == "stream":
            parts.append(self.audio_summary(batch))  # (B, Ha)
        return torch.cat(parts, -1) if parts else None

    def encoder_inputs(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """The first LSTM's encoding-phase input sequence.

        Returns:
            inputs: float32 (B, S, input_size), padded at the end.
            lengths: long (B,) valid steps per video.
        """
        x, lengths = self._frame_inputs(batch)  # (B, T, E), (B,)
        if self.config.audio_mode != "early":
            return x, lengths
        present = self._audio_present(batch)  # (B,)
        a = self.drop(self.audio_proj(self.audio_norm(batch.audio)))  # (B, A, Ea)
        a = resample_steps(a, batch.audio_mask.sum(1), lengths, x.shape[1])  # (B, T, Ea)
        a = torch.where(present[:, None, None], a, self.absent_audio.expand_as(a))
        return torch.cat([x, a], -1), lengths  # steps past a video's length are never read

    # ------------------------------------------------------------------ public API
    def encode(self, batch: Batch) -> DecoderState:
        """Run the encoding phase; returns the state the decoding phase starts from (N = B)."""
        inputs, lengths = self.encoder_inputs(batch)  # (B, S, D), (B,)
        packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out1, (h1, c1) = self.lstm1(packed)
        parts = [out1.data, out1.data.new_zeros(out1.data.shape[0], self.config.word_embed_size)]  # words: padding
        context = self.context(batch)  # (B, S) | None
        if context is not None:
            # Packed rows are time-major over the length-sorted videos: row -> its video.
            rows = torch.cat([out1.sorted_indices[: int(n)] for n in out1.batch_sizes])  # (sum of lengths,)
            parts.append(context.index_select(0, rows))
        in2 = PackedSequence(torch.cat(parts, 1), out1.batch_sizes, out1.sorted_indices, out1.unsorted_indices)
        _, (h2, c2) = self.lstm2(in2)
        return DecoderState(h1, c1, h2, c2, context=context)

    def decoder_outputs(self, words: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """The decoding phase's LSTMs over given previous words (the step every S2VT variant shares).

        Args:
            words: long (N, L) previous words (BOS first).
            state: state for N rows.

        Returns:
            the second LSTM's outputs float32 (N, L, H) and the state after the L steps.
        """
        n, steps = words.shape
        pad = words.new_zeros((n, steps, self.input_size), dtype=state.h1.dtype)  # (N, L, D)
        o1, (h1, c1) = self.lstm1(pad, (state.h1, state.c1))  # (N, L, H)
        o2, (h2, c2) = self.lstm2(self.second_inputs(o1, words, state), (state.h2, state.c2))  # (N, L, H)
        return o2, DecoderState(h1, c1, h2, c2, context=state.context)

    def _decode(self, words: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """Logits float32 (N, L, V) over given previous words ``words`` long (N, L), and the state after them."""
        o2, state = self.decoder_outputs(words, state)  # (N, L, H)
        return self.out(self.drop(o2)), state

    def second_inputs(self, o1: Tensor, words: Tensor, state: DecoderState) -> Tensor:
        """The second LSTM's decoding-phase input: [first LSTM output, word embedding, context].

        Args: o1 float32 (N, L, H); words long (N, L); state with the rows' context.
        Returns: float32 (N, L, H + W + S).
        """
        e = self.drop(self.embed(words))  # (N, L, W)
        if state.context is None:
            return torch.cat([o1, e], -1)
        return torch.cat([o1, e, state.context[:, None].expand(-1, words.shape[1], -1)], -1)
