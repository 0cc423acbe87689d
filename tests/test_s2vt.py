"""S2VT: teacher forcing equals step-by-step decoding, batching, absent audio, state ops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusion.data import collate
from fusion.features.config import FeatureRecord
from fusion.models.s2vt import S2VT, S2VTConfig, resample_steps

V, DV, DA, H = 11, 6, 4, 8


def _records(seed: int = 0) -> list[FeatureRecord]:
    rng = np.random.default_rng(seed)
    # Variable frame / audio lengths, one video without audio, one audio-only file.
    spec = [(5, 3), (3, None), (4, 7), (None, 2)]
    return [
        FeatureRecord(
            id=f"v{i}",
            frames=None if t is None else rng.normal(size=(t, DV)).astype(np.float32),
            audio=None if a is None else rng.normal(size=(a, DA)).astype(np.float32),
        )
        for i, (t, a) in enumerate(spec)
    ]


def _batch(records=None, tokens=True):
    records = records if records is not None else _records()
    rng = np.random.default_rng(1)
    toks = [[1, *rng.integers(4, V, size=n).tolist(), 2] for n in (3, 5, 1, 4)][: len(records)] if tokens else None
    return collate(records, DV, DA, toks, pad_id=0)


def _model(mode: str, seed: int = 0, deltas: bool = False, summary: int = 0, pooled: int = 0) -> S2VT:
    torch.manual_seed(seed)
    cfg = S2VTConfig(hidden_size=H, frame_embed_size=5, word_embed_size=3, audio_mode=mode, audio_embed_size=2,
                     frame_deltas=deltas, frame_summary_size=summary, audio_pooled_size=pooled)
    return S2VT(cfg, V, DV, DA).eval()


@pytest.mark.parametrize("mode,deltas,summary,pooled", [("none", False, 0, 0), ("early", False, 0, 0),
                                                        ("stream", False, 0, 0), ("stream", True, 0, 0),
                                                        ("none", False, 3, 0), ("stream", False, 3, 2)])
def test_forward_equals_stepwise_decoding(mode: str, deltas: bool, summary: int, pooled: int) -> None:
    model, batch = _model(mode, deltas=deltas, summary=summary, pooled=pooled), _batch()
    with torch.no_grad():
        logits = model(batch)  # (B, L-1, V)
        state = model.encode(batch)
        steps = []
        for t in range(batch.tokens.shape[1] - 1):
            log_probs, state = model.step(batch.tokens[:, t], state)
            steps.append(log_probs)
    stepwise = torch.stack(steps, 1)  # (B, L-1, V)
    assert logits.shape == (4, batch.tokens.shape[1] - 1, V)
    torch.testing.assert_close(torch.log_softmax(logits, -1), stepwise, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode,deltas,summary,pooled", [("none", False, 0, 0), ("early", False, 0, 0),
                                                        ("stream", False, 0, 0), ("none", True, 0, 0),
                                                        ("early", False, 3, 0), ("stream", True, 3, 2)])
def test_batched_equals_one_video_at_a_time(mode: str, deltas: bool, summary: int, pooled: int) -> None:
    model, records = _model(mode, deltas=deltas, summary=summary, pooled=pooled), _records()
    with torch.no_grad():
        batch = _batch(records)
        full = model(batch)
        for i, rec in enumerate(records):
            single = model(collate([rec], DV, DA, [batch.tokens[i].tolist()]))
            torch.testing.assert_close(full[i], single[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["early", "stream"])
def test_absent_audio_uses_the_learned_input(mode: str) -> None:
    model, batch = _model(mode), _batch()
    assert not batch.audio_present[1] and batch.audio_present[0]
    with torch.no_grad():
        before = model(batch)
        model.absent_audio.add_(1.0)
        after = model(batch)
    # Only the video without audio depends on the learned absent vector.
    assert not torch.allclose(before[1], after[1])
    torch.testing.assert_close(before[0], after[0])
    torch.testing.assert_close(before[2], after[2])
    assert model.absent_audio.requires_grad


def _no_dropout(model: S2VT) -> S2VT:
    model.config.modality_dropout = 0.999
    model.drop.p = 0.0
    return model


def test_modality_dropout_replaces_present_audio_in_training_early() -> None:
    model, batch = _no_dropout(_model("early")), _batch()
    torch.manual_seed(0)
    model.train()
    dropped, dropped_len = model.encoder_inputs(batch)
    model.eval()
    kept, _ = model.encoder_inputs(batch)
    no_audio = collate([FeatureRecord(id=r.id, frames=r.frames, audio=None) for r in _records()], DV, DA)
    absent, absent_len = model.encoder_inputs(no_audio)
    assert dropped_len.tolist() == absent_len.tolist()
    for i, n in enumerate(absent_len.tolist()):
        torch.testing.assert_close(dropped[i, :n], absent[i, :n])
    n0 = int(absent_len[0])
    assert not torch.allclose(kept[0, :n0], absent[0, :n0])


def test_modality_dropout_replaces_present_audio_in_training_stream() -> None:
    model, batch = _no_dropout(_model("stream")), _batch()
    torch.manual_seed(0)
    model.train()
    dropped = model.audio_summary(batch)  # (B, Ha)
    model.eval()
    kept = model.audio_summary(batch)
    torch.testing.assert_close(dropped, model.absent_audio.detach().expand_as(dropped))
    assert not torch.allclose(kept[0], model.absent_audio.detach())


def test_none_mode_ignores_audio() -> None:
    model, batch = _model("none"), _batch()
    with torch.no_grad():
        a = model(batch)
        batch.audio.normal_()
        torch.testing.assert_close(a, model(batch))
    assert not hasattr(model, "absent_audio")


def test_stream_summary_absent_and_state() -> None:
    model, batch = _model("stream"), _batch()
    with torch.no_grad():
        summary = model.audio_summary(batch)  # (B, Ha)
        state = model.encode(batch)
    assert summary.shape == (4, 2)
    # The video without an audio stream gets the learned absent vector; the others a summary.
    torch.testing.assert_close(summary[1], model.absent_audio.detach())
    assert not torch.allclose(summary[0], model.absent_audio.detach())
    torch.testing.assert_close(state.context, summary)
    # The summary of one video does not depend on the padding of the others.
    with torch.no_grad():
        alone = model.audio_summary(collate([_records()[2]], DV, DA))
    torch.testing.assert_close(alone[0], summary[2], atol=1e-6, rtol=1e-5)
    inputs, lengths = model.encoder_inputs(batch)  # the frame stream is S2VT's
    assert lengths.tolist() == [5, 3, 4, 1] and inputs.shape[-1] == model.input_size


def test_resample_steps_interpolates_over_relative_time() -> None:
    audio = torch.tensor([[0.0, 10.0, 20.0, 30.0]])[..., None]  # (1, 4, 1)
    out = resample_steps(audio, torch.tensor([4]), torch.tensor([2]), 2)  # 2 frames -> t=0.25, 0.75
    torch.testing.assert_close(out[0, :, 0], torch.tensor([5.0, 25.0]))
    same = resample_steps(audio, torch.tensor([4]), torch.tensor([4]), 4)
    torch.testing.assert_close(same, audio)


def test_select_and_expand_state() -> None:
    model, batch = _model("early"), _batch()
    state = model.encode(batch)
    expanded = model.expand_state(state, 3)
    assert expanded.context is None
    assert expanded.num_rows == 12
    torch.testing.assert_close(expanded.h2[0, 3:6], state.h2[0, 1:2].expand(3, -1))
    picked = model.select_state(expanded, torch.tensor([11, 0]))
    torch.testing.assert_close(picked.c1[0], torch.stack([state.c1[0, 3], state.c1[0, 0]]))


def test_select_state_carries_the_stream_summary() -> None:
    model, batch = _model("stream"), _batch()
    state = model.encode(batch)
    picked = model.select_state(model.expand_state(state, 2), torch.tensor([7, 0]))
    torch.testing.assert_close(picked.context, state.context[[3, 0]])


def test_greedy_matches_argmax_of_steps() -> None:
    model, batch = _model("stream"), _batch(tokens=False)
    out = model.greedy(batch, bos_id=1, eos_id=2, max_len=6)
    assert len(out) == 4 and all(len(o) <= 6 and 2 not in o for o in out)
    state = model.encode(batch)
    tok = torch.full((4,), 1)
    with torch.no_grad():
        lp, _ = model.step(tok, state)
    for i, o in enumerate(out):
        first = int(lp[i].argmax())
        assert (o[:1] == [first]) or (first == 2 and o == [])


def test_frame_summary_is_mean_and_change_and_absent_without_frames() -> None:
    model, batch = _model("stream", summary=3), _batch()
    model.frame_summary_proj.weight.data.zero_()
    model.frame_summary_proj.bias.data.zero_()
    model.frame_summary_proj.weight.data[0, :DV] = 1.0  # unit 0 = sum of the mean frame's dims
    model.frame_summary_proj.weight.data[1, DV:] = 1.0  # unit 1 = sum of the change's dims
    records = _records()
    with torch.no_grad():
        summary = model.frame_summary(batch)  # (B, 3)
        context = model.encode(batch).context
    f = records[0].frames  # 5 frames: steps 0-2 are the first half (t < 2.5), 3-4 the second
    assert summary[0, 0].item() == pytest.approx(float(f.mean(0).sum()), abs=1e-4)
    assert summary[0, 1].item() == pytest.approx(float((f[3:].mean(0) - f[:3].mean(0)).sum()), abs=1e-4)
    f = records[2].frames  # 4 frames, padded to 5 in the batch: the padding is not read
    assert summary[2, 1].item() == pytest.approx(float((f[2:].mean(0) - f[:2].mean(0)).sum()), abs=1e-4)
    torch.testing.assert_close(summary[3], model.absent_frame_summary.detach())  # audio-only file
    assert context.shape == (4, 3 + 2)  # [picture summary, audio summary]
    torch.testing.assert_close(context[:, :3], summary)


def test_pooled_audio_summary_is_mean_and_std_and_absent_without_audio() -> None:
    model, batch = _model("stream", pooled=2), _batch()
    model.audio_pooled_proj.weight.data.zero_()
    model.audio_pooled_proj.bias.data.zero_()
    model.audio_pooled_proj.weight.data[0, :DA] = 1.0  # unit 0 = sum of the mean's dims
    model.audio_pooled_proj.weight.data[1, DA:] = 1.0  # unit 1 = sum of the std's dims
    records = _records()
    with torch.no_grad():
        summary = model.audio_summary(batch)  # (B, 2 + 2)
    a = records[0].audio  # 3 audio steps, padded to 7 in the batch: the padding is not read
    assert summary.shape == (4, 4)
    assert summary[0, 2].item() == pytest.approx(float(a.mean(0).sum()), abs=1e-4)
    assert summary[0, 3].item() == pytest.approx(float(a.std(0).sum()), abs=1e-4)
    absent = torch.cat([model.absent_audio, model.absent_audio_pooled]).detach()
    torch.testing.assert_close(summary[1], absent)  # the video without an audio stream
    with pytest.raises(ValueError, match="audio_pooled_size"):
        S2VTConfig(audio_mode="early", audio_pooled_size=4)


def test_pool_steps_averages_runs_of_valid_steps() -> None:
    from fusion.models.layers import pool_steps

    steps = torch.arange(2 * 5 * 1, dtype=torch.float32).view(2, 5, 1)  # (B, T, D)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    pooled, pooled_mask = pool_steps(steps, mask, 2)
    assert pooled_mask.tolist() == [[True, True, True], [True, True, False]]
    torch.testing.assert_close(pooled[0, :, 0], torch.tensor([0.5, 2.5, 4.0]))
    torch.testing.assert_close(pooled[1, :2, 0], torch.tensor([5.5, 7.0]))


@pytest.mark.parametrize("mode", ["none", "early"])
def test_frame_pool_over_the_clip_reads_the_mean_frame(mode: str) -> None:
    """frame_pool >= T is the mean-pooled model: the same as frame_pool 1 on each record's mean frame."""
    torch.manual_seed(0)
    cfg = S2VTConfig(hidden_size=H, frame_embed_size=5, word_embed_size=3, audio_mode=mode, audio_embed_size=2)
    one = S2VT(cfg, V, DV, DA).eval()
    pooled = S2VT(S2VTConfig(**{**cfg.__dict__, "frame_pool": 50}), V, DV, DA).eval()
    pooled.load_state_dict(one.state_dict())
    records = _records()[:3]  # every one has frames
    means = [FeatureRecord(r.id, r.frames.mean(0, keepdims=True), r.audio) for r in records]
    with torch.no_grad():
        torch.testing.assert_close(pooled(_batch(records)), one(_batch(means)), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="frame_pool"):
        S2VTConfig(frame_pool=0)
