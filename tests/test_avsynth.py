"""The audio-visual benchmark: semantics, plan (folds, independence, captions) and real media."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from data_prep.avsynth import generate, main, plan_benchmark
from data_prep.avsynth import build as avbuild
from data_prep.avsynth.sounds import NOISE_STD, SAMPLE_RATE_HZ, find_esc10, synthesise, synthetic_recordings
from fusion.benchmark import (
    ACTION_CUES, ACTION_PHRASES, COLORS, SHAPE_WORDS, SOUND_SOURCES, SOUND_WORDS, judge_caption,
)
from fusion.manifest import load_manifest
from fusion.media import decode, probe
from fusion.paths import REPO_ROOT


@pytest.fixture(scope="module")
def recordings() -> list:
    """Real ESC-10 recordings where the shared data is present, else the synthetic set."""
    from fusion.paths import data_dir

    try:
        return find_esc10(data_dir() / "esc10")
    except Exception:  # noqa: BLE001 - absence of the shared data is fine here
        return synthetic_recordings()


@pytest.fixture(scope="module")
def small_plan(recordings: list) -> list:
    return plan_benchmark(11, "small", recordings)


# --- semantics -----------------------------------------------------------------------------

def test_word_sets_are_unambiguous() -> None:
    for a, b in combinations(SOUND_SOURCES.values(), 2):
        assert not (a.keywords & b.keywords), (a.esc_class, b.esc_class)
    visual = set(ACTION_CUES) | set(SHAPE_WORDS) | set(COLORS)
    assert not (set(SOUND_WORDS) & visual)
    for src in SOUND_SOURCES.values():  # every phrase names its source and no visual cue
        for phrase in src.clauses + src.nominals:
            words = set(phrase.split())
            assert words & set(src.synonyms), phrase  # names the source by a listed noun
            assert not words & visual, phrase
    for action, (finite, gerund) in ACTION_PHRASES.items():
        for phrase in finite + gerund:
            cues = {ACTION_CUES[w] for w in phrase.split() if w in ACTION_CUES}
            assert cues == {action}, phrase


def test_judge_caption_hand_cases() -> None:
    meta = {"objects": [{"shape": "circle", "color": "red", "action": "moves_left"},
                        {"shape": "star", "color": "blue", "action": "spins"}],
            "sound_class": "Dog bark", "audio_kind": "sound"}
    ok = judge_caption("A red ball moves to the left while a dog barks.", meta)
    assert (ok.sound_named, ok.false_sound, ok.visual_correct) == (True, False, True)
    reversed_order = judge_caption("a blue star spins and a red circle goes left as a puppy barks", meta)
    assert reversed_order.visual_correct and reversed_order.sound_named
    secondary_only = judge_caption("a blue star spins while a dog barks", meta)
    assert not secondary_only.visual_correct and not secondary_only.shape_correct
    wrong_colour = judge_caption("a green circle moves left", meta)
    assert (wrong_colour.visual_correct, wrong_colour.color_correct, wrong_colour.action_correct) == (False, False, True)
    wrong_action = judge_caption("a red circle moves right", meta)
    assert not wrong_action.visual_correct and wrong_action.color_correct
    other_sound = judge_caption("a red circle moves left while it is raining", meta)
    assert (other_sound.sound_named, other_sound.false_sound, other_sound.named_sounds) == (False, True, ("Rain",))
    silent = {**meta, "sound_class": None, "audio_kind": "silent"}
    assert judge_caption("a red circle moves left", silent).sound_named is None
    assert judge_caption("a red circle moves left while a clock ticks", silent).false_sound


# --- plan: folds, independence, captions ---------------------------------------------------

def test_fold_discipline(small_plan: list) -> None:
    assert [sum(p.split == s for p in small_plan) for s in ("train", "val", "test")] == [300, 50, 100]
    heard: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    for p in small_plan:
        assert p.fold in avbuild.SPLIT_FOLDS[p.split]
        if p.recording is not None:
            assert p.recording.fold == p.fold
            heard[p.split].add(p.recording.name)
    assert not heard["train"] & heard["test"] and not heard["train"] & heard["val"] and not heard["val"] & heard["test"]


def test_sound_independent_of_picture(small_plan: list) -> None:
    sound = [p for p in small_plan if p.recording is not None]
    classes, shapes = sorted(SOUND_SOURCES), sorted({o["shape"] for p in small_plan for o in p.objects})
    table = np.zeros((len(classes), len(shapes)))
    for p in sound:
        table[classes.index(p.recording.esc_class), shapes.index(p.objects[0]["shape"])] += 1
    assert (table > 0).sum(axis=1).min() >= 3  # every sound class co-occurs with several shapes
    assert chi2_contingency(table).pvalue > 0.001  # no detectable dependence


def test_captions_vary_and_name_the_sound_exactly_when_there_is_one(small_plan: list) -> None:
    kinds = {p.audio_kind for p in small_plan}
    assert kinds == {"sound", "silent", "none"}
    frames_used = set()
    for p in small_plan:
        assert len(p.captions) == 5 and len(set(p.captions)) == 5
        meta = avbuild.clip_meta(p, "esc10")
        for cap in p.captions:
            j = judge_caption(cap, meta)
            assert j.visual_correct and not j.false_sound, cap
            assert j.sound_named is (True if p.audio_kind == "sound" else None), cap
            if p.audio_kind != "sound":
                assert not set(cap.split()) & set(SOUND_WORDS), cap
            else:
                assert set(cap.split()) & set(meta["sound_synonyms"]), cap
            frames_used.add(cap.split()[0])
    assert len(frames_used) >= 10  # many different sentence openings


def test_text_corpus_disjoint_and_seeded(small_plan: list) -> None:
    paired = {c for p in small_plan for c in p.captions}
    corpus = avbuild.text_corpus_sentences(11, 5000, paired)
    assert len(corpus) == len(set(corpus)) == 5000
    assert not set(corpus) & paired
    assert corpus == avbuild.text_corpus_sentences(11, 5000, paired)
    assert corpus != avbuild.text_corpus_sentences(12, 5000, paired)


# --- real media ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("avsynth")
    a, b = root / "a", root / "b"
    assert main(["--out", str(a), "--seed", "5", "--size", "tiny", "--workers", "1", "--no-progress",
                 "--text-corpus", str(a / "corpus.txt"), "--text-corpus-size", "3000"]) == 0
    generate(b, 5, "tiny", workers=2, progress=False)  # other worker count, same bytes
    return a, b


def test_determinism(tiny: tuple[Path, Path]) -> None:
    a, b = tiny
    assert (a / "manifest.jsonl").read_bytes() == (b / "manifest.jsonl").read_bytes()
    for entry in load_manifest(a / "manifest.jsonl"):
        other = b / "videos" / Path(entry.video).name
        ma, mb = decode(entry.video, frame_rate_hz=12.0), decode(other, frame_rate_hz=12.0)
        assert np.array_equal(ma.frames, mb.frames)
        assert (ma.audio is None and mb.audio is None) or np.array_equal(ma.audio, mb.audio)


def test_media_match_meta(tiny: tuple[Path, Path]) -> None:
    a, _ = tiny
    lines = (a / "manifest.jsonl").read_text().splitlines()
    assert all(json.loads(line)["video"].startswith("videos/") for line in lines)  # relative to DIR
    entries = load_manifest(a / "manifest.jsonl")
    assert len(entries) == 12
    rms: dict[str, list[float]] = {"sound": [], "silent": []}
    for e in entries:
        m = e.meta
        info = probe(e.video)
        media = decode(e.video, frame_rate_hz=12.0)
        assert info.has_audio_stream == m["has_audio_stream"] == (m["audio_kind"] != "none") == media.has_audio
        assert abs(media.duration_s - m["duration_s"]) < 0.1 and 6.0 <= m["duration_s"] <= 8.0
        assert media.frames.shape == (m["num_frames"], 128, 128, 3)
        assert (m["sound_class"] is not None) == (m["audio_kind"] == "sound") == (m["sound_noun"] is not None)
        if m["sound_class"]:
            assert m["sound_noun"] == SOUND_SOURCES[m["sound_class"]].noun and m["sound_noun"] in m["sound_synonyms"]
        if media.audio is not None:
            assert abs(len(media.audio) / SAMPLE_RATE_HZ - m["duration_s"]) < 0.1
            rms[m["audio_kind"]].append(float(np.sqrt(np.mean(media.audio**2))))
    assert rms["silent"] and max(rms["silent"]) < 2 * NOISE_STD  # a present but quiet track
    assert rms["sound"] and min(rms["sound"]) > 3 * max(rms["silent"])
    corpus = (a / "corpus.txt").read_text().splitlines()
    assert len(corpus) == 3000 and not set(corpus) & {c for e in entries for c in e.captions}


def test_synthetic_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("FUSION_DATA_DIR", str(tmp_path / "no-data"))
    with caplog.at_level(logging.WARNING):
        summary = generate(tmp_path / "out", 3, "tiny", workers=1, progress=False)
    assert summary.sound_origin == "synthetic" and "SYNTHESISED" in caplog.text
    entries = load_manifest(summary.manifest)
    assert {e.meta["sound_origin"] for e in entries} == {"synthetic"}
    assert json.loads((tmp_path / "out" / "benchmark.json").read_text())["sound_origin"] == "synthetic"


def _band_profile(wave: np.ndarray) -> np.ndarray:
    spec = np.abs(np.fft.rfft(wave.astype(np.float64)))
    bands = np.array_split(spec, 24)
    profile = np.log(np.array([b.mean() for b in bands]) + 1e-9)
    return profile - profile.mean()


def test_synthetic_timbres_are_distinct() -> None:
    classes = list(SOUND_SOURCES)
    train = {c: np.mean([_band_profile(synthesise(c, np.random.default_rng([i, 0]))) for i in range(3)], axis=0)
             for c in classes}
    correct = 0
    for c in classes:
        for i in range(3):
            prof = _band_profile(synthesise(c, np.random.default_rng([i, 1])))
            guess = min(classes, key=lambda k: float(np.sum((train[k] - prof) ** 2)))
            correct += guess == c
    assert correct >= 27  # >= 90 % nearest-centroid accuracy on held-out takes


@pytest.mark.parametrize("module", ["avsynth", "msvd", "msrvtt", "custom"])
def test_help(module: str) -> None:
    res = subprocess.run([sys.executable, "-m", f"data_prep.{module}", "--help"], capture_output=True, text=True,
                         cwd=REPO_ROOT)
    assert res.returncode == 0 and "usage: python -m data_prep." + module in res.stdout


def test_relative_out_dir_gives_loadable_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--out rel/dir` from any working directory: the manifest's videos resolve to real files."""
    monkeypatch.chdir(tmp_path)
    assert main(["--out", "rel/bench", "--seed", "5", "--size", "tiny"]) == 0
    entries = load_manifest(tmp_path / "rel" / "bench" / "manifest.jsonl")
    assert entries and all(Path(e.video).is_file() for e in entries)
    assert all(Path(e.video).parent == (tmp_path / "rel" / "bench" / "videos").resolve() for e in entries)
