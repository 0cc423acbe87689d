"""Plan, render and write the audio-visual benchmark (``python -m data_prep.avsynth``).

Everything is drawn from the seed: the plan (pictures, sounds, splits, captions) comes
from one generator in the main process; each clip's pixels and noise come from a generator
seeded with ``(seed, clip index)``, so the output does not depend on the number of worker
processes or their scheduling. Same seed => byte-identical manifest and identical media.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.avsynth import grammar, render, sounds
from fusion.benchmark import ACTIONS, COLORS, SHAPES, SOUND_SOURCES
from fusion.errors import DataError
from fusion.io import atomic_write_json, atomic_write_text
from fusion.manifest import ManifestEntry, write_manifest
from fusion.media import write_video
from fusion.paths import data_dir
from fusion.progress import progress_bar

logger = logging.getLogger(__name__)

SIZES: dict[str, tuple[int, int, int]] = {  # train / val / test clips
    "tiny": (6, 3, 3),
    "small": (300, 50, 100),
    "default": (600, 100, 200),
}
SPLIT_FOLDS: dict[str, tuple[int, ...]] = {"train": (1, 2, 3), "val": (4,), "test": (5,)}
DURATIONS_S: tuple[float, ...] = (6.0, 6.5, 7.0, 7.5, 8.0)
AUDIO_KIND_SHARES: dict[str, float] = {"silent": 0.15, "none": 0.15}  # the rest: "sound"
TWO_OBJECT_SHARE = 0.3
CAPTIONS_PER_CLIP = 5
TEXT_CORPUS_SIZE = 50_000


@dataclass
class ClipPlan:
    """Everything needed to render one clip and write its manifest line."""

    index: int
    id: str
    split: str
    objects: list[dict[str, str]]
    audio_kind: str  # "sound" | "silent" | "none"
    recording: sounds.Recording | None
    fold: int
    duration_s: float
    num_frames: int
    offset_s: float
    gain: float
    captions: list[str] = field(default_factory=list)


def sample_objects(rng: np.random.Generator) -> list[dict[str, str]]:
    """1-2 objects with distinct shapes and colours; circles never spin (it would not show)."""
    count = 2 if rng.random() < TWO_OBJECT_SHARE else 1
    shapes = [str(s) for s in rng.permutation(list(SHAPES))[:count]]
    colors = [str(c) for c in rng.permutation(list(COLORS))[:count]]
    objects = []
    for shape, color in zip(shapes, colors):
        actions = [a for a in ACTIONS if not (shape == "circle" and a == "spins")]
        objects.append({"shape": shape, "color": color, "action": actions[int(rng.integers(len(actions)))]})
    return objects


def _audio_kinds(n: int, rng: np.random.Generator) -> list[str]:
    """Shuffled audio kinds for n clips: ~15 % silent, ~15 % none, at least one each when n >= 3."""
    counts = {k: (max(1, round(share * n)) if n >= 3 else 0) for k, share in AUDIO_KIND_SHARES.items()}
    kinds = ["silent"] * counts["silent"] + ["none"] * counts["none"]
    kinds += ["sound"] * (n - len(kinds))
    return [kinds[int(i)] for i in rng.permutation(n)]


def plan_benchmark(seed: int, size: str, recordings: list[sounds.Recording]) -> list[ClipPlan]:
    """Draw every clip of the benchmark (no media is rendered).

    The sound class is drawn uniformly and independently of the picture; the recording is
    drawn from the class's recordings in the split's ESC-10 folds.

    Raises:
        DataError: Unknown size.
    """
    if size not in SIZES:
        raise DataError(f"unknown size {size!r}; use one of {', '.join(SIZES)}")
    rng = np.random.default_rng([seed, 0])
    classes = list(SOUND_SOURCES)
    plans: list[ClipPlan] = []
    for split, n in zip(SPLIT_FOLDS, SIZES[size]):
        folds = SPLIT_FOLDS[split]
        for j, kind in enumerate(_audio_kinds(n, rng)):
            objects = sample_objects(rng)
            rec = None
            if kind == "sound":
                cls = classes[int(rng.integers(len(classes)))]
                pool = [r for r in recordings if r.esc_class == cls and r.fold in folds]
                rec = pool[int(rng.integers(len(pool)))]
            fold = rec.fold if rec else int(folds[int(rng.integers(len(folds)))])
            num_frames = int(round(float(rng.choice(DURATIONS_S)) * render.FPS))
            duration_s = num_frames / render.FPS
            offset_s = round(float(rng.uniform(0.0, duration_s - sounds.RECORDING_S)), 3)
            gain = round(float(rng.uniform(0.6, 1.0)), 3)
            caps = grammar.captions(objects, rec.esc_class if rec else None, rng, count=CAPTIONS_PER_CLIP)
            plans.append(ClipPlan(len(plans), f"avs_{split}_{j:04d}", split, objects, kind, rec, fold,
                                  duration_s, num_frames, offset_s, gain, caps))
    return plans


def render_clip(plan: ClipPlan, out_dir: str, seed: int) -> str:
    """Render one clip to ``out_dir/videos/<id>.mp4`` (H.264 + AAC 22,050 Hz mono, or no audio).

    Returns:
        The written path.
    """
    frames = render.render_frames(plan.objects, plan.num_frames, np.random.default_rng([seed, plan.index, 1]))
    audio = None
    if plan.audio_kind != "none":
        num_samples = int(round(plan.duration_s * sounds.SAMPLE_RATE_HZ))
        source = sounds.load_recording(plan.recording) if plan.recording else None
        audio = sounds.mix_track(num_samples, source, int(plan.offset_s * sounds.SAMPLE_RATE_HZ), plan.gain,
                                 np.random.default_rng([seed, plan.index, 2]))  # (S,)
    path = Path(out_dir) / "videos" / f"{plan.id}.mp4"
    write_video(path, frames, render.FPS, audio=audio, sample_rate_hz=sounds.SAMPLE_RATE_HZ)
    return str(path)


def _render_star(args: tuple[ClipPlan, str, int]) -> str:
    return render_clip(*args)


def clip_meta(plan: ClipPlan, origin: str) -> dict[str, Any]:
    """The manifest ``meta`` of a clip (read by :func:`fusion.benchmark.judge_caption`)."""
    src = SOUND_SOURCES[plan.recording.esc_class] if plan.recording else None
    return {
        "objects": plan.objects,
        "sound_class": src.esc_class if src else None,
        "sound_noun": src.noun if src else None,
        "sound_synonyms": list(src.synonyms) if src else [],
        "has_audio_stream": plan.audio_kind != "none",
        "audio_kind": plan.audio_kind,
        "esc10_fold": plan.fold,  # the recording's fold; for clips without one, a fold of the split
        "sound_file": plan.recording.name if plan.recording else None,
        "sound_offset_s": plan.offset_s if plan.recording else None,
        "sound_origin": origin,
        "duration_s": plan.duration_s,
        "num_frames": plan.num_frames,
        "fps": render.FPS,
        "width": render.WIDTH,
        "height": render.HEIGHT,
    }


@dataclass
class GenerationSummary:
    """What :func:`generate` wrote."""

    manifest: Path
    clips: dict[str, int]
    sound_origin: str
    elapsed_s: float
    text_corpus: Path | None = None
    text_sentences: int = 0


def resolve_recordings(esc10_dir: str | Path | None) -> tuple[list[sounds.Recording], str]:
    """ESC-10 recordings (explicit folder, else ``$FUSION_DATA_DIR/esc10``), else synthetic ones."""
    if esc10_dir is not None:
        return sounds.find_esc10(esc10_dir), "esc10"
    default = data_dir() / "esc10"
    try:
        return sounds.find_esc10(default), "esc10"
    except (DataError, OSError):
        logger.warning("ESC-10 not found at %s: using SYNTHESISED sound classes with distinct timbres "
                       "(manifest meta sound_origin='synthetic'); pass --esc10 DIR for the real recordings", default)
        return sounds.synthetic_recordings(), "synthetic"


def generate(out_dir: str | Path, seed: int, size: str = "default", esc10_dir: str | Path | None = None,
             text_corpus: str | Path | None = None, text_corpus_size: int = TEXT_CORPUS_SIZE,
             workers: int = 2, progress: bool = True) -> GenerationSummary:
    """Generate the benchmark: ``out_dir/manifest.jsonl``, ``out_dir/videos/*.mp4``, ``benchmark.json``.

    Args:
        out_dir: Output folder (created).
        seed: Seed of everything.
        size: ``"tiny"`` (12 clips), ``"small"`` (300/50/100) or ``"default"`` (600/100/200).
        esc10_dir: ESC-10 folder; default ``$FUSION_DATA_DIR/esc10``, synthetic sounds if absent.
        text_corpus: Optional path of a text-only corpus to write (one sentence per line).
        text_corpus_size: Sentences in the text corpus.
        workers: Worker processes for rendering (1 = in this process).
        progress: Show a progress bar.

    Returns:
        A summary with counts and the elapsed time.
    """
    start = time.perf_counter()
    out = Path(out_dir).resolve()  # entries get absolute paths; write_manifest makes them relative to the manifest
    recordings, origin = resolve_recordings(esc10_dir)
    plans = plan_benchmark(seed, size, recordings)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    wanted = {f"{p.id}.mp4" for p in plans}
    for stale in (out / "videos").glob("avs_*.mp4"):
        if stale.name not in wanted:
            stale.unlink()
    jobs = [(p, str(out), seed) for p in plans]
    bar = progress_bar(total=len(jobs), desc=f"avsynth {size}", unit="clip", disable=not progress)
    if workers <= 1:
        for job in jobs:
            _render_star(job)
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")  # no fork of a possibly threaded parent
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            for _ in pool.map(_render_star, jobs, chunksize=4):
                bar.update()
    bar.close()
    entries = [ManifestEntry(p.id, str(out / "videos" / f"{p.id}.mp4"), p.split, p.captions, clip_meta(p, origin))
               for p in plans]
    manifest = out / "manifest.jsonl"
    write_manifest(entries, manifest)
    counts = {s: sum(p.split == s for p in plans) for s in SPLIT_FOLDS}
    atomic_write_json(out / "benchmark.json", {
        "generator": "data_prep.avsynth", "seed": seed, "size": size, "sound_origin": origin,
        "split_folds": SPLIT_FOLDS, "clips": counts,
        "audio_kinds": {k: sum(p.audio_kind == k for p in plans) for k in ("sound", "silent", "none")},
        "fps": render.FPS, "width": render.WIDTH, "height": render.HEIGHT,
        "audio_sample_rate_hz": sounds.SAMPLE_RATE_HZ, "captions_per_clip": CAPTIONS_PER_CLIP,
    })
    summary = GenerationSummary(manifest, counts, origin, 0.0)
    if text_corpus is not None:
        exclude = {c for p in plans for c in p.captions}
        summary.text_sentences = write_text_corpus(text_corpus, seed, text_corpus_size, exclude)
        summary.text_corpus = Path(text_corpus)
    summary.elapsed_s = time.perf_counter() - start
    logger.info("avsynth: %d clips (%s) with %s sounds in %.1f s", len(plans), counts, origin, summary.elapsed_s)
    return summary


def text_corpus_sentences(seed: int, count: int, exclude: set[str]) -> list[str]:
    """``count`` distinct grammar sentences, none in ``exclude``, from the corpus's own seed stream."""
    rng = np.random.default_rng([seed, 0x7E47])  # own stream: independent of the paired captions
    classes = list(SOUND_SOURCES)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        cls = classes[int(rng.integers(len(classes)))] if rng.random() < 0.8 else None
        sent = grammar.caption(sample_objects(rng), cls, rng)
        if sent not in seen and sent not in exclude:
            seen.add(sent)
            out.append(sent)
    return out


def write_text_corpus(path: str | Path, seed: int, count: int, exclude: set[str]) -> int:
    """Write the text-only corpus (one sentence per line), atomically. Returns the line count."""
    sentences = text_corpus_sentences(seed, count, exclude)
    atomic_write_text(path, "\n".join(sentences) + "\n")
    logger.info("wrote %d text-only sentences to %s", len(sentences), path)
    return len(sentences)
