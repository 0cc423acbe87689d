"""Scorers declared once: the registry feeds the decode configuration, the command line, the
decoder, ``fusion ablate``, ``fusion tune`` and the web page; a scorer added from outside (one
file, ``tests/hint_scorer.py``, plus one ``register``) reaches all of them without other edits."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fusion.decoding.config import DecodeConfig, resolve_decode_config
from fusion.decoding.registry import SCORERS, ablations, register, scorer_spec, setting, sliders, with_weights, without
from fusion.decoding.spec import ScorerSpec, Setting
from fusion.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

# Runs in a fresh interpreter: the registration comes before fusion.decoding.config is imported.
EXTRA_SCORER = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    import numpy as np
    from fusion.decoding.registry import register
    from fusion.decoding.spec import ScorerSpec
    from tests.hint_scorer import HINT_SPEC
    register(HINT_SPEC)

    from fusion.ablation import CONDITIONS
    from fusion.checkpoint import load_run
    from fusion.cli import build_parser
    from fusion.commands.evaluate import decode_overrides
    from fusion.decoding.config import DecodeConfig, resolve_decode_config
    from fusion.decoding.decoder import CaptionDecoder
    from fusion.experiment import ExperimentConfig
    from fusion.features import FeatureRecord
    from fusion.serve.settings import weight_sliders
    from fusion.serve.views import NBEST_HEADERS
    from tests.builders import save_random_run, tiny_model

    out = {"fields": [f for f in DecodeConfig.__dataclass_fields__]}
    try:  # too late: DecodeConfig has its fields
        register(ScorerSpec(name="later", label="later", build=HINT_SPEC.build))
    except ValueError as err:
        out["late"] = str(err)
    args = build_parser().parse_args(["evaluate", "RUN", "--hint-weight", "4"])
    out["cli"] = decode_overrides(args)
    cfg = ExperimentConfig()
    tiny_model(cfg, audio_mode=cfg.model.audio_mode)
    cfg.decode.beam_size, cfg.decode.max_len = 3, 6
    save_random_run(Path(sys.argv[1]), cfg, ["a dog is barking", "a man is playing a guitar", "a cat sleeps"],
                    frame_dim=6, audio_dim=5)
    run = load_run(sys.argv[1])
    rng = np.random.default_rng(0)
    records = [FeatureRecord(id=str(i), frames=rng.normal(size=(4, 6)).astype(np.float32), audio=None,
                             meta={"hints": hints}) for i, hints in enumerate([["guitar"], []])]
    decoded = {}
    for weight in (0.0, 4.0):
        decoder = CaptionDecoder(run, resolve_decode_config(run, {"hint_weight": weight}))
        hyps = decoder.decode(records)
        decoded[str(weight)] = {"weights": decoder.weights, "words": [h[0].words for h in hyps],
                                "scores": [h[0].scores for h in hyps]}
    out["decoded"] = decoded
    out["conditions"] = list(CONDITIONS)
    out["sliders"] = [[s.scorer, s.minimum, s.maximum] for s in weight_sliders(DecodeConfig())]
    out["headers"] = NBEST_HEADERS
    out["off"] = resolve_decode_config(run, {"hint_weight": 4.0}, weights={"hint": 0.0}).hint_weight
    print(json.dumps(out))
''')


def test_an_added_scorer_reaches_config_cli_decoder_ablation_and_page(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", EXTRA_SCORER, str(tmp_path / "run")], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["fields"][-1] == "hint_weight"  # after every built-in field
    assert "came after fusion.decoding.config was imported" in out["late"]
    assert out["cli"] == {"hint_weight": 4.0}
    off, on = out["decoded"]["0.0"], out["decoded"]["4.0"]
    assert "hint" not in off["weights"] and on["weights"]["hint"] == 4.0
    assert "guitar" in on["words"][0].split() and "guitar" not in off["words"][0].split()  # the hinted video
    assert on["words"][1] == off["words"][1] and on["scores"][1]["hint"] == 0.0  # the video without hints
    assert on["scores"][0]["hint"] >= 1.0
    assert "hint_off" in out["conditions"]
    assert ["hint", 0.0, 10.0] in out["sliders"] and out["headers"][-1] == "hint"
    assert out["off"] == 0.0


def test_builtin_order_and_names() -> None:
    # the order of the fused sum and of every breakdown: captions depend on it (later scorers come after these)
    names = [spec.name for spec in SCORERS]
    assert names[:4] == ["caption", "lm", "audio", "length"] and len(set(names)) == len(names)
    assert [spec.name for spec in sliders()] == [s.name for s in SCORERS if s.slider and s.weight is not None]
    assert [s.name for s in sliders()][:2] == ["lm", "audio"]
    assert {name: spec.name for name, spec in ablations().items()} == {
        s.ablation: s.name for s in SCORERS if s.ablation is not None}
    assert {"lm_off": "lm", "verifier_off": "audio"}.items() <= {n: s.name for n, s in ablations().items()}.items()
    with pytest.raises(ConfigError, match=f"unknown scorer 'nope'; scorers are {', '.join(names)}"):
        scorer_spec("nope")


def test_turning_off_is_declared_once() -> None:
    fused = DecodeConfig(lm="some/lm", lm_weight=0.5, audio_weight=2.0)
    assert (without(fused, ["lm"]).lm, without(fused, ["lm"]).lm_weight) == (None, 0.0)
    assert without(fused, ["audio"]).audio_weight == 0.0 and without(fused, ["audio"]).lm == "some/lm"
    both = with_weights(fused, {"lm": 0.0, "audio": 1.5})
    assert (both.lm, both.lm_weight, both.audio_weight) == (None, 0.0, 1.5)
    assert with_weights(fused, {"lm": 0.25}).lm_weight == 0.25
    with pytest.raises(ConfigError, match="given without a language model"):
        with_weights(DecodeConfig(), {"lm": 0.5})
    with pytest.raises(ConfigError, match="has no weight"):
        with_weights(fused, {"caption": 1.0})
    assert resolve_decode_config(None, {"audio_weight": 3.0}, weights={"audio": 0.0}).audio_weight == 0.0


def test_bounds_come_from_the_settings() -> None:
    weight = setting("lm_weight")
    assert weight.bounds(DecodeConfig()) == (0.0, None)
    assert weight.bounds(DecodeConfig(lm_mode="linear")) == (0.0, 1.0)
    with pytest.raises(ConfigError, match=r"decode.lm_weight=1.5 is invalid: give --lm-weight in \[0, 1\]"):
        DecodeConfig(lm="x", lm_weight=1.5, lm_mode="linear")
    with pytest.raises(ConfigError, match="decode.audio_weight=-1.0 is invalid: give --audio-weight >= 0"):
        dataclasses.replace(DecodeConfig(), audio_weight=-1.0)


def test_a_declaration_names_only_its_own_settings_and_known_inputs() -> None:
    weight = Setting("w", float, 0.0, "a weight")
    with pytest.raises(ValueError, match="'nope' is not one of its settings"):
        ScorerSpec(name="x", label="x", build=lambda parts: None, settings=(weight,), weight="nope")  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="unknown inputs"):
        ScorerSpec(name="x", label="x", build=lambda parts: None, inputs=("pixels",))  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="taken by registered scorers"):
        register(ScorerSpec(name="lm", label="x", build=lambda parts: None))  # type: ignore[arg-type,return-value]
