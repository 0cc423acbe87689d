"""``make demo``: the whole system on a fresh machine, in about ten minutes on 2 CPU cores.

1. generates the audio-visual benchmark from real ESC-10 sounds (``data_prep.avsynth``),
2. extracts frame-CNN and SoundNet features (cached in a store beside the manifest),
3. trains the audio captioner (``configs/avsynth/demo.yaml``) into ``runs/demo``,
4. evaluates it on the test split with beam 5 (coco-caption metrics + the benchmark's
   sound / visual accuracy),
5. captions one held-out clip from its raw video file and prints the caption,
6. builds the zero-shot captioner for real video (``fusion zeroshot build`` into ``runs/zeroshot``:
   a caption LM on the real MSVD + MSR-VTT captions, fused with what the frame CNN sees and the
   sound says) and captions the real clips of ``FUSION_DATA_DIR`` beside the blind LM (the same
   language model without any evidence); skipped, with a note, where the data folder is absent.

Re-running reuses what is done: the benchmark and features are kept, a finished training
run is not repeated (a killed one resumes). Afterwards ``fusion evaluate runs/demo --json``
and ``fusion caption VIDEO --model runs/demo`` use the same checkpoint.

    python -m scripts.demo [--out runs/demo] [--data data/avsynth_demo] [--size small] [--set KEY=VALUE]
                           [--zeroshot runs/zeroshot] [--zeroshot-sentences 30000]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from fusion.errors import FusionError, script_main
from fusion.io import atomic_write_json
from fusion.paths import REPO_ROOT

log = logging.getLogger("demo")
METRICS_SHOWN = ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "sound_accuracy", "visual_accuracy", "false_sound_rate")


def _stage(name: str) -> float:
    print(f"\n== {name}", flush=True)
    return time.perf_counter()


def _benchmark(data: Path, seed: int, size: str) -> Path:
    from data_prep.avsynth import generate

    manifest = data / "manifest.jsonl"
    if manifest.is_file():
        print(f"benchmark: reusing {manifest} (sounds: {_sound_origin(data)})")
        return manifest
    summary = generate(data, seed, size, workers=2, progress=True)
    print(f"benchmark: {summary.clips} clips, sounds from {summary.sound_origin}, {summary.elapsed_s:.0f} s")
    return manifest


def _sound_origin(data: Path) -> str:
    """Which sounds the benchmark was built from: ``esc10`` or ``synthetic`` (its ``benchmark.json``)."""
    info = data / "benchmark.json"
    if not info.is_file():
        return "unknown"
    return str(json.loads(info.read_text(encoding="utf-8")).get("sound_origin", "unknown"))


def _sounds_note(origin: str) -> list[str]:
    """What the sounds were and how the numbers compare with the README's ``make demo`` figures."""
    if origin == "esc10":
        return ["sounds         ESC-10 recordings (real): comparable with the README's `make demo` figures"]
    return [f"sounds         {'the synthetic stand-in for ESC-10' if origin == 'synthetic' else origin}: "
            "NOT comparable with the README's `make demo` figures, measured with ESC-10's real recordings",
            "               for those: python -m data_prep.fetch esc10 --out DATA; export FUSION_DATA_DIR=DATA; "
            "remove the benchmark folder (--data) and run the demo again"]


def _held_out_clip(manifest: Path) -> object:
    """The first test clip with an audible sound source (falls back to the first test clip)."""
    from fusion.manifest import load_manifest

    test = [e for e in load_manifest(manifest) if e.split == "test"]
    return next((e for e in test if e.meta.get("audio_kind") == "sound"), test[0])


def zeroshot_demo(out: Path, sentences: int) -> dict:
    """Build (or reuse) the zero-shot model and caption the real development clips beside the blind LM."""
    from fusion.cli import main as fusion_main
    from fusion.config import from_dict
    from fusion.features import ExtractConfig, FeatureStore
    from fusion.zeroshot.build import dev_features_dir
    from fusion.paths import data_dir
    from fusion.zeroshot.config import is_zeroshot_folder
    from fusion.realeval.baselines import blind_lm_caption
    from fusion.zeroshot.model import ZeroShotModel
    from fusion.zeroshot.neighbours import MATRIX_FILE

    if not (data_dir() / "msvd" / "captions").is_dir():
        print(f"zero-shot: skipped, no caption data at {data_dir()} (set FUSION_DATA_DIR)")
        return {"skipped": f"no data at {data_dir()}"}
    if is_zeroshot_folder(out) and (out / "build.json").is_file() and (out / MATRIX_FILE).is_file():
        print(f"zero-shot: reusing {out}")
    else:
        code = fusion_main(["zeroshot", "build", "--out", str(out), "--sentences", str(sentences)])
        if code:
            raise FusionError(f"fusion zeroshot build --out {out} failed (exit {code}); see the error above")
    model = ZeroShotModel(out)
    store = FeatureStore(dev_features_dir(out, from_dict(ExtractConfig, model.saved.extract)))
    records = [store[i] for i in sorted(store.ids())]
    blind = blind_lm_caption(model.lm)  # the LM without evidence: one caption for every clip
    captions = model.decode(records)
    rows = [{"clip": r.id, "audio": r.audio is not None, "blind_lm": blind, "zeroshot": f[0].words}
            for r, f in zip(records, captions)]
    print(f"\n{'clip':22s} {'sound':5s} {'blind LM':42s} zero-shot")
    for row in rows:
        print(f"{row['clip'][:22]:22s} {'yes' if row['audio'] else 'no':5s} {row['blind_lm'][:42]:42s} {row['zeroshot']}")
    return {"model": str(out), "weights": model.config.__dict__, "clips": rows}


def run_demo(out: Path, data: Path, config: Path, seed: int, size: str, overrides: list[str]) -> dict:
    """Run every stage; returns the summary written to ``OUT/demo_summary.json``."""
    from fusion.experiment import load_experiment
    from fusion.pipeline import CaptionPipeline, evaluate_run
    from fusion.stages import prepare_training
    from fusion.training import train

    timings: dict[str, float] = {}
    t = _stage("1/5 benchmark (data_prep.avsynth)")
    manifest = _benchmark(data, seed, size)
    timings["benchmark_s"] = time.perf_counter() - t

    t = _stage("2/5 features + training (fusion train)")
    cfg = load_experiment(config, overrides)
    prepare_training(cfg, out, manifest=manifest)  # check the run folder, then extract the features it lacks
    result = train(cfg, out)
    best = result.best or {}
    print(f"trained {result.steps} steps / {result.epochs} epochs ({result.stop_reason}); "
          f"best val {best.get('metric')}={best.get('value')} at step {best.get('step')}")
    timings["train_s"] = time.perf_counter() - t

    t = _stage("3/5 evaluation on the test split, beam 5 (fusion evaluate)")
    metrics = evaluate_run(out, split="test", beam_size=5)
    timings["evaluate_s"] = time.perf_counter() - t

    t = _stage("4/5 captioning a held-out clip from its video file (fusion caption)")
    clip = _held_out_clip(manifest)
    caption = CaptionPipeline(out, beam_size=5).caption([clip.video])[0]
    timings["caption_s"] = time.perf_counter() - t
    if caption.error:
        raise FusionError(caption.error)
    return {
        "run_dir": str(out), "manifest": str(manifest), "sound_origin": _sound_origin(data), "steps": result.steps,
        "metrics": {k: metrics.get(k) for k in METRICS_SHOWN if k in metrics},
        "n_test_videos": metrics.get("n_videos"), "eval_dir": metrics.get("out_dir"),
        "clip": {"video": clip.video, "caption": caption.caption, "references": clip.captions[:2],
                 "sound": clip.meta.get("sound_noun"), "objects": clip.meta.get("objects")},
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }


@script_main("demo")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO_ROOT / "runs" / "demo"), help="run folder (default runs/demo)")
    p.add_argument("--data", default=str(REPO_ROOT / "data" / "avsynth_demo"), help="benchmark folder")
    p.add_argument("--config", default=str(REPO_ROOT / "configs" / "avsynth" / "demo.yaml"))
    p.add_argument("--size", default="small", help="benchmark size (tiny, small, default)")
    p.add_argument("--seed", type=int, default=0, help="benchmark seed")
    p.add_argument("--zeroshot", default=str(REPO_ROOT / "runs" / "zeroshot"), help="zero-shot model folder")
    p.add_argument("--zeroshot-sentences", type=int, default=30000,
                   help="captions the zero-shot caption LM trains on (fusion zeroshot build --sentences)")
    p.add_argument("--no-zeroshot", action="store_true", help="skip stage 5 (the zero-shot captioner)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set train.max_epochs=2")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("fusion.stages").setLevel(logging.INFO)  # the extraction stage says what it extracts, as in the CLI
    start = time.perf_counter()
    out = Path(args.out).resolve()
    summary = run_demo(out, Path(args.data).resolve(), Path(args.config), args.seed, args.size, args.overrides)
    t = _stage("5/5 the zero-shot captioner on the real clips of FUSION_DATA_DIR (fusion zeroshot build)")
    summary["zeroshot"] = ({"skipped": "--no-zeroshot"} if args.no_zeroshot
                           else zeroshot_demo(Path(args.zeroshot).resolve(), args.zeroshot_sentences))
    summary["timings_s"]["zeroshot_s"] = round(time.perf_counter() - t, 1)
    summary["total_s"] = round(time.perf_counter() - start, 1)
    atomic_write_json(out / "demo_summary.json", summary)
    print("\n== results (test split, beam 5)")
    for key, value in summary["metrics"].items():
        print(f"  {key:17s} {value:.3f}" if isinstance(value, float) else f"  {key:17s} {value}")
    clip = summary["clip"]
    print(f"\nheld-out clip  {clip['video']}")
    print(f"  caption      {clip['caption']}")
    print(f"  reference    {clip['references'][0]}")
    print(f"  truth        sound: {clip['sound']}; objects: {json.dumps(clip['objects'])}")
    print("\n" + "\n".join(_sounds_note(summary["sound_origin"])))
    print(f"\ndone in {summary['total_s']:.0f} s; run folder {out}")
    print(f"next: fusion evaluate {out} --json   |   fusion caption {clip['video']} --model {out}")
    if "model" in summary["zeroshot"]:
        print(f"real video: fusion caption VIDEO --model {summary['zeroshot']['model']} --explain")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
