"""The zero-shot captioner's consensus mode: the caption index of a hand-made corpus, the consensus it picks,
the caption guards, folders of before the mode, ``--explain``, the CLI's mode option and the tuning grid."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fusion.concepts import default_links
from fusion.decoding.guards import FUNCTION_WORDS, SOUND_CLAIM_WORDS
from fusion.errors import CheckpointError, ConfigError, DataError
from fusion.experiment import ExperimentConfig
from fusion.zeroshot.config import CONFIG_FILE, ZeroShotConfig
from fusion.zeroshot.explain import explain_caption, format_explanation
from fusion.zeroshot.model import ZeroShotModel
from fusion.zeroshot.neighbours import MATRIX_FILE, TEXT_FILE, CaptionIndex, caption_filter
from fusion.zeroshot.tune import CONSENSUS_GRID, GRID, grid_points
from tests.builders import CAPTION_CAPTIONS, REPO, SUBPROCESS_ENV, concept_record, make_zeroshot_folder, save_random_run
from tests.builders import tiny_model as tiny_s2vt

MAJORITY, OUTLIER = "a man is playing a guitar", "a guitar lies on a red sofa in a dim room"
# Corpus clips as the caption corpus has them (key -> its captions): two of guitars, two of dogs, two of talking.
CORPUS = {
    "msvd:guitar1": [MAJORITY, "a man is playing the guitar", OUTLIER],
    "msvd:guitar2": ["a man is playing a guitar on stage", "a man plays the guitar", "a man is playing guitar"],
    "msvd:dog1": ["a dog is running on the grass", "a dog runs in the park", "a brown dog is running"],
    "msvd:dog2": ["a dog is running in a field", "a small dog is running on the grass",
                  "a dog is running on the grass"],
    "msvd:talk1": ["a man is talking", "a man is talking to the camera", "a man talks"],
    "msvd:talk2": ["a woman is talking in a kitchen", "a woman is talking"],
}
# The guards' corpus: dogs the annotators heard barking, a cat caption repeating its words, a horse only heard.
GUARD_CORPUS = {
    "msrvtt:bark1": ["a dog is barking", "a dog is barking loudly", "a dog is sitting on a sofa"],
    "msrvtt:bark2": ["a dog is barking", "music is heard while a dog barks", "a dog is barking at a man"],
    "msrvtt:cat1": ["a cat is sleeping on a bed and the cat is sleeping", "a kitten naps"],
    "msrvtt:cat2": ["a cat is sleeping on a bed", "a cat is sleeping"],
    "msrvtt:horse1": ["the sound of a horse is heard", "a horse is making a loud noise"],
    "msrvtt:horse2": ["a horse can be heard", "a noise of a horse"],
}
LINKS = default_links()


def _pairs(corpus: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(clip, caption) for clip, captions in corpus.items() for caption in captions]


def _shows(word: str, audio: bool = False) -> object:
    """A record whose frames show the ImageNet classes linked to ``word``."""
    return concept_record(list(LINKS.entries[word].links["imagenet"]), audio, id=f"{word}-clip")


@pytest.fixture(scope="module")
def consensus_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_zeroshot_folder(tmp_path_factory.mktemp("consensus"), ZeroShotConfig(mode="consensus", neighbours=2),
                                CORPUS)


@pytest.fixture(scope="module")
def model(consensus_folder: Path) -> ZeroShotModel:
    return ZeroShotModel(consensus_folder)


@pytest.fixture(scope="module")
def guard_model(consensus_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> ZeroShotModel:
    out = tmp_path_factory.mktemp("guards") / "zs"
    shutil.copytree(consensus_folder, out)
    CaptionIndex.build(_pairs(GUARD_CORPUS), LINKS.key_of, list(LINKS.entries)).save(out)
    return ZeroShotModel(out)


# --- the index -----------------------------------------------------------------------------------


def test_index_shares_doc_counts_and_round_trip(tmp_path: Path) -> None:
    extra = [("msvd:guitar1", "A man is playing a guitar."),  # the same caption once tokenised: counted once
             ("msvd:dog1", "dog running"),  # under 3 words: no candidate
             ("msvd:talk2", "a woman is talking and talking and talking in a very big and bright and busy kitchen")]
    index = CaptionIndex.build(_pairs(CORPUS) + extra, LINKS.key_of, list(LINKS.entries))
    assert index.clips == sorted(CORPUS) and index.captions[index.row_of["msvd:guitar1"]] == CORPUS["msvd:guitar1"]
    assert index.captions[index.row_of["msvd:talk2"]] == CORPUS["msvd:talk2"]  # the 17-word caption is left out

    def shares(clip: str) -> dict[str, float]:
        row = index.matrix[index.row_of[clip]]
        return {index.keys[k]: float(v) for k, v in zip(row.indices, row.data)}

    assert shares("msvd:guitar1") == pytest.approx({"guitar": 1.0, "playing": 2 / 3, "sofa": 1 / 3, "room": 1 / 3})
    assert shares("msvd:dog2") == pytest.approx({"dog": 1.0, "running": 1.0, "grass": 2 / 3, "field": 1 / 3})
    assert shares("msvd:talk2") == pytest.approx({"talking": 1.0, "kitchen": 0.5})
    assert index.matrix.shape == (6, len(LINKS.entries))

    # in how many clips each 1- to 4-gram occurs, kept where 2 or more
    counted = [Counter() for _ in range(4)]
    for captions in CORPUS.values():
        for n in range(1, 5):
            grams = {" ".join(w[i : i + n]) for w in (c.split() for c in captions) for i in range(len(w) - n + 1)}
            counted[n - 1].update(grams)
    assert index.doc_counts == [{g: c for g, c in counts.items() if c >= 2} for counts in counted]
    assert index.doc_counts[0]["guitar"] == 2 and index.doc_counts[0]["a"] == 6 and "sofa" not in index.doc_counts[0]
    assert index.doc_counts[3]["a dog is running"] == 2 and min(min(d.values()) for d in index.doc_counts) == 2

    index.save(tmp_path)
    loaded = CaptionIndex.load(tmp_path)
    assert (loaded.clips, loaded.captions, loaded.keys, loaded.doc_counts) == (index.clips, index.captions, index.keys,
                                                                                index.doc_counts)
    assert loaded.matrix.shape == index.matrix.shape and (loaded.matrix != index.matrix).nnz == 0


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


@pytest.mark.parametrize(("damage", "named"), [
    (lambda f: _truncate(f / TEXT_FILE), TEXT_FILE),
    (lambda f: (f / TEXT_FILE).write_bytes(b"not gzip"), TEXT_FILE),
    (lambda f: (f / MATRIX_FILE).unlink(), MATRIX_FILE),
    (lambda f: _truncate(f / MATRIX_FILE), MATRIX_FILE),
], ids=["truncated-text", "garbage-text", "missing-matrix", "truncated-matrix"])
def test_damaged_index_is_one_line_naming_the_file(tmp_path: Path, damage: object, named: str) -> None:
    CaptionIndex.build(_pairs(CORPUS), LINKS.key_of, list(LINKS.entries)).save(tmp_path)
    damage(tmp_path)
    with pytest.raises(CheckpointError) as err:
        CaptionIndex.load(tmp_path)
    message = str(err.value)
    assert message.startswith(str(tmp_path / named)) and "\n" not in message
    assert f"fusion zeroshot build --out {tmp_path}" in message


# --- the consensus -------------------------------------------------------------------------------


def test_evidence_picks_the_clips_and_their_consensus(model: ZeroShotModel) -> None:
    by_guitar, by_dog = model.decode([_shows("guitar"), _shows("dog")])
    assert [h.words for h in by_guitar] == [MAJORITY] and by_guitar[0].scores.keys() == {"consensus"}
    assert [h.words for h in by_dog] == ["a dog is running on the grass"]

    every = model.consensus(_shows("guitar"), model.config.replace(beam_size=6, nbest=6))
    assert [clip for clip, _ in every.neighbours] == ["msvd:guitar2", "msvd:guitar1"]
    assert every.drivers[0][0] == "guitar" and every.drivers[0][1] > 0
    assert len(every.candidates) == 6 and {c.clip for c in every.candidates} == {"msvd:guitar1", "msvd:guitar2"}
    # the same clip's caption that the other clip's captions agree with wins; its outlier comes last
    assert (every.candidates[0].caption, every.candidates[0].clip) == (MAJORITY, "msvd:guitar1")
    assert (every.candidates[-1].caption, every.candidates[-1].clip) == (OUTLIER, "msvd:guitar1")
    scores = [c.score for c in every.candidates]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]


def test_no_evidence_votes_an_even_sample_of_the_corpus(model: ZeroShotModel) -> None:
    index = model.index
    blind = index.caption(np.zeros(len(index.keys), np.float32), neighbours=3)
    rows = [index.row_of[clip] for clip, _ in blind.neighbours]
    assert rows == sorted(set(rows)) and rows[0] == 0 and rows[-1] == len(index.clips) - 1  # spread, not rows 0..2
    assert blind.drivers == [] and blind.candidates


def test_nbest_captions_are_distinct(model: ZeroShotModel) -> None:
    # "a dog is running on the grass" is a caption of both dog clips: one candidate
    nbest = model.decode([_shows("dog")], model.config.replace(nbest=5))[0]
    words = [h.words for h in nbest]
    assert len(words) == 5 and len(set(words)) == 5 and words[0] == "a dog is running on the grass"
    assert [h.score for h in nbest] == sorted((h.score for h in nbest), reverse=True)


# --- the caption guards --------------------------------------------------------------------------


def test_no_sound_claim_for_a_clip_without_audio(guard_model: ZeroShotModel) -> None:
    heard = guard_model.decode([_shows("dog", audio=True)], guard_model.config.replace(nbest=3))[0]
    assert heard[0].words == "a dog is barking"  # with a sound, the neighbours' consensus
    silent = guard_model.decode([_shows("dog", audio=False)], guard_model.config.replace(nbest=3))[0]
    assert silent and all(not set(h.words.split()) & SOUND_CLAIM_WORDS for h in silent)
    assert silent[0].words == "a dog is sitting on a sofa"
    assert silent[0].score > 0  # the barking captions it may not use still vote for "a dog is"


def test_caption_repeating_a_content_word_is_never_chosen(guard_model: ZeroShotModel) -> None:
    index = guard_model.index
    evidence = index.evidence_vector((guard_model.visual.evidence(_shows("cat")), 1.0))
    unguarded = index.caption(evidence, 2).candidates[0].caption
    assert unguarded == "a cat is sleeping on a bed and the cat is sleeping"  # what the consensus alone would pick
    guard = caption_filter(True, FUNCTION_WORDS)
    assert not guard(unguarded) and guard("a cat is sleeping")
    for audio in (False, True):
        nbest = guard_model.decode([_shows("cat", audio)], guard_model.config.replace(nbest=3))[0]
        assert nbest[0].words == "a cat is sleeping on a bed" and nbest[0].score > 0
        for h in nbest:
            content = [w for w in h.words.split() if w not in FUNCTION_WORDS]
            assert len(content) == len(set(content)), h.words


def test_when_no_neighbour_caption_passes_the_next_clip_with_one_is_voted_on(guard_model: ZeroShotModel) -> None:
    # both horse clips' captions claim a sound and the clip has none; msrvtt:bark2, next nearest, claims one too
    found = guard_model.consensus(_shows("horse", audio=False), guard_model.config.replace(nbest=3))
    assert [clip for clip, _ in found.neighbours] == ["msrvtt:horse2", "msrvtt:horse1"]
    assert [(c.caption, c.clip) for c in found.candidates] == [("a kitten naps", "msrvtt:cat1")]
    assert guard_model.decode([_shows("horse", audio=True)])[0][0].words == "a noise of a horse"


def test_no_caption_of_the_corpus_passing_the_guards_is_a_data_error(guard_model: ZeroShotModel) -> None:
    claims = {k: v for k, v in GUARD_CORPUS.items() if k in ("msrvtt:horse1", "msrvtt:horse2", "msrvtt:bark2")}
    index = CaptionIndex.build(_pairs(claims), LINKS.key_of, list(LINKS.entries))
    evidence = index.evidence_vector((guard_model.visual.evidence(_shows("horse")), 1.0))
    with pytest.raises(DataError, match="no caption of the 3 corpus clips passes the caption guards") as err:
        index.caption(evidence, 2, allowed=caption_filter(False, FUNCTION_WORDS))
    assert "\n" not in str(err.value)
    assert index.caption(evidence, 2, allowed=caption_filter(True, FUNCTION_WORDS)).candidates  # with a sound: fine


# --- folders and settings ------------------------------------------------------------------------


def test_folder_from_before_the_consensus_mode_decodes_fused(consensus_folder: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(consensus_folder, old)
    (old / MATRIX_FILE).unlink()
    (old / TEXT_FILE).unlink()
    data = json.loads((old / CONFIG_FILE).read_text())
    del data["config"]["mode"], data["config"]["neighbours"]
    (old / CONFIG_FILE).write_text(json.dumps(data))

    model = ZeroShotModel(old)
    assert model.config.mode == "fused" and model.config.neighbours == ZeroShotConfig().neighbours
    best = model.decode([_shows("guitar")])[0][0]
    assert "lm" in best.scores and "visual" in best.scores and best.words
    with pytest.raises(CheckpointError, match="fusion zeroshot build"):  # the consensus mode needs the index
        model.decode([_shows("guitar")], model.config.replace(mode="consensus"))


def test_invalid_mode_and_neighbours_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"zeroshot.mode='x' is invalid: use one of consensus, fused"):
        ZeroShotConfig(mode="x")
    with pytest.raises(ConfigError, match="zeroshot.neighbours=1 is invalid"):
        ZeroShotConfig(neighbours=1)
    with pytest.raises(ConfigError, match="zeroshot.neighbours=1"):
        ZeroShotConfig().replace(neighbours=1)


def test_explain_a_consensus_caption(model: ZeroShotModel) -> None:
    record = _shows("guitar")
    best = model.decode([record])[0][0]
    report = explain_caption(model, record, best, model.config)
    found = report["consensus"]
    assert found["neighbours_used"] == 2 and found["from_clip"] == "msvd:guitar1"
    assert [n["clip"] for n in found["neighbours"]] == ["msvd:guitar2", "msvd:guitar1"]
    assert found["neighbours"][1]["caption"] == CORPUS["msvd:guitar1"][0]
    assert found["drivers"][0][0] == "guitar" and found["drivers"][0][1] > 0
    text = format_explanation(report)
    assert "a real caption of corpus clip msvd:guitar1" in text and "the 2 corpus clips nearest" in text
    assert "the evidence that chose those clips: guitar +" in text
    assert f"near: msvd:guitar1 (+{found['neighbours'][1]['score']:.2f}) {MAJORITY!r}" in text
    assert "'guitar' [guitar]: seen +" in text and "no audio stream" in text
    fused = explain_caption(model, record, best, model.config.replace(mode="fused"))
    assert "consensus" not in fused and "corpus clip" not in format_explanation(fused)


def test_mode_option_with_a_trained_run_is_one_line(tmp_path: Path) -> None:
    run = save_random_run(tmp_path / "run", tiny_s2vt(ExperimentConfig()), CAPTION_CAPTIONS)
    res = subprocess.run([sys.executable, "-m", "fusion", "caption", str(tmp_path / "clip.mp4"), "--mode", "fused",
                          "--model", str(run)], capture_output=True, text=True, cwd=REPO, env=SUBPROCESS_ENV,
                         timeout=120)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith("fusion caption: error: --mode applies to a zero-shot model only; ")
    assert str(run) in res.stderr and "no zeroshot.json" in res.stderr


def test_grid_points_consensus_first_then_fused() -> None:
    points = grid_points(GRID)
    modes = [p["mode"] for p in points]
    first_fused = modes.index("fused")
    consensus, fused = points[:first_fused], points[first_fused:]
    assert {p["mode"] for p in consensus} == {"consensus"} and {p["mode"] for p in fused} == {"fused"}
    assert len(consensus) == len(CONSENSUS_GRID["neighbours"]) * len(CONSENSUS_GRID["audio_weight"]) and len(fused) == 3 * 2 * 2 * 3 - 1 * 1 * 2 * 3  # no off-weight with a scale
    assert not any(p["visual_weight"] == 0 and p["visual_negative_scale"] > 0 for p in fused)
    assert all(set(p) == {"mode", "neighbours", "audio_weight"} for p in consensus)
    assert len({json.dumps(p, sort_keys=True) for p in points}) == len(points)
    for point in points:  # every point is a valid config
        assert ZeroShotConfig().replace(**point).mode == point["mode"]


def test_silent_clip_filter_bans_heard_words_too() -> None:
    silent, heard = caption_filter(False, FUNCTION_WORDS), caption_filter(True, FUNCTION_WORDS)
    for caption in ("a song plays over a slideshow", "music is playing in the background", "a dog is barking"):
        assert not silent(caption) and heard(caption)
    assert silent("a man is playing a guitar") and not heard("a man and a man")


def test_tune_folder_chooses_mode_and_weights_by_leave_one_out(consensus_folder: Path, tmp_path: Path) -> None:
    from fusion.zeroshot.build import TUNE_FILE, DevClip, tune_folder
    from fusion.zeroshot.config import ZeroShotFolder

    out = tmp_path / "zs"
    shutil.copytree(consensus_folder, out)
    refs = {"guitar-clip": ["a man is playing a guitar", "a man plays the guitar"],
            "dog-clip": ["a dog is running on the grass", "a dog runs"],
            "piano-clip": ["a man is playing a guitar"]}
    dev = [DevClip(i, tmp_path / f"{i}.mp4", r) for i, r in refs.items()]
    records = [_shows("guitar"), _shows("dog"), concept_record(list(LINKS.entries["piano"].links["imagenet"]), False,
                                                                id="piano-clip")]
    grid = [{"mode": ("consensus",), "neighbours": (2, 4)}, {"mode": ("fused",), "visual_weight": (0.0, 3.0)}]
    tuned = tune_folder(out, dev, records, grid=grid, progress=False)  # a small grid: 2 points per mode
    table = json.loads((out / TUNE_FILE).read_text())
    assert len(table["points"]) == 4 and set(table["held_out"]) == set(refs) and tuned["clips"] == 3
    folder = ZeroShotFolder.load(out)
    assert folder.provenance["tuned"]["chosen"] == tuned["chosen"] == table["chosen"]
    assert all(getattr(folder.config, k) == v for k, v in tuned["chosen"].items())
    with pytest.raises(DataError, match="at least 2"):
        tune_folder(out, dev[:1], records[:1], grid=grid, progress=False)


def test_tune_commands_point_to_each_other(consensus_folder: Path, tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "fusion", "tune", str(consensus_folder), "--lm", "x"],
                         capture_output=True, text=True, cwd=REPO, env=SUBPROCESS_ENV, timeout=300)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert f"fusion zeroshot tune {consensus_folder}" in res.stderr
    res = subprocess.run([sys.executable, "-m", "fusion", "zeroshot", "tune", str(tmp_path)],
                         capture_output=True, text=True, cwd=REPO, env=SUBPROCESS_ENV, timeout=300)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "fusion zeroshot build --out" in res.stderr
