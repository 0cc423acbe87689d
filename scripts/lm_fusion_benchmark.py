"""Language-model fusion on the audio-visual benchmark with little paired data (issue 5).

Paired training data is cut to ``--train-clips`` clips (default 100; validation and test
untouched); an LSTM LM is trained on the benchmark's text-only corpus (sentences from the
same grammar, none of them a paired caption). Then, on the test split with beam 5:

- ``none``: the captioner alone (``configs/avsynth/audio_early.yaml``);
- ``late_loglinear`` / ``late_linear``: the same captioner with the LM as scorer ``"lm"``,
  alpha tuned on validation by :func:`fusion.tuning.tune_lm_weight` (``fusion tune``);
- ``early``: a captioner whose language layer starts from the LM (``configs/avsynth/lm_early.yaml``);
- ``deep``: a captioner with the frozen LM's hidden state before its softmax (``lm_deep.yaml``).

Every captioner trains under the same config and budget. Writes
``results/lm_fusion.{json,md}`` with the table and the acceptance check (late fusion raises
METEOR over no LM).

    python -m data_prep.avsynth --out data/avsynth_small --seed 0 --size small
    python -m scripts.lm_fusion_benchmark --manifest data/avsynth_small/manifest.jsonl

The text corpus is ``--corpus`` if given, else written beside the manifest exactly as
``python -m data_prep.avsynth --text-corpus`` would (same seed, same exclusions).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any


from fusion.config import load_config, read_yaml
from fusion.io import atomic_write_json, atomic_write_text
from fusion.paths import REPO_ROOT

COLUMNS = ("METEOR", "CIDEr", "Bleu_4", "ROUGE_L", "sound_accuracy", "visual_accuracy", "false_sound_rate")
CONFIGS = REPO_ROOT / "configs" / "avsynth"


def cut_manifest(manifest: Path, train_clips: int, out: Path) -> Path:
    """The manifest with only its first ``train_clips`` training clips (absolute video paths)."""
    from fusion.manifest import load_manifest, write_manifest

    entries = load_manifest(manifest)
    train = [e for e in entries if e.split == "train"][:train_clips]
    kept = train + [e for e in entries if e.split != "train"]
    write_manifest(kept, out)
    return out


def text_corpus(manifest: Path, corpus: Path | None, size: int) -> Path:
    """The benchmark's text-only corpus: given, or generated as data_prep.avsynth does."""
    if corpus is not None:
        return corpus
    from data_prep.avsynth.build import write_text_corpus
    from fusion.manifest import load_manifest

    path = manifest.parent / f"text_corpus_{size}.txt"
    if not path.is_file():
        seed = json.loads((manifest.parent / "benchmark.json").read_text())["seed"]
        exclude = {c for e in load_manifest(manifest) for c in e.captions}
        write_text_corpus(path, seed, size, exclude)
    return path


def train_lm_once(corpus: Path, out: Path) -> dict[str, Any]:
    """Train the LM (configs/avsynth/lm.yaml) unless ``out`` already holds one."""
    from fusion.models.lm import LMConfig, WordLM
    from fusion.training.lm import read_corpus, train_lm

    if not (out / "lm.json").is_file():
        train_lm(read_corpus(corpus), load_config(LMConfig, CONFIGS / "lm.yaml"), out_dir=out)
    lm = WordLM.load(out)
    return {"vocab": len(lm.vocab), "history": lm.history, "corpus": str(corpus)}


VARIANT_CONFIGS = {"none": "audio_early.yaml", "early": "lm_early.yaml", "deep": "lm_deep.yaml"}


def variant_config(mode: str, lm_dir: Path, overrides: list[str]) -> Any:
    """The ExperimentConfig of a variant from ``configs/avsynth/``, its LM set to ``lm_dir``."""
    from fusion.config import apply_overrides, from_dict
    from fusion.experiment import ExperimentConfig

    data = apply_overrides(read_yaml(CONFIGS / VARIANT_CONFIGS[mode]), overrides)
    if mode != "none":
        data["lm_fusion"] = dict(data.get("lm_fusion") or {}, mode=mode, lm=str(lm_dir))
    return from_dict(ExperimentConfig, data)


def train_variant(mode: str, lm_dir: Path, run_dir: Path, manifest: Path, features: str,
                  overrides: list[str]) -> tuple[Any, float]:
    """Train one captioner with ``fusion.training.train`` (the model comes from build_captioner)."""
    from fusion.stages import prepare_training
    from fusion.training import train

    cfg = variant_config(mode, lm_dir, overrides)
    t0 = time.perf_counter()
    prepare_training(cfg, run_dir, manifest=manifest, features=features, progress=False)
    result = train(cfg, run_dir, progress=False)
    return result, time.perf_counter() - t0


def load_variant(run_dir: Path, mode: str, lm_dir: Path) -> Any:
    """The trained run (``load_run`` rebuilds early / deep fusion models from the stored config)."""
    from fusion.checkpoint import load_run

    return load_run(run_dir)


def evaluate(run: Any, split: str, beam: int, lm: str | None = None, alpha: float = 0.0, lm_mode: str = "loglinear") -> dict:
    """coco metrics + benchmark judgements of ``run`` on ``split`` of its manifest."""
    from fusion.data import open_features
    from fusion.decoding.config import resolve_decode_config
    from fusion.decoding.decoder import CaptionDecoder
    from fusion.evaluation import benchmark_metrics, coco_metrics
    from fusion.manifest import load_manifest, split_entries

    entries = split_entries(load_manifest(run.config.data.manifest), split)
    store = open_features(entries, run.config.data.manifest, run.extract_config, run.config.data.features)
    options = resolve_decode_config(run, {"beam_size": beam, "lm": lm if alpha > 0 else None,
                                          "lm_weight": alpha if lm else 0.0, "lm_mode": lm_mode})
    hyps = CaptionDecoder(run, options).decode([store[e.id] for e in entries], progress=True)
    predictions = {e.id: h[0].words for e, h in zip(entries, hyps)}
    metrics = dict(coco_metrics(predictions, {e.id: e.captions for e in entries}).metrics)
    metrics.update(benchmark_metrics(predictions, entries))
    metrics["n_videos"] = len(entries)
    return metrics


def markdown(rows: dict[str, dict[str, Any]], checks: list[tuple[str, bool]], command: str, info: dict) -> str:
    lines = [f"LM fusion on the benchmark, paired training data cut to {info['train_clips']} clips; "
             f"test split, beam {info['beam']} ({info['n_test']} clips). LM: LSTM on {info['corpus_sentences']} "
             "text-only sentences. Produced by:", "", f"    {command}", "",
             "| variant | alpha | " + " | ".join(COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 2)]
    for name, r in rows.items():
        cells = [f"{r[k]:.3f}" if isinstance(r.get(k), float) else "n/a" for k in COLUMNS]
        alpha = f"{r['alpha']:g}" if r.get("alpha") is not None else "-"
        lines.append(f"| {name} | {alpha} | " + " | ".join(cells) + " |")
    lines += ["", "Acceptance (issue 5):", ""] + [f"- [{'x' if ok else ' '}] {text}" for text, ok in checks]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.lm_fusion_benchmark", description=__doc__.splitlines()[0])
    p.add_argument("--manifest", default="data/avsynth_small/manifest.jsonl", help="benchmark manifest")
    p.add_argument("--corpus", type=Path, default=None, help="text-only corpus (default: generated beside the manifest)")
    p.add_argument("--corpus-size", type=int, default=20000, help="sentences when generating the corpus")
    p.add_argument("--train-clips", type=int, default=100, help="paired training clips kept")
    p.add_argument("--variants", nargs="+", default=["none", "early", "deep"], choices=["none", "early", "deep"])
    p.add_argument("--alphas", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5, 0.7, 0.9], help="late-fusion grid")
    p.add_argument("--out-root", type=Path, default=Path("runs/lm_fusion"), help="runs and the LM go here")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="captioner override for every variant, e.g. --set train.max_epochs=10")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--results", default="results/lm_fusion", help="output path without extension")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from fusion.data import default_store_path
    from fusion.experiment import load_experiment
    from fusion.tuning import tune_lm_weight

    manifest = Path(args.manifest).resolve()
    root = args.out_root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    cut = cut_manifest(manifest, args.train_clips, root / f"manifest_train{args.train_clips}.jsonl")
    features = str(default_store_path(manifest, load_experiment(CONFIGS / VARIANT_CONFIGS["none"], args.overrides).extract))
    corpus = text_corpus(manifest, args.corpus, args.corpus_size)
    lm_dir = root / "lm"
    lm_info = train_lm_once(corpus, lm_dir)

    rows: dict[str, dict[str, Any]] = {}
    for mode in args.variants:
        result, seconds = train_variant(mode, lm_dir, root / mode, cut, features, args.overrides)
        run = load_variant(root / mode, mode, lm_dir)
        rows[mode] = {**evaluate(run, "test", args.beam), "alpha": None, "steps": result.steps, "train_s": round(seconds, 1)}
        if mode == "none":
            for lm_mode in ("loglinear", "linear"):
                tuned = tune_lm_weight(root / "none", lm_dir, args.alphas, mode=lm_mode, beam_size=args.beam)
                row = evaluate(run, "test", args.beam, str(lm_dir), tuned.best_alpha, lm_mode)
                rows[f"late_{lm_mode}"] = {**row, "alpha": tuned.best_alpha, "val_scores": tuned.scores}
        print(f"{mode}: " + ", ".join(f"{k}={rows[mode][k]:.3f}" for k in COLUMNS if isinstance(rows[mode].get(k), float)),
              flush=True)
    checks = []
    if "none" in rows:
        base = rows["none"]["METEOR"]
        for name in ("late_loglinear", "late_linear"):
            gain = rows[name]["METEOR"] - base
            checks.append((f"{name} (alpha {rows[name]['alpha']:g}) METEOR - none METEOR = {gain:+.4f} > 0", gain > 0))
    command = (f"python -m scripts.lm_fusion_benchmark --manifest {args.manifest} --train-clips {args.train_clips}"
               + "".join(f" --set {o}" for o in args.overrides))
    info = {"train_clips": args.train_clips, "beam": args.beam, "n_test": next(iter(rows.values()))["n_videos"],
            "corpus_sentences": sum(1 for _ in open(corpus, encoding="utf-8"))}
    out = Path(args.results)
    atomic_write_json(out.with_suffix(".json"), {"manifest": str(manifest), "configs": VARIANT_CONFIGS, "lm": lm_info, **info,
                                                 "overrides": args.overrides, "rows": rows,
                                                 "acceptance": [{"check": c, "passed": ok} for c, ok in checks]})
    text = markdown(rows, checks, command, info)
    atomic_write_text(out.with_suffix(".md"), text)
    print(text)
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
