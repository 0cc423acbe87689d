"""``fusion import-features``: pre-extracted arrays -> a feature store; runs on imported features."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fusion.errors import DataError
from fusion.features import FeatureStore
from fusion.features.imported import imported_config, imported_modality, imported_name, store_config_for
from fusion.features.importer import as_steps, default_name, import_features, match_report
from fusion.manifest import ManifestEntry, write_manifest

WIDTH = 6
CAPTIONS = ["a man is cooking", "a woman sings a song", "a dog runs on grass", "people dance on a stage"]


def _fusion(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fusion", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd)


def _good_folder(folder: Path, n: int = 6, steps: int = 5) -> dict[str, np.ndarray]:
    """``n`` readable (steps, WIDTH) arrays as v<i>.npy, one as a (WIDTH,) vector in an .npz."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {f"v{i}": rng.normal(size=(steps, WIDTH)).astype(np.float32) for i in range(n)}
    for vid, arr in arrays.items():
        np.save(folder / f"{vid}.npy", arr)
    vector = rng.normal(size=WIDTH).astype(np.float64)
    np.savez(folder / "vec.npz", features=vector, other=np.zeros(3))
    arrays["vec"] = vector[None].astype(np.float32)
    return arrays


def _bad_files(folder: Path) -> set[str]:
    """One file per kind of bad input; returns their ids."""
    np.save(folder / "wide.npy", np.ones((5, WIDTH + 2), np.float32))
    nan = np.ones((5, WIDTH), np.float32)
    nan[2, 3] = np.nan
    np.save(folder / "nan.npy", nan)
    np.save(folder / "empty.npy", np.zeros((0, WIDTH), np.float32))
    (folder / "text.npy").write_text("not an array\n")
    np.save(folder / "cube.npy", np.ones((2, 3, WIDTH), np.float32))
    np.save(folder / "words.npy", np.array(["a", "b", "c", "d", "e", "f"]))
    (folder / "notes.txt").write_text("ignored: not .npy / .npz\n")
    return {"wide", "nan", "empty", "text", "cube", "words"}


def test_as_steps_checks_each_kind_of_bad_array() -> None:
    assert as_steps(np.ones(WIDTH), WIDTH).shape == (1, WIDTH)
    assert as_steps(np.ones((3, WIDTH), np.float64), WIDTH).dtype == np.float32
    for bad, words in ((np.ones((2, 4)), "4-d features"), (np.zeros((0, WIDTH)), "empty"),
                       (np.full((2, WIDTH), np.inf), "NaN / inf"), (np.ones((1, 2, WIDTH)), "neither"),
                       (np.array(["x"] * WIDTH), "not a numeric array")):
        with pytest.raises(DataError, match=words):
            as_steps(bad, WIDTH)


def test_folder_import_skips_bad_files_and_resumes(tmp_path: Path) -> None:
    src = tmp_path / "features_toy"
    arrays = _good_folder(src)
    bad = _bad_files(src)
    summary = import_features(src, tmp_path / "store", progress=False)
    assert summary.name == "toy" and summary.width == WIDTH and summary.done == len(arrays)
    assert {f["id"] for f in summary.failed} == bad
    store = FeatureStore(tmp_path / "store")
    assert store.ids() == sorted(arrays)
    for vid, arr in arrays.items():
        rec = store[vid]
        np.testing.assert_allclose(rec.frames, arr, rtol=1e-6)
        assert rec.audio is None and rec.meta["imported"] == "toy"
    assert imported_name(store.config) == "toy" and imported_modality(store.config) == "frames"
    assert store.config.frames_per_clip == 5 and store.info["dims"] == {"frames": WIDTH, "audio": None}
    assert store.info["encoders"]["frames"]["imported"] is True
    assert {f["id"] for f in store.failures()} == bad
    again = import_features(src, tmp_path / "store", progress=False)  # resumes: the good ones are there
    assert again.done == 0 and again.skipped == len(arrays) and {f["id"] for f in again.failed} == bad


def test_h5_import_and_audio_modality(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "clips.h5"
    with h5py.File(path, "w") as h5:
        h5["a"] = np.ones((4, WIDTH), np.float32)
        h5["b"] = np.arange(WIDTH, dtype=np.float32)
        h5["c"] = np.ones((4, WIDTH + 1), np.float32)
        h5.create_group("d")["x"] = np.ones((4, WIDTH))
    summary = import_features(path, tmp_path / "store", name="snd", modality="audio", progress=False)
    assert summary.done == 2 and {f["id"] for f in summary.failed} == {"c", "d"}
    store = FeatureStore(tmp_path / "store")
    assert store["a"].frames is None and store["a"].audio.shape == (4, WIDTH) and store["b"].audio.shape == (1, WIDTH)
    assert imported_modality(store.config) == "audio"
    with pytest.raises(DataError, match="not frames features"):  # same store, other modality
        import_features(path, tmp_path / "store", name="snd", modality="frames", progress=False)


def test_unusable_sources_and_stores_fail_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for source, words in ((tmp_path / "missing", "no such file"), (tmp_path / "empty", "no .npy"),
                          (tmp_path / "x.csv", "not a folder")):
        if source.suffix:
            source.write_text("1,2\n")
        with pytest.raises(DataError, match=words):
            import_features(source, tmp_path / "s", progress=False)
    src = tmp_path / "src"
    _good_folder(src)
    import_features(src, tmp_path / "store", name="one", progress=False)
    with pytest.raises(DataError, match="--name one"):
        import_features(src, tmp_path / "store", name="two", progress=False)
    with pytest.raises(DataError, match="--name"):
        import_features(src, tmp_path / "s2", name="bad name!", progress=False)


def test_manifest_match_report_and_default_name() -> None:
    line = match_report(["a", "b", "z"], ["a", "b", "c"], "m.jsonl")
    assert line == ("m.jsonl: 2 of 3 manifest ids have features; 1 have none (e.g. 'c'); "
                    "1 stored ids are not in the manifest (e.g. 'z')")
    assert "must be the manifest's ids" in match_report(["vid1"], ["video1"], "m")
    assert default_name("/x/features_vgg16_ae128") == "vgg16_ae128" and default_name("my feats.h5") == "my_feats"


def test_imported_stores_adopt_other_names_but_not_other_modalities(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _good_folder(src)
    import_features(src, tmp_path / "store", name="release_b", progress=False)
    wanted = imported_config("release_a", "frames", 5)
    assert imported_name(store_config_for(tmp_path / "store", wanted)) == "release_b"  # a warning, not an error
    with pytest.raises(DataError, match="imported audio features"):
        store_config_for(tmp_path / "store", imported_config("release_a", "audio", 1))


# ----------------------------------------------------------------- runs on imported features
@pytest.fixture(scope="module")
def imported_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An imported store of 8 clips, their manifest, and a tiny random S2VT checkpoint trained on such features."""
    from fusion.experiment import ExperimentConfig
    from tests.builders import save_random_run

    root = tmp_path_factory.mktemp("imported")
    arrays = _good_folder(root / "features_toy", n=8)
    splits = ["train"] * 4 + ["val", "val", "test", "test"]
    entries = [ManifestEntry(vid, f"{vid}.mp4", split, [CAPTIONS[i % 4], CAPTIONS[(i + 1) % 4]])
               for i, (vid, split) in enumerate(zip(sorted(a for a in arrays if a != "vec"), splits))]
    write_manifest(entries, root / "manifest.jsonl")
    store = root / "store"
    assert import_features(root / "features_toy", store, progress=False).done == 9
    cfg = ExperimentConfig()
    cfg.data.manifest, cfg.data.features = str(root / "manifest.jsonl"), str(store)
    cfg.extract = imported_config("toy", "frames", 5)
    cfg.model.hidden_size, cfg.model.frame_embed_size, cfg.model.word_embed_size = 16, 8, 8
    cfg.decode.beam_size, cfg.decode.max_len = 2, 6
    save_random_run(root / "run", cfg, CAPTIONS, frame_dim=WIDTH, audio_dim=0)
    (root / "clip.mp4").write_bytes(b"\x00" * 64)
    return {"root": root, "run": root / "run", "store": store, "manifest": root / "manifest.jsonl", "cfg": cfg}


def test_caption_from_a_file_is_one_line_and_stored_records_caption(imported_run: dict) -> None:
    root = imported_run["root"]
    bad = _fusion("caption", str(root / "clip.mp4"), "--model", str(imported_run["run"]))
    assert bad.returncode == 2 and bad.stdout == ""
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be computed from a file" in lines[0] and "'toy'" in lines[0]
    assert "--features STORE --id ID" in lines[0]
    good = _fusion("caption", "--features", str(imported_run["store"]), "--id", "v6", "--id", "v7", "--model",
                   str(imported_run["run"]), "--json")
    assert good.returncode == 0, good.stderr
    rows = [json.loads(line) for line in good.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["v6", "v7"] and all(r["caption"] for r in rows)
    missing = _fusion("caption", "--features", str(imported_run["store"]), "--id", "nope", "--model",
                      str(imported_run["run"]))
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1 and "'nope'" in missing.stderr


def test_stage_names_the_import_command_for_missing_records(imported_run: dict) -> None:
    from fusion.stages import extract_features

    entries = [ManifestEntry("v0", "v0.mp4", "test", []), ManifestEntry("absent", "absent.mp4", "test", [])]
    cfg = imported_run["cfg"]
    with pytest.raises(DataError, match="fusion import-features SOURCE --out .* --name toy"):
        extract_features(entries[1:], imported_run["manifest"], cfg.extract, imported_run["store"], progress=False)
    with pytest.raises(DataError, match="1 of 2 videos have no features"):
        extract_features(entries, imported_run["manifest"], cfg.extract, imported_run["store"], progress=False)
    # not strict: the ids without a record are left to readable_entries, which skips them
    assert extract_features(entries, imported_run["manifest"], cfg.extract, imported_run["store"],
                            progress=False, strict=False) == imported_run["store"]


@pytest.mark.java
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_train_and_evaluate_on_imported_features(imported_run: dict, tmp_path: Path, java_available: bool) -> None:
    import dataclasses

    from fusion.config import to_dict
    from fusion.io import atomic_write_text

    cfg = dataclasses.replace(imported_run["cfg"])
    cfg.train.max_epochs, cfg.train.batch_size, cfg.train.val_metric, cfg.train.device = 1, 4, "loss", "cpu"
    cfg.train.tensorboard = False
    import yaml

    atomic_write_text(tmp_path / "cfg.yaml", yaml.safe_dump(to_dict(cfg)))
    trained = _fusion("train", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "run"))
    assert trained.returncode == 0, trained.stderr
    out = _fusion("evaluate", str(tmp_path / "run"), "--manifest", str(imported_run["manifest"]), "--features",
                  str(imported_run["store"]), "--split", "test", "--json")
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout)
    assert metrics["n_videos"] == 2 and 0.0 <= metrics["CIDEr"]
    (tmp_path / "corpus.txt").write_text("\n".join(CAPTIONS * 5) + "\n")
    lm = _fusion("lm", "train", str(tmp_path / "corpus.txt"), "--out", str(tmp_path / "lm"), "--set", "max_epochs=1",
                 "--set", "hidden_size=8", "--set", "embed_size=8", "--set", "min_word_count=1")
    assert lm.returncode == 0, lm.stderr
    tuned = _fusion("tune", str(tmp_path / "run"), "--lm", str(tmp_path / "lm"), "--alphas", "0.5", "--manifest",
                    str(imported_run["manifest"]), "--features", str(imported_run["store"]))
    assert tuned.returncode == 0, tuned.stderr
    ablated = _fusion("ablate", str(tmp_path / "run"), "--out", str(tmp_path / "ablation"), "--manifest",
                      str(imported_run["manifest"]), "--features", str(imported_run["store"]), "--json")
    assert ablated.returncode == 0, ablated.stderr
    assert json.loads(ablated.stdout)["n_videos"] == 2


def test_import_cli_one_line_per_bad_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    arrays = _good_folder(src)
    bad = _bad_files(src)
    write_manifest([ManifestEntry(v, f"{v}.mp4", "train", []) for v in [*arrays, "gone"]], tmp_path / "m.jsonl")
    res = _fusion("import-features", str(src), "--out", str(tmp_path / "store"), "--name", "toy",
                  "--manifest", str(tmp_path / "m.jsonl"))
    assert res.returncode == 1
    err = [line for line in res.stderr.splitlines() if line.startswith("fusion import-features: skipped")]
    assert len(err) == len(bad) and all(Path(line.split()[3].rstrip(":")).stem in bad for line in err)
    assert f"{len(arrays)} imported" in res.stdout and "7 of 8 manifest ids have features" in res.stdout
    again = _fusion("import-features", str(src), "--out", str(tmp_path / "store"), "--json")
    summary = json.loads(again.stdout)
    assert summary["done"] == 0 and summary["skipped"] == len(arrays) and summary["name"] == "toy"


def test_web_page_lists_the_run_and_refuses_uploads_in_one_message(imported_run: dict) -> None:
    from fusion.serve.runs import discover_runs, metrics_table
    from fusion.serve.service import CaptionService, UploadError

    runs = discover_runs(imported_run["root"])
    assert list(runs) == ["run"]
    headers, rows = metrics_table(runs)
    assert headers == ["metric", "run"] and rows
    service = CaptionService(runs)
    assert service.defaults("run").beam_size == 2
    with pytest.raises(UploadError, match="cannot be computed from a file"):
        service.analyse("run", imported_run["root"] / "clip.mp4")


def test_skipped_imported_record_names_its_feature_file(tmp_path: Path) -> None:
    from fusion.data import readable_entries

    src = tmp_path / "feats"
    _good_folder(src, n=2)
    _bad_files(src)
    store_dir = tmp_path / "store"
    import_features(src, store_dir, progress=False)
    store = FeatureStore(store_dir)
    entries = [ManifestEntry("v0", "videos/v0.mp4", "test", []), ManifestEntry("nan", "videos/nan.mp4", "test", [])]
    kept, skipped = readable_entries(entries, store, "test")
    assert [e.id for e in kept] == ["v0"] and len(skipped) == 1
    assert skipped[0]["video"].endswith("nan.npy") and "NaN" in skipped[0]["error"]  # not the manifest's video path
