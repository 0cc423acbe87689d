"""SoundNet's last head step on real clips: the original model against the tail-padding policies.

Two measurements, both on real audio (the MSR-VTT clips with sound and SoundNet's demo file):

1. **Tags per clip.** For every clip, the top places and objects (softmax per ``conv8`` step,
   averaged over the steps that belong to the clip, as ``fusion tags`` does) and each head
   step's largest logit, under ``tail="original"`` (the original model, the baseline) and the
   padding policies ``repeat`` (default) and ``reflect``. A step is *degenerate* when its
   largest place logit is below 0 (healthy steps sit at about +1 to +3).
2. **Continuation check.** A long recording cut at many lengths: the cut clip's last head step
   and its last four pool5 steps (1.5 s), computed with each policy, against the same window computed on the
   uncut recording, where that window reads real audio that follows (the truth a padding
   policy tries to stand in for). Reported: top-1 place agreement with the truth and the mean
   total-variation distance of the place posteriors, and the relative error of the pool5 steps.

    .venv/bin/python scripts/soundnet_tail.py --out results/soundnet_tail

Writes ``<out>.md`` and ``<out>.json`` (atomic) and prints the tables.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusion.encoders.soundnet import SOUNDNET8, SoundNet8, analyse_audio, output_lengths, receptive_field
from fusion.encoders.soundnet_preprocess import SAMPLE_RATE_HZ as SR
from fusion.encoders.soundnet_preprocess import SoundNetPreprocess
from fusion.errors import FusionError, script_main
from fusion.io import atomic_write_json, atomic_write_text
from fusion.media import decode
from fusion.paths import data_dir

logger = logging.getLogger("soundnet_tail")

MODES = ("original", "repeat", "reflect")
DEGENERATE_LOGIT = 0.0  # a head step whose largest place logit is below this is degenerate
TOP_K = 3
FEATURE_STEPS = 4  # pool5 steps at the end of a cut clip compared with the uncut truth (4 x 0.37 s)


def head_logits(model: SoundNet8, preprocess: SoundNetPreprocess, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Object and place logits ``(T8, C)`` of the head steps that belong to the clip."""
    prepared = preprocess.prepare(wave)
    with torch.inference_mode():
        objects, places = model(torch.from_numpy(prepared.samples).view(1, 1, -1))
    keep = prepared.head_steps
    return objects[0, :, :keep].T.numpy(), places[0, :, :keep].T.numpy()


def _top(probs: np.ndarray, names: list[str]) -> list[list[Any]]:
    return [[names[i], round(float(probs[i]), 3)] for i in np.argsort(-probs, kind="stable")[:TOP_K]]


def tag_clip(model: SoundNet8, wave: np.ndarray) -> dict[str, Any]:
    """Top tags and per-step largest logits of one clip under every mode."""
    object_names = list(SOUNDNET8.label_spaces["imagenet"])
    out: dict[str, Any] = {"seconds": round(wave.size / SR, 2), "modes": {}}
    for mode in MODES:
        preprocess = SOUNDNET8.with_tail(mode).preprocess
        _, objects, places = analyse_audio(model, wave, (), preprocess)
        obj_logits, place_logits = head_logits(model, preprocess, wave)
        out["modes"][mode] = {
            "places": _top(places, list(SOUNDNET8.label_spaces["places2"])),
            "objects": _top(objects, object_names),
            "step_max_place_logit": [round(float(v), 1) for v in place_logits.max(axis=1)],
            "step_max_object_logit": [round(float(v), 1) for v in obj_logits.max(axis=1)],
            "degenerate_steps": int((place_logits.max(axis=1) < DEGENERATE_LOGIT).sum()),
            "tail_seconds": round(preprocess.tail_samples(wave.size) / SR, 2),
        }
    return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def continuation_check(model: SoundNet8, wave: np.ndarray, step_s: float) -> dict[str, Any]:
    """Cut ``wave`` at lengths 12 s ... and compare each policy's last steps with the uncut truth."""
    full = SOUNDNET8.with_tail("original").preprocess.prepare(wave)
    with torch.inference_mode():
        x = torch.from_numpy(full.samples).view(1, 1, -1)
        kept, _ = model.forward_features(x, ("pool5",))
        _, truth_places = model(x)
    truth_places = truth_places[0].T.numpy()  # (T8, 401)
    truth_pool5 = kept["pool5"][0].T.numpy()  # (T5, 256)
    results: dict[str, dict[str, list[float]]] = {m: {"top1": [], "tv": [], "pool5_rel_err": []} for m in MODES}
    cuts = 0
    for cut in np.arange(12.0, wave.size / SR, step_s):
        num = int(cut * SR)
        last = output_lengths(num)["conv8"] - 1
        # The truth must itself read only audio: the window ends inside the uncut recording,
        # with room for the layers' own right padding (one conv7 step).
        if receptive_field("conv8", last)[1] + 32768 >= wave.size:
            break
        cuts += 1
        truth = _softmax(truth_places[last])
        outputs = {}
        for mode in MODES:
            preprocess = SOUNDNET8.with_tail(mode).preprocess
            _, places = head_logits(model, preprocess, wave[:num])
            feats, _, _ = analyse_audio(model, wave[:num], ("pool5",), preprocess)
            outputs[mode] = (_softmax(places[last]), feats["pool5"])
        # The clip's last pool5 steps (~1.5 s) that every mode keeps, against the uncut recording's.
        end = min(len(feats) for _, feats in outputs.values())
        steps = slice(max(0, end - FEATURE_STEPS), end)
        ref = truth_pool5[steps]
        for mode, (got, feats) in outputs.items():
            row = results[mode]
            row["top1"].append(float(np.argmax(got) == np.argmax(truth)))
            row["tv"].append(float(0.5 * np.abs(got - truth).sum()))
            row["pool5_rel_err"].append(float(np.linalg.norm(feats[steps] - ref) / (np.linalg.norm(ref) + 1e-9)))
    summary = {m: {k: round(float(np.mean(v)), 4) for k, v in r.items()} for m, r in results.items()}
    return {"cuts": cuts, "step_s": step_s, "seconds": round(wave.size / SR, 2), "modes": summary}


def clip_paths(root: Path) -> list[Path]:
    """The MSR-VTT clips with sound and SoundNet's demo file, where present."""
    paths = sorted((root / "msrvtt" / "clips").glob("*.mp4"), key=lambda p: int(p.stem[5:]) if p.stem[5:].isdigit() else 0)
    demo = root / "soundnet" / "railroad_audio.wav"
    return paths + ([demo] if demo.is_file() else [])


def write_report(out: Path, clips: dict[str, Any], checks: dict[str, Any], meta: dict[str, Any]) -> str:
    """``<out>.md`` and ``<out>.json``; returns the markdown."""
    lines = ["# SoundNet's last head step: original model vs tail padding", "",
             f"Command: `{meta['command']}`  ",
             f"Run time {meta['seconds']:.0f} s on {meta['threads']} CPU thread(s) (load average "
             f"{meta['load_avg_1min_at_end']} at the end). A head step is degenerate when "
             f"its largest place logit is below {DEGENERATE_LOGIT:g} (healthy steps: about +1 to +3). Clips under "
             "12 s are tiled to 12 s in every mode, so their rows do not change.", "",
             "## Top place and object per clip", "",
             "| clip | s | original: top place / object (degenerate steps) | repeat (default) | reflect | "
             "step max place logit: original -> repeat |",
             "|---|---|---|---|---|---|"]
    for name, clip in clips.items():
        cells = []
        for mode in MODES:
            m = clip["modes"][mode]
            cells.append(f"{m['places'][0][0]} {m['places'][0][1]:.2f} / {m['objects'][0][0]} {m['objects'][0][1]:.2f}"
                         f" ({m['degenerate_steps']})")
        logits = f"{clip['modes']['original']['step_max_place_logit']} -> {clip['modes']['repeat']['step_max_place_logit']}"
        lines.append(f"| {name} | {clip['seconds']} | " + " | ".join(cells) + f" | {logits} |")
    changed = [n for n, c in clips.items() if c["modes"]["original"]["places"][0][0] != c["modes"]["repeat"]["places"][0][0]]
    lines += ["", f"Top place changed (original -> repeat) on {len(changed)} of {len(clips)} clips: "
              f"{', '.join(changed) or 'none'}.", "",
              "## Continuation check (truth: the same window on the uncut recording)", "",
              "| recording | s | cuts | mode | top-1 place agrees | place TV distance | last 4 pool5 steps rel. error |",
              "|---|---|---|---|---|---|---|"]
    for name, check in checks.items():
        for mode in MODES:
            m = check["modes"][mode]
            lines.append(f"| {name} | {check['seconds']} | {check['cuts']} | {mode} | {m['top1']:.2f} | {m['tv']:.3f} "
                         f"| {m['pool5_rel_err']:.3f} |")
    lines += ["", "Cuts every {:g} s from 12 s while the cut clip's last head window still ends inside the uncut "
              "recording.".format(meta["step_s"]), ""]
    text = "\n".join(lines)
    atomic_write_text(out.with_suffix(".md"), text)
    atomic_write_json(out.with_suffix(".json"), {"meta": meta, "clips": clips, "continuation": checks})
    return text


@script_main("soundnet_tail")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=data_dir(), help="the shared data folder (FUSION_DATA_DIR)")
    parser.add_argument("--out", type=Path, default=Path("results/soundnet_tail"), help="output path without suffix")
    parser.add_argument("--step", type=float, default=0.25, help="seconds between cuts of the continuation check")
    parser.add_argument("--min-check-seconds", type=float, default=19.0,
                        help="recordings at least this long get the continuation check")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    start = time.time()
    paths = clip_paths(args.data)
    if not paths:
        raise FusionError(f"{args.data}: no msrvtt/clips/*.mp4 nor soundnet/railroad_audio.wav; pass --data")
    model = SOUNDNET8.get_model()
    clips: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    for path in paths:
        wave = decode(path, frames=False).audio
        if wave is None or wave.size == 0:
            logger.warning("%s: no audio; skipped", path)
            continue
        clips[path.stem] = tag_clip(model, wave)
        if wave.size >= args.min_check_seconds * SR:
            check = continuation_check(model, wave, args.step)
            if check["cuts"]:
                checks[path.stem] = check
        logger.info("%s done", path.stem)
    meta = {"command": "python scripts/soundnet_tail.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "seconds": time.time() - start, "threads": args.threads, "step_s": args.step,
            "load_avg_1min_at_end": round(os.getloadavg()[0], 1)}
    print(write_report(args.out, clips, checks, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
