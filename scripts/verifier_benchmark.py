"""Acceptance of the audio-noun verifier on the audio-visual benchmark (issue 5, item 5).

    python -m scripts.verifier_benchmark --video-only runs/avsynth_video_only \\
        --audio runs/avsynth_audio_early --manifest data/avsynth/manifest.jsonl \\
        [--features STORE] [--verifier FILE] [--betas 0.5,1,2,4] [--out results/verifier]

1. Trains the verifier's learned evidence on the manifest's train split, calibrated on val
   and saved to ``--verifier`` (default ``runs/verifier/verifier.safetensors``), or loads it.
2. Decodes val and test with the VIDEO-ONLY captioner for each beta: in the beam search
   (scorer ``"audio"``) and as an n-best re-ranker. beta is chosen on val: the highest
   sound_accuracy whose false_sound_rate on clips without a sound source does not exceed
   beta = 0's.
3. Decodes test with the AUDIO captioner (beta = 0).
4. Reports the share of the sound_accuracy gap (audio - video-only) the verifier recovers
   and the false_sound_rate on silent and soundless clips; writes ``OUT.json`` / ``OUT.md``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from fusion.errors import script_main
from fusion.io import atomic_write_json, atomic_write_text

log = logging.getLogger("verifier_benchmark")
KEYS = ("sound_accuracy", "false_sound_rate", "false_sound_rate_no_source", "visual_accuracy")


def _decode(run: Any, records: list[Any], beta: float, verifier_path: Path, nbest: int = 1) -> list[list[Any]]:
    import dataclasses

    from fusion.decoding.config import resolve_decode_config
    from fusion.decoding.decoder import CaptionDecoder

    options = resolve_decode_config(run, {"audio_weight": beta, "verifier": str(verifier_path)})
    options = dataclasses.replace(options, nbest=min(max(options.nbest, nbest), options.beam_size))
    return CaptionDecoder(run, options).decode(records)


def _metrics(hyps: list[list[Any]], entries: list[Any]) -> dict[str, Any]:
    from fusion.evaluation import benchmark_metrics

    return benchmark_metrics({e.id: h[0].words for e, h in zip(entries, hyps)}, entries)


def _pick_beta(val: dict[float, dict[str, Any]]) -> float:
    """Highest val sound_accuracy without more false sounds on no-source clips than beta = 0."""
    limit = val[0.0]["false_sound_rate_no_source"] or 0.0
    ok = [b for b, m in val.items() if (m["false_sound_rate_no_source"] or 0.0) <= limit + 1e-9]
    return max(ok, key=lambda b: (val[b]["sound_accuracy"] or 0.0, -b))


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the whole comparison; returns the report."""
    from fusion.checkpoint import load_run
    from fusion.data import open_features
    from fusion.decoding.audio_scorer import rerank
    from fusion.manifest import load_manifest
    from fusion.stages import extract_features
    from fusion.verifier import AudioNounVerifier, train_verifier

    entries = load_manifest(args.manifest)
    video_run, audio_run = load_run(args.video_only), load_run(args.audio)
    extract_features(entries, args.manifest, video_run.extract_config, args.features)
    store = open_features(entries, args.manifest, video_run.extract_config, args.features)
    verifier_path = Path(args.verifier) if args.verifier else Path("runs/verifier/verifier.safetensors")
    report: dict[str, Any] = {"manifest": str(args.manifest), "video_only_run": str(args.video_only),
                              "audio_run": str(args.audio), "verifier": str(verifier_path)}
    if verifier_path.is_file() and not args.retrain:
        verifier = AudioNounVerifier.load(verifier_path)
    else:
        verifier, train_report = train_verifier(entries, store)
        verifier.save(verifier_path)
        report["verifier_training"] = train_report
    splits = {s: [e for e in entries if e.split == s] for s in ("val", "test")}
    records = {s: [store[e.id] for e in es] for s, es in splits.items()}
    evidence = {s: verifier.evidence_batch(rs) for s, rs in records.items()}
    betas = [0.0, *args.betas]
    beam: dict[str, dict[float, dict[str, Any]]] = {"val": {}, "test": {}}
    rerank_m: dict[str, dict[float, dict[str, Any]]] = {"val": {}, "test": {}}
    for split in ("val", "test"):
        nbest = _decode(video_run, records[split], 0.0, verifier_path, nbest=args.nbest)
        for beta in betas:
            hyps = nbest if beta == 0 else _decode(video_run, records[split], beta, verifier_path)
            beam[split][beta] = _metrics(hyps, splits[split])
            reranked = [rerank(h, ev, beta, verifier.table) for h, ev in zip(nbest, evidence[split])]
            rerank_m[split][beta] = _metrics(reranked, splits[split])
            log.info("%s beta=%g beam %s | rerank %s", split, beta,
                     {k: beam[split][beta][k] for k in KEYS}, {k: rerank_m[split][beta][k] for k in KEYS})
    audio = _metrics(_decode(audio_run, records["test"], 0.0, verifier_path), splits["test"])
    base = beam["test"][0.0]
    gap = (audio["sound_accuracy"] or 0.0) - (base["sound_accuracy"] or 0.0)
    results = {}
    for mode, table in (("beam", beam), ("rerank", rerank_m)):
        beta = _pick_beta(table["val"])
        test = table["test"][beta]
        recovered = ((test["sound_accuracy"] or 0.0) - (base["sound_accuracy"] or 0.0)) / gap if gap > 0 else None
        results[mode] = {"beta": beta, "test": test, "gap_recovered": recovered,
                         "no_more_false_sounds": (test["false_sound_rate_no_source"] or 0.0)
                         <= (base["false_sound_rate_no_source"] or 0.0) + 1e-9,
                         "val_by_beta": {str(b): m for b, m in table["val"].items()},
                         "test_by_beta": {str(b): m for b, m in table["test"].items()}}
        results[mode]["passed"] = bool(recovered is not None and recovered >= 0.5 and results[mode]["no_more_false_sounds"])
    report.update({"video_only_test": base, "audio_test": audio, "sound_accuracy_gap": gap, "results": results,
                   "n_test": len(splits["test"]), "n_test_audio_absent": sum(e is None for e in evidence["test"])})
    return report


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table."""
    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    lines = ["# Audio-noun verifier on the video-only captioner (benchmark test split)", "",
             f"Manifest `{report['manifest']}`; video-only run `{report['video_only_run']}`; "
             f"audio run `{report['audio_run']}`; {report['n_test']} test clips "
             f"({report['n_test_audio_absent']} without an audio stream).", "",
             "| system | beta | sound_accuracy | false_sound (all) | false_sound (silent + no stream) | visual_accuracy |",
             "|---|---|---|---|---|---|"]
    rows = [("video-only", 0.0, report["video_only_test"]), ("audio captioner", 0.0, report["audio_test"])]
    rows += [(f"video-only + verifier ({m})", r["beta"], r["test"]) for m, r in report["results"].items()]
    for name, beta, m in rows:
        lines.append(f"| {name} | {beta:g} | {fmt(m['sound_accuracy'])} | {fmt(m['false_sound_rate'])} | "
                     f"{fmt(m['false_sound_rate_no_source'])} | {fmt(m['visual_accuracy'])} |")
    lines += ["", "Test split by beta (sound_accuracy / false_sound on silent + no stream):", "",
              "| mode | " + " | ".join(report["results"]["beam"]["test_by_beta"]) + " |",
              "|---|" + "---|" * len(report["results"]["beam"]["test_by_beta"])]
    for mode, r in report["results"].items():
        cells = [f"{fmt(m['sound_accuracy'])} / {fmt(m['false_sound_rate_no_source'])}" for m in r["test_by_beta"].values()]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    lines.append("")
    for mode, r in report["results"].items():
        lines.append(f"- {mode}: beta {r['beta']:g} (chosen on val) recovers {fmt(r['gap_recovered'])} of the "
                     f"sound_accuracy gap ({fmt(report['sound_accuracy_gap'])}); false sounds on silent/soundless "
                     f"clips not raised: {r['no_more_false_sounds']}; acceptance {'PASSED' if r['passed'] else 'FAILED'}.")
    lines += ["", "Made by `python -m scripts.verifier_benchmark` (see its docstring for the arguments)."]
    return "\n".join(lines) + "\n"


@script_main("verifier_benchmark")
def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video-only", required=True, help="run of the video-only captioner")
    parser.add_argument("--audio", required=True, help="run of the audio captioner")
    parser.add_argument("--manifest", required=True, type=Path, help="benchmark manifest (train/val/test)")
    parser.add_argument("--features", default=None, help="feature store (default: beside the manifest)")
    parser.add_argument("--verifier", default=None,
                        help="verifier file: loaded if it exists, else trained and saved there "
                             "(default runs/verifier/verifier.safetensors)")
    parser.add_argument("--retrain", action="store_true", help="train the verifier even if the file exists")
    parser.add_argument("--betas", default="0.5,1,2,4", help="verifier weights to try (comma-separated)")
    parser.add_argument("--nbest", type=int, default=5, help="n-best size for the re-ranker")
    parser.add_argument("--out", type=Path, default=Path("results/verifier"), help="writes OUT.json and OUT.md")
    args = parser.parse_args(argv)
    args.betas = [float(b) for b in args.betas.split(",") if b.strip()]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    report = evaluate(args)
    atomic_write_json(args.out.with_suffix(".json"), report)
    atomic_write_text(args.out.with_suffix(".md"), markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
