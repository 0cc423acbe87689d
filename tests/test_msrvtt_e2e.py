"""The whole audio-visual path on the 18 real MSR-VTT clips of the shared data (with their
sound): manifest from the official annotation zips, ``fusion extract`` (real encoders; stereo
MP3 mixed to mono), a few training steps of the audio-stream recipe, ``fusion evaluate``
against each clip's 20 real references, ``fusion caption --explain`` and ``fusion ablate``,
whose audio conditions differ from ``full`` here (on MSVD, which has no audio, they cannot).

Tiny model, few steps, one thread: the cost is the extraction of 18 real clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fusion.cli import main as cli_main
from fusion.manifest import ManifestEntry, load_manifest, write_manifest

pytestmark = [pytest.mark.real_data, pytest.mark.real_weights, pytest.mark.java, pytest.mark.slow]

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "msrvtt" / "audio_stream.yaml"
TINY = ["--set", "extract.frames_per_clip=4", "--set", "model.hidden_size=32", "--set", "model.frame_embed_size=16",
        "--set", "model.word_embed_size=16", "--set", "model.audio_embed_size=16", "--set", "model.audio_pooled_size=8",
        "--set", "train.max_steps=4", "--set", "train.batch_size=32", "--set", "train.warmup_steps=0",
        "--set", "data.min_word_count=1", "--set", "data.max_val_videos=4", "--set", "train.device=cpu",
        "--set", "train.num_threads=1", "--set", "train.tensorboard=false"]
DECODE = ["--beam", "2", "--threads", "1"]


def _cli_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    code = cli_main(argv)
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured.err
    return json.loads(out)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Manifests of the 18 clips: ``all`` (every clip in split test, for evaluation and
    ablation) and ``train`` (14 train / 4 val, for training); ``root`` is the work folder."""
    import torch

    from fusion.paths import data_dir

    source = data_dir() / "msrvtt"
    if not (source / "annotations").is_dir() or not (source / "clips").is_dir():
        pytest.skip(f"MSR-VTT annotations or clips not found in {source}; set FUSION_DATA_DIR to the shared data folder")
    from data_prep.msrvtt import build_msrvtt

    root = tmp_path_factory.mktemp("msrvtt")
    summary = build_msrvtt(source / "annotations", root / "full.jsonl", videos_dir=source / "clips")
    assert summary.present == 18 and summary.with_audio == 18
    present = sorted((e for e in load_manifest(root / "full.jsonl") if Path(e.video).is_file()),
                     key=lambda e: int(e.id.removeprefix("video")))
    assert len(present) == 18 and all(len(e.captions) == 20 for e in present)
    write_manifest([ManifestEntry(e.id, e.video, "test", e.captions, e.meta) for e in present], root / "all.jsonl")
    write_manifest([ManifestEntry(e.id, e.video, "train" if i < 14 else "val", e.captions, e.meta)
                    for i, e in enumerate(present)], root / "train.jsonl")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield {"root": root, "all": root / "all.jsonl", "train": root / "train.jsonl", "store": root / "features"}
    torch.set_num_threads(threads)


def _mono_by_hand(path: str) -> np.ndarray:
    """The file's audio decoded with av as stereo at 22,050 Hz, channels averaged."""
    import av

    chunks = []
    with av.open(path) as container:
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=22050)
        for frame in container.decode(container.streams.audio[0]):
            frame.pts = None
            chunks += [r.to_ndarray() for r in resampler.resample(frame)]  # (2, n)
        chunks += [r.to_ndarray() for r in resampler.resample(None)]
    stereo = np.concatenate(chunks, axis=1)  # (2, S)
    return np.clip(stereo.mean(axis=0), -1.0, 1.0)  # (S,)


def test_stereo_mp3_is_mixed_to_mono(clips: dict[str, Path]) -> None:
    from fusion.media import decode, probe

    entries = load_manifest(clips["all"])
    infos = [probe(e.video) for e in entries]
    assert all(i.has_audio_stream and i.audio_codec in ("mp3", "mp3float") and i.audio_channels == 2 for i in infos)
    assert all(i.audio_sample_rate_hz == 44100 for i in infos)
    shortest = min(entries, key=lambda e: e.meta["end_s"] - e.meta["start_s"])
    audio = decode(shortest.video, frames=False).audio
    assert audio is not None and audio.ndim == 1 and audio.dtype == np.float32  # (S,) mono
    by_hand = _mono_by_hand(shortest.video)
    assert abs(audio.size - by_hand.size) <= 2
    n = min(audio.size, by_hand.size)
    assert np.abs(audio[:n] - by_hand[:n]).max() < 1e-4  # the mean of the two channels


def test_extract_train_evaluate_caption_ablate(clips: dict[str, Path], java_available: bool,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from fusion.features import FeatureStore

    store_dir, run_dir = clips["store"], clips["root"] / "run"
    summary = _cli_json(capsys, ["extract", str(clips["all"]), "--out", str(store_dir),
                                 "--set", "frames_per_clip=4", "--json"])
    assert summary["done"] == 18 and not summary["failed"]
    store = FeatureStore(store_dir)
    entries = load_manifest(clips["all"])
    records = [store[e.id] for e in entries]
    # Real sound: every clip's audio is present (SoundNet steps), never absent or zeros.
    assert all(r.meta["has_audio_stream"] and r.audio is not None and r.audio.ndim == 2 for r in records)
    assert all(float(np.abs(r.audio).sum()) > 0 and r.posterior("audio", "places2").shape == (401,) for r in records)
    assert all(abs(r.meta["audio_seconds"] - (e.meta["end_s"] - e.meta["start_s"])) < 1.0
               for r, e in zip(records, entries))
    assert all(r.frames.shape[0] == 4 for r in records)

    trained = _cli_json(capsys, ["train", str(CONFIG), "--manifest", str(clips["train"]), "--features",
                                 str(store_dir), "--out", str(run_dir), "--no-progress", "--json", *TINY])
    assert trained["steps"] == 4

    metrics = _cli_json(capsys, ["evaluate", str(run_dir), "--manifest", str(clips["all"]), "--features",
                                 str(store_dir), "--split", "test", "--json", *DECODE])
    predictions = json.loads((run_dir / "eval" / "test" / "predictions.json").read_text())
    assert set(predictions) == {e.id for e in entries}
    per_video = json.loads((run_dir / "eval" / "test" / "per_video.json").read_text())
    assert len(per_video) == 18
    meteor = metrics["metrics"]["METEOR"] if "metrics" in metrics else metrics["METEOR"]
    assert 0.0 <= meteor <= 1.0

    code = cli_main(["caption", "--model", str(run_dir), "--explain", *DECODE, entries[0].video])
    text = capsys.readouterr().out
    assert code == 0 and text.startswith(f"{entries[0].video}: ")
    assert "caption" in text and "audio" in text  # per-scorer breakdown with the verifier's share

    report = _cli_json(capsys, ["ablate", str(run_dir), "--out", str(clips["root"] / "ablation"), "--manifest",
                                str(clips["all"]), "--features", str(store_dir), "--conditions", "audio_absent",
                                "audio_zero", "audio_shuffled", "--bootstrap", "100", "--json", *DECODE])
    assert report["n_videos"] == 18 and report["n_audio_absent"] == 0 and not report["notes"]
    rows = {row["name"]: row for row in report["conditions"]}
    full_score = rows["full"]["metrics"]["mean_score"]
    for name in ("audio_absent", "audio_zero", "audio_shuffled"):
        assert "identical_to_full" not in rows[name], rows[name]
        assert rows[name]["metrics"]["mean_score"] != pytest.approx(full_score, abs=1e-6), name
