"""The PyTorch YAMNet against the TFLite interpreter on real audio: scores, top-5, speed.

Both read the same ``yamnet.tflite``. Every clip is decoded as the project decodes audio
(``fusion.media.decode``: 22,050 Hz mono), resampled and padded once by the bundle's
preprocessing (16 kHz, whole 0.48 s hops), and then cut into the 15,600-sample windows that
the interpreter takes (one 0.96 s patch each); the PyTorch model computes all patches of a
clip in one pass. Compared per patch (max |score difference|, same top-5 set) and per clip
(scores averaged over the patches: max |difference|, same top-5 classes in the same order).
Both PyTorch modes are measured: ``dynamic_int8`` (the default, rounding activations as the
interpreter's XNNPACK kernels do) and ``float``. The interpreter runs with its default
delegate (XNNPACK); both sides use one CPU thread for the speed ratio.

ESC-10 adds a check of what the scores mean: each ESC-10 class names its AudioSet classes
(:data:`ESC10_TO_AUDIOSET`); a clip is a hit when one of them is in its top 5.

    python scripts/yamnet_vs_tflite.py                       # all sets, writes results/yamnet_vs_tflite.{json,md}
    python scripts/yamnet_vs_tflite.py --esc10-per-class 4   # a quick run
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from fusion.encoders.yamnet import YAMNET, YAMNet, YAMNetBundle
from fusion.errors import DataError, FusionError
from fusion.media import decode
from fusion.paths import REPO_ROOT, data_dir
from scripts.benchio import machine, write_report

logger = logging.getLogger("yamnet_vs_tflite")

MODES = ("dynamic_int8", "float")
TARGET_MAX_DIFF = 0.02
ESC10_TO_AUDIOSET: dict[str, tuple[str, ...]] = {  # ESC-10 folder suffix -> AudioSet display names
    "Dog bark": ("Dog", "Bark"),
    "Rain": ("Rain", "Rain on surface", "Raindrop"),
    "Sea waves": ("Ocean", "Waves, surf"),
    "Baby cry": ("Baby cry, infant cry", "Crying, sobbing"),
    "Clock tick": ("Tick", "Tick-tock", "Clock"),
    "Person sneeze": ("Sneeze",),
    "Helicopter": ("Helicopter",),
    "Chainsaw": ("Chainsaw",),
    "Rooster": ("Chicken, rooster", "Crowing, cock-a-doodle-doo"),
    "Fire crackling": ("Fire", "Crackle"),
}


class TFLiteYAMNet:
    """The TFLite interpreter on ``yamnet.tflite``, one 15,600-sample window per call.

    Args:
        path: the model file.
        threads: CPU threads of the interpreter.

    Raises:
        DataError: ``ai-edge-litert`` is not installed.
    """

    def __init__(self, path: Path, threads: int = 1) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise DataError("the TFLite reference needs ai-edge-litert: pip install ai-edge-litert "
                            "(or pip install -e .[dev])") from None
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]

    def patch_scores(self, samples: np.ndarray, bundle: YAMNetBundle = YAMNET) -> np.ndarray:
        """Scores of every patch of a padded 16 kHz waveform.

        Args:
            samples: float32 ``(S',)`` from ``bundle.preprocess.prepare``.
            bundle: its preprocessing (patch length and hop).

        Returns:
            float32 ``(P, 521)``.
        """
        p = bundle.preprocess
        scores = []
        for start in range(0, samples.size - p.patch_samples + 1, p.patch_hop_samples):
            self.interpreter.set_tensor(self.input, samples[None, start : start + p.patch_samples])
            self.interpreter.invoke()
            scores.append(self.interpreter.get_tensor(self.output)[0].copy())
        return np.stack(scores)


def torch_patch_scores(model: YAMNet, samples: np.ndarray) -> np.ndarray:
    """float32 ``(P, 521)`` scores of a padded 16 kHz waveform ``(S',)`` in one pass."""
    with torch.inference_mode():
        scores, _ = model(torch.from_numpy(samples)[None])  # (1, P, 521)
    return scores[0].numpy()


def compare_scores(ours: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Agreement of two ``(P, C)`` patch-score arrays of one clip (see the module docstring)."""
    def top5(scores: np.ndarray) -> np.ndarray:
        return np.argsort(-scores, axis=-1, kind="stable")[..., :5]

    clip_ours, clip_ref = ours.mean(axis=0), reference.mean(axis=0)
    patch_same = [set(a) == set(b) for a, b in zip(top5(ours), top5(reference))]
    ranked = np.sort(clip_ref)[::-1]
    return {"patches": int(len(ours)), "max_abs_patch": float(np.abs(ours - reference).max()),
            "max_abs_clip": float(np.abs(clip_ours - clip_ref).max()),
            "patch_top5_same": int(sum(patch_same)),
            "clip_top5_same_order": bool((top5(clip_ours) == top5(clip_ref)).all()),
            "clip_top5_same_set": set(top5(clip_ours)) == set(top5(clip_ref)),
            "rank5_margin": float(ranked[4] - ranked[5]),  # the reference's gap between ranks 5 and 6
            "only_ours": [int(i) for i in top5(clip_ours) if i not in top5(clip_ref)],
            "only_reference": [int(i) for i in top5(clip_ref) if i not in top5(clip_ours)]}


def list_sets(root: Path, esc10_per_class: int | None) -> dict[str, list[Path]]:
    """The real audio: MSR-VTT clips, the SoundNet demo file, ESC-10 (optionally the first N per class)."""
    sets = {"msrvtt": sorted((root / "msrvtt" / "clips").glob("*.mp4"), key=lambda p: int(p.stem[5:])),
            "railroad": [root / "soundnet" / "railroad_audio.wav"],
            "esc10": []}
    for folder in sorted((root / "esc10").glob("[0-9][0-9][0-9] - *")):
        files = sorted(folder.glob("*.ogg"))
        sets["esc10"] += files[:esc10_per_class] if esc10_per_class else files
    return {name: [p for p in paths if p.is_file()] for name, paths in sets.items()}


def _esc10_hit(path: Path, scores: np.ndarray, names: tuple[str, ...]) -> bool:
    """Whether one of the clip's AudioSet classes is in its top 5 (clip = mean over patches)."""
    targets = ESC10_TO_AUDIOSET[path.parent.name.split(" - ", 1)[1]]
    top = {names[i] for i in np.argsort(-scores.mean(axis=0))[:5]}
    return bool(top & set(targets))


def decode_audio(path: Path) -> np.ndarray | None:
    """float32 ``(S,)`` 22,050 Hz mono audio of a file, or None (unreadable or silent-less: logged, skipped)."""
    try:
        audio = decode(path, frames=False).audio
    except FusionError as err:
        logger.warning("%s: skipped (%s)", path.name, err)
        return None
    if audio is None or audio.size == 0:
        logger.warning("%s: skipped (no audio samples)", path.name)
        return None
    return audio


def script_arguments(description: str, out_name: str) -> argparse.ArgumentParser:
    """The options both YAMNet scripts take: ``--data``, ``--weights``, ``--out``, ``--json``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", type=Path, default=None, help="the shared data folder (default: FUSION_DATA_DIR)")
    p.add_argument("--weights", type=Path, default=None, help="yamnet.tflite (default: DATA/yamnet/yamnet.tflite)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "results" / out_name)
    p.add_argument("--json", action="store_true", help="print the JSON instead of the markdown")
    return p


def data_and_weights(args: argparse.Namespace) -> tuple[Path, Path]:
    """The data folder and the weights file the options name (defaults: FUSION_DATA_DIR and its yamnet/)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    root = args.data or data_dir()
    return root, args.weights or root / "yamnet" / "yamnet.tflite"


def measure_clip(path: Path, reference: TFLiteYAMNet, models: dict[str, YAMNet], kind: str) -> dict[str, Any] | None:
    """Decode one file and compare the modes with the interpreter (None: no audio, logged)."""
    audio = decode_audio(path)
    if audio is None:
        return None
    samples = YAMNET.preprocess.prepare(audio).samples
    start = time.perf_counter()
    ref = reference.patch_scores(samples)
    row: dict[str, Any] = {"file": path.name, "set": kind, "seconds_tflite": time.perf_counter() - start,
                           "audio_seconds": round(audio.size / 22050, 2)}
    names = YAMNET.label_spaces["audioset"]
    row["top5_tflite"] = [names[i] for i in np.argsort(-ref.mean(axis=0))[:5]]
    if kind == "esc10":
        row["esc10_hit_tflite"] = _esc10_hit(path, ref, names)
    for mode, model in models.items():
        start = time.perf_counter()
        ours = torch_patch_scores(model, samples)
        row[f"seconds_{mode}"] = time.perf_counter() - start
        row[mode] = compare_scores(ours, ref)
        if kind == "esc10":
            row[f"esc10_hit_{mode}"] = _esc10_hit(path, ours, names)
    return row


def summarise(rows: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """Aggregates of one set: per mode the worst differences and the agreement counts."""
    rows = [r for r in rows if r["set"] == kind]
    out: dict[str, Any] = {"clips": len(rows), "patches": sum(r[MODES[0]]["patches"] for r in rows)}
    if not rows:
        return out
    for mode in MODES:
        cmp = [r[mode] for r in rows]
        out[mode] = {
            "max_abs_patch": max(c["max_abs_patch"] for c in cmp),
            "max_abs_clip": max(c["max_abs_clip"] for c in cmp),
            "patch_top5_same": sum(c["patch_top5_same"] for c in cmp),
            "clip_top5_same_order": sum(c["clip_top5_same_order"] for c in cmp),
            "clip_top5_same_set": sum(c["clip_top5_same_set"] for c in cmp),
        }
        if kind == "esc10":
            out[mode]["esc10_top5_hits"] = sum(r[f"esc10_hit_{mode}"] for r in rows)
    if kind == "esc10":
        out["esc10_top5_hits_tflite"] = sum(r["esc10_hit_tflite"] for r in rows)
    return out


def speed(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Patches per second of each side over all clips, and the interpreter's time over each mode's."""
    patches = sum(r[MODES[0]]["patches"] for r in rows)
    tflite = sum(r["seconds_tflite"] for r in rows)
    out: dict[str, Any] = {"patches": patches, "tflite_patches_per_s": round(patches / tflite, 1)}
    for mode in MODES:
        seconds = sum(r[f"seconds_{mode}"] for r in rows)
        out[f"{mode}_patches_per_s"] = round(patches / seconds, 1)
        out[f"tflite_time_over_{mode}_time"] = round(tflite / seconds, 3)
    return out


def to_markdown(result: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The report: agreement per set and mode, ESC-10 hits, speed, the MSR-VTT clips one by one."""
    lines = ["# YAMNet in PyTorch vs the TFLite interpreter", "",
             f"Command: `{result['command']}`. Same `yamnet.tflite` on both sides; the interpreter is "
             f"`ai-edge-litert` {result['litert_version']} (default XNNPACK delegate), one thread each. "
             f"Target: max |score difference| <= {TARGET_MAX_DIFF}. Scores are sigmoid outputs in [0, 1]; "
             "a clip's scores are the mean over its 0.96 s patches (0.48 s hop).", "",
             "| set | mode | clips | patches | max abs diff, patch | max abs diff, clip | clip top-5 same order "
             "| clip top-5 same set | patch top-5 same set |", "|---|---|---|---|---|---|---|---|---|"]
    for kind, summary in result["sets"].items():
        for mode in MODES if summary["clips"] else ():
            s = summary[mode]
            lines.append(f"| {kind} | {mode} | {summary['clips']} | {summary['patches']} | {s['max_abs_patch']:.4f} | "
                         f"{s['max_abs_clip']:.4f} | {s['clip_top5_same_order']}/{summary['clips']} | "
                         f"{s['clip_top5_same_set']}/{summary['clips']} | "
                         f"{100.0 * s['patch_top5_same'] / max(summary['patches'], 1):.1f}% |")
    esc = result["sets"].get("esc10")
    if esc and esc["clips"]:
        hits = ", ".join(f"{mode} {esc[mode]['esc10_top5_hits']}" for mode in MODES)
        lines += ["", f"ESC-10: clips whose class (as AudioSet classes, `ESC10_TO_AUDIOSET`) is in the top 5: "
                      f"TFLite {esc['esc10_top5_hits_tflite']}/{esc['clips']}, {hits} (of {esc['clips']})."]
    differing = [r for r in rows if not r["dynamic_int8"]["clip_top5_same_set"]]
    if differing:
        names = YAMNET.label_spaces["audioset"]
        lines += ["", "Clips whose top 5 differ (dynamic_int8): the classes each side has alone, and the reference's "
                      "score gap between its ranks 5 and 6:", ""]
        for r in differing:
            c = r["dynamic_int8"]
            lines.append(f"- {r['file']}: PyTorch {', '.join(names[i] for i in c['only_ours'])} / TFLite "
                         f"{', '.join(names[i] for i in c['only_reference'])}; rank-5/6 gap {c['rank5_margin']:.4f}, "
                         f"max clip difference {c['max_abs_clip']:.4f}")
    sp = result["speed"]
    lines += ["", "## Speed (all clips, one CPU thread each)", "", "| side | patches/s | interpreter time / this time |",
              "|---|---|---|", f"| TFLite interpreter | {sp['tflite_patches_per_s']} | 1.0 |"]
    lines += [f"| PyTorch {mode} | {sp[f'{mode}_patches_per_s']} | {sp[f'tflite_time_over_{mode}_time']} |"
              for mode in MODES]
    lines += ["", "## MSR-VTT clips", "", "| clip | audio s | patches | max abs diff (dynamic_int8) | "
              "same top-5 | TFLite top 3 |", "|---|---|---|---|---|---|"]
    for r in (r for r in rows if r["set"] == "msrvtt"):
        c = r["dynamic_int8"]
        lines.append(f"| {r['file']} | {r['audio_seconds']} | {c['patches']} | {c['max_abs_patch']:.4f} | "
                     f"{'yes' if c['clip_top5_same_order'] else 'no'} | {', '.join(r['top5_tflite'][:3])} |")
    lines += ["", f"Machine: {result['machine']}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure, write ``--out`` (.json and .md) and print the markdown."""
    p = script_arguments(__doc__.split("\n\n")[0], "yamnet_vs_tflite.json")
    p.add_argument("--esc10-per-class", type=int, default=None, help="only the first N ESC-10 clips per class")
    args = p.parse_args(argv)
    root, weights = data_and_weights(args)
    torch.set_num_threads(1)
    try:
        reference = TFLiteYAMNet(weights)
        models = {mode: YAMNetBundle(activations=mode).get_model(weights) for mode in MODES}
        rows = []
        for kind, paths in list_sets(root, args.esc10_per_class).items():
            for path in tqdm(paths, desc=kind, file=sys.stderr):
                row = measure_clip(path, reference, models, kind)
                if row is not None:
                    rows.append(row)
    except FusionError as err:
        print(f"yamnet_vs_tflite: error: {err}", file=sys.stderr)
        return err.exit_code
    from importlib.metadata import version

    command = "python scripts/yamnet_vs_tflite.py" + (f" --esc10-per-class {args.esc10_per_class}"
                                                      if args.esc10_per_class else "")
    result = {"command": command, "litert_version": version("ai-edge-litert"),
              "sets": {kind: summarise(rows, kind) for kind in ("msrvtt", "railroad", "esc10")},
              "speed": speed(rows), "machine": machine(), "clips": rows}
    write_report(args.out, result, to_markdown(result, rows), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
