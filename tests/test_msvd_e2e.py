"""The whole MSVD path on the 8 real clips of the shared data: manifest, extract (real
encoders), train a few steps, evaluate against the real references, caption; every clip
reports absent audio (MSVD has none)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fusion.checkpoint import load_run
from fusion.cli import main as cli_main
from fusion.manifest import load_manifest, write_manifest

pytestmark = [pytest.mark.real_data, pytest.mark.real_weights, pytest.mark.java, pytest.mark.slow]

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "msvd" / "s2vt.yaml"


@pytest.fixture(scope="module")
def msvd_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fusion.paths import data_dir

    source = data_dir() / "msvd"
    if not (source / "clips").is_dir():
        pytest.skip(f"MSVD clips not found in {source}; set FUSION_DATA_DIR to the shared data folder")
    from data_prep.msvd import build_msvd

    root = tmp_path_factory.mktemp("msvd")
    build_msvd(root / "all.jsonl", source=source)
    present = [e for e in load_manifest(root / "all.jsonl") if Path(e.video).is_file()]
    assert len(present) == 8 and {e.split for e in present} == {"train", "test"}
    write_manifest(present, root / "manifest.jsonl")
    return root / "manifest.jsonl"


def test_msvd_extract_train_evaluate_caption(msvd_manifest: Path, java_available: bool, capsys) -> None:
    from fusion.decoding.config import resolve_decode_config
    from fusion.decoding.decoder import CaptionDecoder
    from fusion.evaluation import coco_metrics
    from fusion.features import FeatureStore

    run_dir = msvd_manifest.parent / "run"
    small = ["--set", "extract.frames_per_clip=4", "--set", "model.hidden_size=32", "--set", "model.frame_embed_size=16",
             "--set", "model.word_embed_size=16", "--set", "train.max_steps=3", "--set", "train.batch_size=16",
             "--set", "data.val_split=test", "--set", "train.val_metric=METEOR", "--set", "train.device=cpu"]
    code = cli_main(["train", str(CONFIG), "--manifest", str(msvd_manifest), "--out", str(run_dir), "--no-progress",
                     "--json", *small])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 3 and summary["best_metric"] == "METEOR"

    run = load_run(run_dir)
    assert run.config.model.audio_mode == "none" and run.config.extract.frames_per_clip == 4
    store = FeatureStore(run.config.data.features)
    entries = load_manifest(msvd_manifest)
    records = [store[e.id] for e in entries]
    # MSVD has no audio: every clip's audio is absent (None), never zeros.
    assert all(r.audio is None and r.meta.get("has_audio_stream") is False for r in records)
    assert all(r.frames.shape == (4, 1280) for r in records)

    test = [e for e in entries if e.split == "test"]
    decoder = CaptionDecoder(run, resolve_decode_config(run, {"beam_size": 2}))
    hyps = decoder.decode([store[e.id] for e in test])
    predictions = {e.id: h[0].words for e, h in zip(test, hyps)}
    result = coco_metrics(predictions, {e.id: e.captions for e in test})
    assert result.n_videos == 2 and 0.0 <= result.metrics["METEOR"] <= 1.0
    assert all(len(e.captions) > 10 for e in test)  # real MSVD references
    assert set(result.per_video) == set(predictions)

    try:
        from fusion.pipeline import CaptionPipeline
    except ModuleNotFoundError:
        pytest.skip("fusion.pipeline (CaptionPipeline) is not in this checkout yet")
    pipe = CaptionPipeline(run_dir)
    out = pipe.caption([test[0].video])
    assert len(out) == 1
