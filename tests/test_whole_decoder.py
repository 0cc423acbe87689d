"""The whole decoder: alpha and beta tuned together, the ablation of LM and verifier, the audio penalty."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fusion.ablation import AblationConfig, run_ablation
from fusion.checkpoint import load_run
from fusion.cli import main as cli_main
from fusion.decoding.audio_scorer import AudioScorer, caption_audio_score
from fusion.decoding.beam_search import beam_search
from fusion.decoding.config import DecodeConfig, resolve_decode_config
from fusion.decoding.decoder import CaptionDecoder
from fusion.decoding.scorer import DecodeContext
from fusion.errors import ConfigError
from fusion.experiment import ExperimentConfig
from fusion.features import ExtractConfig, FeatureRecord, FeatureStore
from fusion.manifest import ManifestEntry, write_manifest
from fusion.tuning import format_grid, tune_lm_weight
from fusion.verifier import AudioNounVerifier, NounEntry, NounTable
from tests.builders import BigramScorer, save_random_run_and_lm

DV, DA, T = 12, 6, 4
EXTRACT = ExtractConfig(frames_per_clip=T, random_weights=True)
CAPTIONS = ["a red ball and a dog", "a blue ball in the rain", "a green ball and a clock", "the red ball"]
SPLITS = ["train"] * 4 + ["val"] * 6 + ["test"] * 6


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny random audio-stream run whose captions name audible nouns, its store, and an LM on the captions."""
    root = tmp_path_factory.mktemp("whole")
    rng = np.random.default_rng(0)
    store = FeatureStore(root / "store", EXTRACT)
    entries = []
    for i, split in enumerate(SPLITS):
        audio = rng.normal(size=(3, DA)).astype(np.float32) if i % 5 != 4 else None
        store.write(FeatureRecord(
            id=f"v{i}", frames=rng.normal(size=(T, DV)).astype(np.float32), audio=audio,
            posteriors={} if audio is None else
            {"audio/imagenet": rng.dirichlet(np.full(1000, 0.05)).astype(np.float32),
             "audio/places2": rng.dirichlet(np.full(401, 0.05)).astype(np.float32)}))
        entries.append(ManifestEntry(f"v{i}", f"v{i}.mp4", split, [CAPTIONS[i % 4], CAPTIONS[(i + 1) % 4]], {}))
    write_manifest(entries, root / "manifest.jsonl")
    cfg = ExperimentConfig()
    cfg.data.manifest, cfg.data.features, cfg.extract = str(root / "manifest.jsonl"), str(root / "store"), EXTRACT
    cfg.model.hidden_size, cfg.model.frame_embed_size, cfg.model.word_embed_size = 16, 8, 8
    cfg.model.audio_embed_size, cfg.model.audio_mode = 4, "stream"
    cfg.decode.beam_size, cfg.decode.max_len, cfg.decode.audio_weight = 2, 7, 1.0
    return save_random_run_and_lm(root, cfg, CAPTIONS, frame_dim=DV, audio_dim=DA, lm_epochs=20)


@pytest.mark.java
def test_tune_chooses_alpha_and_beta_together(setup: dict, java_available: bool) -> None:
    result = tune_lm_weight(setup["run"], setup["lm"], [2.0], betas=[1.0, 0.0], progress=False)
    points = sorted((r["alpha"], r["beta"]) for r in result.grid)
    assert points == [(a, b) for a in (0.0, 2.0) for b in (0.0, 1.0)]  # every pair decoded once
    best = max(result.grid, key=lambda r: (r["metrics"]["METEOR"], -r["alpha"], -r["beta"]))
    assert (result.best_alpha, result.best_beta) == (best["alpha"], best["beta"])
    assert result.best_value == best["metrics"]["METEOR"]
    # alpha 0 at the run's beta (1) is the baseline; scores are every alpha at the chosen beta.
    assert result.baseline_value == next(r for r in result.grid if (r["alpha"], r["beta"]) == (0.0, 1.0))["metrics"]["METEOR"]
    assert set(result.scores) == {"0.0", "2.0"}
    # The choice is in the run's config.yaml, and evaluate / caption / ablate resolve it.
    decode = yaml.safe_load(Path(result.config).read_text())["decode"]
    assert decode["lm_weight"] == result.best_alpha and decode["audio_weight"] == result.best_beta
    options = resolve_decode_config(load_run(setup["run"]))
    assert options.lm_weight == result.best_alpha and options.audio_weight == result.best_beta
    assert (options.lm is None) == (result.best_alpha == 0)
    # The chosen point's METEOR is what decoding with the written configuration scores.
    from fusion.evaluation import coco_metrics
    from fusion.pipeline import prepare_split

    prepared = prepare_split(setup["run"], "val", progress=False)
    hyps = CaptionDecoder(prepared.run, prepared.options).decode(prepared.records)
    refs = {e.id: list(e.captions) for e in prepared.entries}
    meteor = coco_metrics({e.id: h[0].words for e, h in zip(prepared.entries, hyps)}, refs).metrics["METEOR"]
    assert meteor == pytest.approx(result.best_value)
    table = format_grid(result)
    assert "alpha \\ beta" in table and table.count("*") == 1 and len(table.splitlines()) >= 4


@pytest.mark.java
def test_tune_cli_prints_the_grid(setup: dict, java_available: bool, capsys: pytest.CaptureFixture) -> None:
    code = cli_main(["tune", str(setup["run"]), "--lm", str(setup["lm"]), "--alphas", "1", "--betas", "0", "2",
                     "--audio-penalty", "1", "--dry-run", "--out", str(setup["root"] / "grid.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert "METEOR on val (6 videos), alpha down, beta across:" in out and "chosen alpha" in out
    saved = json.loads((setup["root"] / "grid.json").read_text())
    assert len(saved["grid"]) == 4 and saved["best_beta"] in (0.0, 2.0) and saved["config"] == ""
    with pytest.raises(ConfigError, match="--betas"):
        tune_lm_weight(setup["run"], setup["lm"], [0.5], betas=[-1.0])


def test_guard_keeps_points_without_more_false_sounds_than_no_lm() -> None:
    from fusion.tuning import _guarded

    def row(alpha: float, beta: float, meteor: float, false_sound: float) -> dict:
        return {"alpha": alpha, "beta": beta, "metrics": {"METEOR": meteor, "false_sound_rate": false_sound}}

    rows = [row(0, 0, 0.41, 0.10), row(0, 1, 0.40, 0.06), row(0.2, 1, 0.41, 0.05), row(0.4, 1, 0.43, 0.08),
            row(0.4, 2, 0.42, 0.06)]
    kept = _guarded(rows, "false_sound_rate", reference=0.06)  # the run's decoder without the LM: 0.06
    assert [(r["alpha"], r["beta"]) for r in kept] == [(0, 1), (0.2, 1), (0.4, 2)]
    assert _guarded(rows, None, 0.06) == rows
    # Nothing meets the reference: the choice falls back to the points without the LM.
    assert [(r["alpha"], r["beta"]) for r in _guarded(rows, "false_sound_rate", reference=0.01)] == [(0, 0), (0, 1)]


def test_guard_needs_the_benchmark(setup: dict) -> None:
    with pytest.raises(ConfigError, match="--guard false_sound_rate needs the audio-visual benchmark"):
        tune_lm_weight(setup["run"], setup["lm"], [0.5], betas=[0, 1], guard="false_sound_rate", progress=False)
    with pytest.raises(ConfigError, match="--guard 'METEOR'"):
        tune_lm_weight(setup["run"], setup["lm"], [0.5], guard="METEOR", progress=False)


@pytest.mark.java
def test_ablate_reports_lm_verifier_and_both_off(setup: dict, java_available: bool) -> None:
    out = setup["root"] / "abl"
    config = AblationConfig(conditions=("lm_off", "verifier_off", "lm_and_verifier_off"), bootstrap_samples=100)
    report = run_ablation(setup["run"], out, config=config, lm=str(setup["lm"]), lm_weight=2.0, audio_weight=4.0)
    rows = {r["name"]: r for r in report["conditions"]}
    assert list(rows) == ["full", "lm_off", "verifier_off", "lm_and_verifier_off"]
    assert not any("identical_to_full" in r for r in rows.values())
    # lm_and_verifier_off is the captioner alone: the same captions as decoding with neither.
    run = load_run(setup["run"])
    alone = dataclasses.replace(resolve_decode_config(run), lm=None, lm_weight=0.0, audio_weight=0.0)
    from fusion.pipeline import prepare_split

    prepared = prepare_split(run, "test", progress=False)
    hyps = CaptionDecoder(run, alone).decode(prepared.records)
    predictions = json.loads((out / "predictions.json").read_text())
    assert predictions["lm_and_verifier_off"] == {e.id: h[0].words for e, h in zip(prepared.entries, hyps)}
    scores = {name: r["metrics"]["mean_score"] for name, r in rows.items()}
    assert len(set(scores.values())) == 4  # each scorer moves the fused score of the chosen captions
    assert "| lm_and_verifier_off |" in (out / "ablation.md").read_text()


# ------------------------------------------------------------------------------ the audio penalty
WORDS = ["<pad>", "<bos>", "<eos>", "<unk>", "a", "dog", "dogs", "man", "clock"]
DOG, DOGS, MAN, CLOCK = 5, 6, 7, 8


@pytest.fixture()
def table() -> NounTable:
    entries = [NounEntry("dog", ("dog", "dogs"), links={"imagenet": (0,)}),
               NounEntry("man", ("man", "men"), links={"imagenet": (1,)}),
               NounEntry("clock", ("clock", "clocks"), links={"imagenet": (2,)})]
    return NounTable(entries, {}, spaces={"imagenet": 4, "places2": 2})


class FixedScorer(BigramScorer):
    """A caption model whose next-word log-probs depend only on the last word, from a given table."""

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table  # (V, V)


def test_penalty_costs_contradicted_nouns_only(table: NounTable) -> None:
    evidence = [{"dog": 1.5, "man": -2.0, "clock": -0.3}]  # clock: below the claim line (0.5), not contradicted
    plain = AudioScorer(WORDS, AudioNounVerifier(table)).with_evidence(evidence)
    strict = AudioScorer(WORDS, AudioNounVerifier(table), penalty=2.0).with_evidence(evidence)
    ctx = DecodeContext(batch_size=1, beam_size=1)
    tokens = torch.ones(1, 1, dtype=torch.long)
    base, _ = plain.score(tokens, plain.init_state(ctx))
    scores, state = strict.score(tokens, strict.init_state(ctx))
    assert scores[0, MAN] == -4.0 and base[0, MAN] == -2.0
    assert scores[0, CLOCK] == base[0, CLOCK] == pytest.approx(-0.3) and scores[0, DOG] == scores[0, DOGS] == 1.5
    assert caption_audio_score("a man and a man", evidence[0], table, penalty=2.0) == -8.0
    assert caption_audio_score("a dog a clock", evidence[0], table, penalty=2.0) == pytest.approx(1.2)
    with pytest.raises(ConfigError, match="penalty"):
        AudioScorer(WORDS, penalty=-1.0)


def test_absent_penalty_costs_audible_nouns_in_clips_without_audio(table: NounTable) -> None:
    evidence = [None, {"dog": 1.0}]  # video 0 has no audio stream
    ctx = DecodeContext(batch_size=2, beam_size=1)
    tokens = torch.ones(2, 1, dtype=torch.long)
    plain = AudioScorer(WORDS, AudioNounVerifier(table)).with_evidence(evidence)
    strict = AudioScorer(WORDS, AudioNounVerifier(table), absent_penalty=3.0).with_evidence(evidence)
    off, _ = plain.score(tokens, plain.init_state(ctx))
    scores, _ = strict.score(tokens, strict.init_state(ctx))
    assert torch.equal(off[0], torch.zeros(len(WORDS)))  # without the option: no audio, no audio score
    expected = torch.zeros(len(WORDS))
    expected[[DOG, DOGS, MAN, CLOCK]] = -3.0  # every audible noun, every mention
    assert torch.equal(scores[0], expected) and torch.equal(scores[1], off[1])  # clips with audio: unchanged
    assert caption_audio_score("a dog and a man and a dog", None, table, absent_penalty=3.0) == -9.0
    assert caption_audio_score("a dog", None, table) == 0.0
    with pytest.raises(ConfigError, match="audio_absent_penalty"):
        DecodeConfig(audio_absent_penalty=-1.0)
    with pytest.raises(ConfigError, match="audio_penalty"):
        DecodeConfig(audio_penalty=-0.5)


def test_penalty_keeps_a_contradicted_noun_out_and_scores_add_up(table: NounTable) -> None:
    logp = torch.full((len(WORDS), len(WORDS)), -10.0)
    logp[1, 4] = 0.0  # <bos> -> a
    logp[4, MAN], logp[4, DOG] = -0.5, -1.5  # the model prefers "a man"
    logp[MAN, 2] = logp[DOG, 2] = 0.0
    evidence = [{"man": -0.6}]  # the sound mildly contradicts the man; nothing about the dog

    def search(penalty: float) -> list:
        audio = AudioScorer(WORDS, AudioNounVerifier(table), penalty=penalty).with_evidence(evidence)
        scorers = {"caption": FixedScorer(logp), "audio": audio}
        ctx = DecodeContext(batch_size=1, beam_size=2)
        return beam_search(scorers, {"caption": 1.0, "audio": 1.0}, ctx, bos_id=1, eos_id=2, max_len=4, nbest=2,
                           decode_words=lambda ids: " ".join(WORDS[i] for i in ids))[0]

    assert search(0.0)[0].words == "a man"  # evidence alone: -0.5 - 0.6 > -1.5
    hyps = search(1.0)
    assert hyps[0].words == "a dog"  # with the penalty the contradicted noun loses
    for hyp in hyps:
        assert hyp.scores["audio"] == pytest.approx(caption_audio_score(hyp.words, evidence[0], table, penalty=1.0))


def test_decoder_takes_the_penalty_from_the_decode_config(setup: dict) -> None:
    run = load_run(setup["run"])
    options = resolve_decode_config(run, {"audio_weight": 1.0, "audio_penalty": 1.5, "audio_absent_penalty": 2.0})
    scorer = CaptionDecoder(run, options).scorers["audio"]
    assert (scorer.penalty, scorer.absent_penalty) == (1.5, 2.0)  # type: ignore[attr-defined]
