"""The whole decoder: captioner + language model + audio-noun verifier, against its parts.

One command tunes the LM weight alpha and the verifier weight beta together on validation
(``fusion tune RUN --lm LM --alphas ... --betas ... --guard false_sound_rate``: one decode per
grid point; the best METEOR among the points that name no more false sounds on validation than
the run's recipe, the decoder before tuning; the choice written into ``RUN/config.yaml``), then decodes the
test split with beam ``--beam`` as

- ``captioner alone``: alpha 0, beta 0;
- ``+ LM``: the best alpha on validation with the verifier off (METEOR alone decides);
- ``+ verifier``: the run's recipe before tuning (LM off, beta = its ``decode.audio_weight``);
- ``+ both``: the joint (alpha, beta) choice, what ``RUN/config.yaml`` now holds;

and, with ``--penalty P`` and / or ``--absent-penalty Q``, the verifier with its penalties
(``decode.audio_penalty``: P more for a noun the sound contradicts; ``decode.audio_absent_penalty``:
Q for an audible noun in a clip without audio), from a second grid over the betas > 0, whose
choice (with the penalties) is then the one written into ``RUN/config.yaml``:

- ``+ verifier, penalties``: the best beta on validation with the LM off;
- ``+ both, penalties``: the joint choice with the penalties.

Every row is compared with ``captioner alone`` by the mean over test videos of the per-video
difference (METEOR, CIDEr, sound named, false sound) and its paired bootstrap 95% interval
(:func:`fusion.ablation.paired_bootstrap`). The acceptance checks: ``+ both`` (each variant)
has a corpus METEOR at least that of ``+ verifier`` and a false-sound rate at most its.
Writes ``--results``.json / .md::

    fusion lm train data/avsynth/text.txt --out runs/lm --config configs/avsynth/lm.yaml
    python -m scripts.whole_decoder --run runs/audio_stream --lm runs/lm --penalty 1 --absent-penalty 3
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from fusion.io import atomic_write_json, atomic_write_text
from fusion.errors import script_main

logger = logging.getLogger(__name__)

COLUMNS = ("METEOR", "CIDEr", "Bleu_4", "sound_accuracy", "visual_accuracy", "false_sound_rate")
# Per-video key of each paired comparison (fusion.evaluation.score_predictions' per_video rows).
PAIRED = {"METEOR": "METEOR", "CIDEr": "CIDEr", "sound_accuracy": "sound_named", "false_sound_rate": "false_sound"}
BASE = "captioner alone"


def best_point(grid: list[dict[str, Any]], metric: str, alpha: float | None = None,
               beta: float | None = None) -> tuple[float, float]:
    """The (alpha, beta) with the best validation ``metric``, optionally with alpha or beta fixed
    (ties: the smaller alpha, then the smaller beta, as ``fusion tune`` breaks them)."""
    rows = [r for r in grid if (alpha is None or r["alpha"] == alpha) and (beta is None or r["beta"] == beta)]
    best = max(rows, key=lambda r: (r["metrics"][metric], -r["alpha"], -r["beta"]))
    return best["alpha"], best["beta"]


def paired_rows(scored: dict[str, dict[str, Any]], samples: int, seed: int) -> dict[str, dict[str, Any]]:
    """Per row, per paired metric: mean per-video difference from ``captioner alone`` and its 95% interval."""
    from fusion.ablation import paired_bootstrap

    base = scored[BASE]["per_video"]
    out: dict[str, dict[str, Any]] = {}
    for name, row in scored.items():
        out[name] = {}
        for metric, key in PAIRED.items():
            ids = [i for i in base if key in base[i] and key in row["per_video"].get(i, {})]
            if not ids:
                continue
            diffs = np.array([row["per_video"][i][key] - base[i][key] for i in ids], dtype=np.float64)
            low, high = paired_bootstrap(diffs, samples, np.random.default_rng(seed))
            out[name][metric] = {"mean_delta": float(diffs.mean()), "ci95": [low, high], "n_videos": len(ids)}
    return out


def markdown(report: dict[str, Any]) -> str:
    """The README table (test split), the validation grids and the acceptance checks."""
    from fusion.tuning import TuneResult, format_grid

    lines = [f"Whole decoder on the test split ({report['n_test']} clips), beam {report['beam']}; alpha and beta "
             f"tuned together on val ({report['n_val']} clips): the best METEOR"
             + (f" among points whose {report['guard']} is at most the recipe's (no LM)" if report.get("guard") else "")
             + ". Produced by:", "", f"    {report['command']}", "",
             "| decoder | alpha | beta | penalties | " + " | ".join(COLUMNS) + " | " +
             " | ".join(f"Δ{m} vs alone [95% CI]" for m in PAIRED) + " |",
             "|" + "---|" * (4 + len(COLUMNS) + len(PAIRED))]
    for name, row in report["rows"].items():
        cells = [f"{row['metrics'][k]:.3f}" if isinstance(row["metrics"].get(k), float) else "n/a" for k in COLUMNS]
        for m in PAIRED:
            p = row["paired"].get(m)
            cells.append("" if name == BASE or p is None else
                         f"{p['mean_delta']:+.3f} [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}]")
        pen = f"{row['penalty']:g} / {row['absent_penalty']:g}"
        lines.append(f"| {name} | {row['alpha']:g} | {row['beta']:g} | {pen} | " + " | ".join(cells) + " |")
    lines += ["", "Δ: mean over test videos of the per-video difference from the captioner alone (METEOR, CIDEr; "
              "sound named over clips with a sound source; false sound over all clips), with the paired bootstrap "
              f"95% percentile interval of that same mean ({report['bootstrap']} resamples). Metric columns are "
              "corpus-level. Penalties: contradicted noun / audible noun without audio.", ""]
    for name, row in report["rows"].items():
        if name.startswith("+ both") and row["alpha"] == 0 and report.get("guard"):
            lines += [f"`{name}` has alpha 0: on val every LM weight raised {report['guard']} above the recipe's, "
                      "so the guarded tune kept the LM out.", ""]
    for key, title in (("tune", "Validation grid"), ("tune_penalty", f"Validation grid, penalties {report['penalties']}")):
        if report.get(key):
            fields = {f.name for f in dataclasses.fields(TuneResult)}
            result = TuneResult(**{k: v for k, v in report[key].items() if k in fields})
            lines += [f"{title} (* = chosen):", "", "```", format_grid(result).rstrip(), "```", ""]
    lines += ["Acceptance:", ""] + [f"- [{'x' if c['passed'] else ' '}] {c['check']}" for c in report["acceptance"]]
    return "\n".join(lines) + "\n"


@script_main("whole_decoder")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.whole_decoder", description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="audio-stream run folder (its config.yaml receives the choice)")
    p.add_argument("--lm", required=True, help="`fusion lm train` folder trained on the benchmark's text corpus")
    p.add_argument("--manifest", default=None, help="manifest (default: the run's)")
    p.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.2, 0.4, 0.8], help="LM weights to try")
    p.add_argument("--betas", type=float, nargs="+", default=[0.0, 1.0, 2.0], help="verifier weights to try")
    p.add_argument("--penalty", type=float, default=None, help="also tune and test with this contradiction penalty")
    p.add_argument("--absent-penalty", type=float, default=None,
                   help="... and this cost of audible nouns in clips without audio")
    p.add_argument("--recipe-beta", type=float, default=None,
                   help="beta of the '+ verifier' row (default: the run's decode.audio_weight before tuning)")
    p.add_argument("--guard", default="false_sound_rate", help="fusion tune --guard for '+ both' ('none': off)")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--results", default="results/whole_decoder", help="output path without extension")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from fusion.checkpoint import load_run
    from fusion.decoding.decoder import CaptionDecoder
    from fusion.evaluation import score_predictions
    from fusion.pipeline import prepare_split
    from fusion.tuning import format_grid, grid_point, tune_lm_weight

    start = time.time()
    recipe_beta = args.recipe_beta if args.recipe_beta is not None else load_run(args.run).config.decode.audio_weight
    penalties = args.penalty is not None or args.absent_penalty is not None
    guard = None if args.guard == "none" else args.guard
    penalty, absent_penalty = args.penalty or 0.0, args.absent_penalty or 0.0
    tuned = tune_lm_weight(args.run, args.lm, args.alphas, betas=args.betas, beam_size=args.beam,
                           manifest=args.manifest, audio_penalty=0.0 if penalties else None,
                           audio_absent_penalty=0.0 if penalties else None, guard=guard, apply=not penalties)
    print(format_grid(tuned), flush=True)
    penalised = None
    if penalties:
        betas = [b for b in args.betas if b > 0] or [1.0]
        penalised = tune_lm_weight(args.run, args.lm, args.alphas, betas=betas, beam_size=args.beam,
                                   manifest=args.manifest, audio_penalty=penalty,
                                   audio_absent_penalty=absent_penalty, guard=guard,
                                   out=Path(tuned.out).with_name(f"lm_{tuned.mode}_penalties.json"))
        print(format_grid(penalised), flush=True)
    prepared = prepare_split(args.run, "test", manifest=args.manifest, overrides={"beam_size": args.beam})
    metric = tuned.metric
    settings: dict[str, tuple[float, float, float, float]] = {  # name -> (alpha, beta, penalty, absent penalty)
        BASE: (0.0, 0.0, 0.0, 0.0),
        "+ LM": (best_point(tuned.grid, metric, beta=0.0)[0] if 0.0 in args.betas else tuned.best_alpha, 0.0, 0.0, 0.0),
        "+ verifier (the recipe)": (0.0, float(recipe_beta), 0.0, 0.0),
        "+ both": (tuned.best_alpha, float(tuned.best_beta or 0.0), 0.0, 0.0),
    }
    if penalised is not None:
        settings["+ verifier, penalties"] = (0.0, best_point(penalised.grid, metric, alpha=0.0)[1], penalty,
                                             absent_penalty)
        settings["+ both, penalties"] = (penalised.best_alpha, float(penalised.best_beta or 0.0), penalty,
                                         absent_penalty)
    shared: dict[Any, Any] = {}  # the LM and the verifier, loaded once
    scored: dict[str, dict[str, Any]] = {}
    for name, (alpha, beta, pen, absent) in settings.items():
        options = dataclasses.replace(grid_point(prepared.options, args.lm, prepared.options.lm_mode, alpha, beta),
                                      audio_penalty=pen, audio_absent_penalty=absent)
        hyps = CaptionDecoder(prepared.run, options, shared=shared).decode(prepared.records, progress=True)
        predictions = {e.id: h[0].words for e, h in zip(prepared.entries, hyps)}
        _, metrics, per_video = score_predictions(predictions, prepared.entries)
        scored[name] = {"metrics": metrics, "per_video": per_video, "predictions": predictions}
        print(f"{name}: " + ", ".join(f"{k}={metrics[k]:.3f}" for k in COLUMNS if isinstance(metrics.get(k), float)),
              flush=True)
    paired = paired_rows(scored, args.bootstrap, args.seed)
    rows = {name: {"alpha": a, "beta": b, "penalty": pen, "absent_penalty": q, "metrics": scored[name]["metrics"],
                   "paired": paired[name]} for name, (a, b, pen, q) in settings.items()}
    checks = []
    ref = rows["+ verifier (the recipe)"]["metrics"]
    for name in [n for n in rows if n.startswith("+ both")]:
        m = rows[name]["metrics"]
        checks.append({"check": f"{name}: METEOR {m['METEOR']:.4f} >= + verifier's {ref['METEOR']:.4f}",
                       "passed": m["METEOR"] >= ref["METEOR"]})
        if isinstance(m.get("false_sound_rate"), float):
            checks.append({"check": f"{name}: false_sound_rate {m['false_sound_rate']:.3f} <= + verifier's "
                                    f"{ref['false_sound_rate']:.3f}",
                           "passed": m["false_sound_rate"] <= ref["false_sound_rate"] + 1e-12})
    command = "python -m scripts.whole_decoder " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {"command": command, "run": args.run, "lm": args.lm, "beam": args.beam, "bootstrap": args.bootstrap, "guard": guard,
              "penalties": f"{penalty:g} / {absent_penalty:g}" if penalised else None, "n_test": len(prepared.entries), "n_val": tuned.n_videos,
              "rows": rows, "tune": tuned.to_dict(), "tune_penalty": penalised.to_dict() if penalised else None,
              "acceptance": checks, "seconds": round(time.time() - start, 1),
              "predictions": {name: s["predictions"] for name, s in scored.items()}}
    out = Path(args.results)
    atomic_write_json(out.with_suffix(".json"), report)
    text = markdown(report)
    atomic_write_text(out.with_suffix(".md"), text)
    print(text)
    return 0 if all(c["passed"] for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
