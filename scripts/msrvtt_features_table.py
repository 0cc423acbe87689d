"""S2VT on released MSR-VTT features against blind baselines, one table with paired intervals.

Rows, all decoded (beam ``--beam``) and scored on the same test clips of the manifest:

- ``best constant caption``: the one caption that, given to every test clip, scores the
  highest CIDEr among the ``--candidates`` most frequent train captions (an oracle choice on
  the test references: the strongest caption a model that ignores the video can give);
- ``LM alone (blind)``: the language model's own beam-search sentence, the same for every clip;
- ``mean-pooled features``: the captioner reading one mean of the clip's frame features;
- ``S2VT``: the captioner reading the frame sequence;
- ``S2VT + LM late fusion``: S2VT with the LM as a weighted scorer, alpha chosen on val by METEOR;
- ``S2VT + LM deep fusion``: the run trained with the frozen LM's state before the softmax.

Every row is compared with S2VT per clip (CIDEr, METEOR): the mean over test clips of the row
minus S2VT, with the paired bootstrap 95% interval (:func:`fusion.ablation.paired_bootstrap`).
Writes ``--results``.json / .md::

    python -m scripts.msrvtt_features_table --manifest data/msrvtt_vgg16_ae128/manifest.jsonl \\
        --features data/msrvtt_vgg16_ae128/features --s2vt runs/vgg_s2vt \\
        --meanpool runs/vgg_meanpool --deep runs/vgg_deep --lm runs/vgg_lm
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from fusion.io import atomic_write_json, atomic_write_text
from fusion.errors import script_main

logger = logging.getLogger(__name__)

COLUMNS = ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
PAIRED = ("CIDEr", "METEOR")
BASE = "S2VT"


def best_constant(train_captions: list[str], references: dict[str, list[str]], candidates: int) -> tuple[str, float]:
    """The caption among the ``candidates`` most frequent train captions with the highest CIDEr on ``references``."""
    from pycocoevalcap.cider.cider import Cider

    from fusion.coco import ptb_tokenize
    from fusion.text import normalize

    pool = [c for c, _ in Counter(normalize(c) for c in train_captions).most_common(candidates)]
    gts = ptb_tokenize(references)
    tokenized = ptb_tokenize({str(i): [c] for i, c in enumerate(pool)})
    scores = []
    for i in range(len(pool)):
        score, _ = Cider().compute_score(gts, {vid: tokenized[str(i)] for vid in gts})
        scores.append(float(score))
    best = int(np.argmax(scores))
    return pool[best], scores[best]


def blind_lm_caption(lm_path: str, run_path: str, beam: int) -> str:
    """The LM's own best sentence over the captioner's vocabulary (beam search with the LM alone)."""
    from fusion.checkpoint import load_run
    from fusion.decoding.beam_search import beam_search
    from fusion.decoding.lm_scorer import LMScorer, load_language_model
    from fusion.decoding.processors import caption_processors
    from fusion.decoding.scorer import DecodeContext

    run = load_run(run_path)
    vocab = run.vocab
    ctx = DecodeContext(batch_size=1, beam_size=beam)
    processors = caption_processors(vocab.pad_id, vocab.bos_id, vocab.unk_id, 5, True)
    (hyps,) = beam_search({"lm": LMScorer(load_language_model(lm_path), vocab)}, {"lm": 1.0}, ctx, bos_id=vocab.bos_id,
                          eos_id=vocab.eos_id, max_len=20, processors=processors, decode_words=vocab.decode)
    return hyps[0].words


def score_constant(caption: str, entries: list[Any]) -> dict[str, Any]:
    """Metrics and per-clip scores of one caption given to every clip."""
    from fusion.evaluation import score_predictions

    _, metrics, per_video = score_predictions({e.id: caption for e in entries}, entries)
    return {"metrics": metrics, "per_video": per_video, "caption": caption}


def evaluate(run: str, args: argparse.Namespace, **overrides: Any) -> dict[str, Any]:
    """``fusion evaluate RUN --split test`` (beam ``args.beam``), with its per-clip scores."""
    from fusion.pipeline import evaluate_run

    out = Path(run) / "eval" / ("table_test_lm" if overrides.get("lm") else "table_test")
    if args.reuse and (out / "metrics.json").is_file():  # this script's own earlier evaluation
        metrics = json.loads((out / "metrics.json").read_text())
        if metrics["decode"]["beam_size"] == args.beam and metrics["decode"].get("lm_weight") == overrides.get(
                "lm_weight", metrics["decode"].get("lm_weight")):
            return {"metrics": metrics, "per_video": json.loads((out / "per_video.json").read_text())}
    metrics = evaluate_run(run, manifest=args.manifest, split="test", out_dir=out, features=args.features,
                           progress=False, beam_size=args.beam, **overrides)
    per_video = json.loads((out / "per_video.json").read_text())
    return {"metrics": metrics, "per_video": per_video}


def tune_alpha(args: argparse.Namespace) -> dict[str, Any]:
    """Late fusion's alpha on val by METEOR (``fusion tune`` without writing the run's config)."""
    from fusion.tuning import tune_lm_weight

    out = Path(args.s2vt) / "tune" / "lm_table.json"
    if args.reuse and out.is_file():
        saved = json.loads(out.read_text())
        if sorted(float(a) for a in saved["scores"]) == sorted({0.0, *args.alphas}):
            return {"alpha": saved["best_alpha"], "val": {a: s.get("METEOR") for a, s in saved["scores"].items()}}
    result = tune_lm_weight(args.s2vt, args.lm, args.alphas, manifest=args.manifest, split="val", metric="METEOR",
                            features=args.features, beam_size=args.beam, apply=False, progress=False,
                            out=out)
    return {"alpha": result.best_alpha, "val": {a: s.get("METEOR") for a, s in result.scores.items()}}


def paired(rows: dict[str, dict[str, Any]], samples: int, seed: int) -> None:
    """Add ``paired[metric] = {mean_delta, ci95, n_videos}`` (row minus S2VT, per clip) to every row."""
    from fusion.ablation import paired_bootstrap

    base = rows[BASE]["per_video"]
    for row in rows.values():
        row["paired"] = {}
        for metric in PAIRED:
            ids = [i for i in base if metric in base[i] and metric in row["per_video"].get(i, {})]
            diffs = np.array([row["per_video"][i][metric] - base[i][metric] for i in ids], dtype=np.float64)
            low, high = paired_bootstrap(diffs, samples, np.random.default_rng(seed))
            row["paired"][metric] = {"mean_delta": float(diffs.mean()), "ci95": [low, high], "n_videos": len(ids)}


def checks(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The goals: S2VT above both blind baselines on CIDEr (interval of the difference above 0), late fusion >= S2VT on METEOR."""
    out = []
    for name in ("best constant caption", "LM alone (blind)"):
        p = rows[name]["paired"]["CIDEr"]
        out.append({"check": f"S2VT above '{name}' on CIDEr, paired 95% interval of S2VT minus it above 0 "
                             f"(S2VT - row: [{-p['ci95'][1]:+.3f}, {-p['ci95'][0]:+.3f}])",
                    "passed": bool(p["ci95"][1] < 0)})
    late, s2vt = rows["S2VT + LM late fusion"]["metrics"]["METEOR"], rows[BASE]["metrics"]["METEOR"]
    out.append({"check": f"late fusion METEOR {late:.4f} >= S2VT {s2vt:.4f}", "passed": bool(late >= s2vt)})
    return out


def markdown(report: dict[str, Any]) -> str:
    """The README table, the decode notes and the checks."""
    lines = [f"MSR-VTT, released VGG16 + autoencoder features (128-d, 50 frames): test split of "
             f"`data_prep.msrvtt_features` ({report['n_test']} clips, 20 references each), beam {report['beam']}. "
             "Produced by:", "", f"    {report['command']}", "",
             "| variant | train time (wall / CPU) | " + " | ".join(COLUMNS) + " | "
             + " | ".join(f"Δ{m} vs S2VT [95% CI]" for m in PAIRED) + " |",
             "|" + "---|" * (2 + len(COLUMNS) + len(PAIRED))]
    for name, row in report["rows"].items():
        cells = [f"{row['metrics'][k]:.3f}" for k in COLUMNS]
        for m in PAIRED:
            p = row["paired"][m]
            cells.append("" if name == BASE else f"{p['mean_delta']:+.3f} [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}]")
        t = report["train_times"].get(name)
        took = f"{t['wall_s'] / 60:.1f} / {t['cpu_s'] / 60:.1f} min" if t else "-"
        lines.append(f"| {name} | {took} | " + " | ".join(cells) + " |")
    lines += ["", "Δ: mean over test clips of the row's per-clip score minus S2VT's, with the paired bootstrap 95% "
              f"percentile interval ({report['bootstrap']} resamples); metric columns are corpus-level. "
              f"Constant caption: \"{report['constant']}\" (best CIDEr on the test references among the "
              f"{report['candidates']} most frequent train captions). Blind LM: \"{report['blind']}\". Late fusion: "
              f"alpha {report['late']['alpha']:g} chosen on val by METEOR (val METEOR per alpha: "
              + ", ".join(f"{a}: {v:.4f}" for a, v in report["late"]["val"].items()) + ").", "",
              "Train time: wall clock and CPU time (user + system) of `fusion train` / `fusion lm train` on the "
              "shared 2-core build machine, measured with /usr/bin/time; the late- and deep-fusion rows add the LM's.", "",
              "Goals:", ""] + [f"- [{'x' if c['passed'] else ' '}] {c['check']}" for c in report["checks"]]
    return "\n".join(lines) + "\n"


@script_main("msrvtt_features_table")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.msrvtt_features_table", description=__doc__.splitlines()[0])
    p.add_argument("--manifest", required=True, help="manifest of data_prep.msrvtt_features")
    p.add_argument("--features", required=True, help="the imported feature store")
    for name in ("s2vt", "meanpool", "deep"):
        p.add_argument(f"--{name}", required=name == "s2vt", help=f"{name} run folder (rows without one are left out)")
    p.add_argument("--lm", required=True, help="`fusion lm train` folder")
    p.add_argument("--alphas", type=float, nargs="+", default=[0.1, 0.3], help="late-fusion weights tried on val")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--candidates", type=int, default=50, help="train captions tried as the constant caption")
    p.add_argument("--samples", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-times", default=None, help="JSON {row: {wall_s, cpu_s}} measured when training")
    p.add_argument("--reuse", action="store_true",
                   help="reuse this script's earlier evaluations and alpha choice found in the run folders")
    p.add_argument("--results", default="results/msrvtt_vgg16_ae128", help="writes RESULTS.json and RESULTS.md")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from fusion.manifest import load_manifest, split_entries

    start = time.perf_counter()
    entries = load_manifest(args.manifest)
    test = split_entries(entries, "test")
    train_caps = [c for e in split_entries(entries, "train") for c in e.captions]
    constant, _ = best_constant(train_caps, {e.id: e.captions for e in test}, args.candidates)
    blind = blind_lm_caption(args.lm, args.s2vt, args.beam)
    late = tune_alpha(args)
    rows = {"best constant caption": score_constant(constant, test), "LM alone (blind)": score_constant(blind, test)}
    if args.meanpool:
        rows["mean-pooled features"] = evaluate(args.meanpool, args)
    rows[BASE] = evaluate(args.s2vt, args)
    # alpha 0 on val: the LM does not help there, and late fusion decodes as S2VT alone
    rows["S2VT + LM late fusion"] = (evaluate(args.s2vt, args, lm=args.lm, lm_weight=late["alpha"])
                                     if late["alpha"] > 0 else rows[BASE])
    if args.deep:
        rows["S2VT + LM deep fusion"] = evaluate(args.deep, args)
    paired(rows, args.samples, args.seed)
    times = json.loads(Path(args.train_times).read_text()) if args.train_times else {}
    report = {"command": "python -m scripts.msrvtt_features_table " + " ".join(sys.argv[1:] if argv is None else argv),
              "n_test": len(test), "beam": args.beam, "bootstrap": args.samples, "candidates": args.candidates,
              "constant": constant, "blind": blind, "late": late, "train_times": times,
              "rows": {k: {"metrics": {m: v["metrics"][m] for m in COLUMNS}, "paired": v["paired"]} for k, v in rows.items()},
              "seconds": time.perf_counter() - start}
    report["checks"] = checks(report["rows"])
    atomic_write_json(Path(args.results + ".json"), report)
    atomic_write_text(Path(args.results + ".md"), markdown(report))
    print(markdown(report))
    return 0 if all(c["passed"] for c in report["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
