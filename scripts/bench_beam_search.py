"""Benchmark: the batched beam search (videos x beams in one search) against decoding one
video at a time with the same function, on S2VT models of the project's two sizes.

Both paths must give the same captions and scores (asserted); the script reports wall time
and the speed ratio. Random weights: the cost of a step does not depend on the weights,
and a random model rarely emits EOS early, so captions run to ``max_len`` (the worst case
for both paths).

    python -m scripts.bench_beam_search [--videos 64] [--beam 5] [--threads 2] [--out results]

Writes ``results/bench_beam_search.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from fusion.data import collate
from fusion.decoding.beam_search import beam_search
from fusion.decoding.scorer import DecodeContext
from fusion.decoding.scorers import CaptionScorer
from fusion.features import FeatureRecord
from fusion.io import atomic_write_json, atomic_write_text
from scripts.benchio import machine
from fusion.models.s2vt import S2VT, S2VTConfig

# Model sizes: configs/avsynth/base.yaml (hidden 256, the benchmark's ~100-word vocabulary)
# and configs/msvd/s2vt.yaml (the paper's 1000 units; MSVD train captions have 9,462 words,
# 2,969 seen 5+ times).
SETTINGS = {
    "avsynth": dict(hidden_size=256, frame_embed_size=256, word_embed_size=128, audio_mode="early",
                    audio_embed_size=64, vocab=120, frames=16),
    "msvd": dict(hidden_size=1000, frame_embed_size=500, word_embed_size=500, audio_mode="none",
                 audio_embed_size=64, vocab=2969, frames=32),
}
FRAME_DIM, AUDIO_DIM, AUDIO_STEPS = 1280, 256, 27  # EfficientNet-Lite0; SoundNet pool5 (~10 s)
BOS, EOS = 1, 2


def make_model(setting: dict, seed: int = 0) -> S2VT:
    torch.manual_seed(seed)
    keys = ("hidden_size", "frame_embed_size", "word_embed_size", "audio_mode", "audio_embed_size")
    cfg = S2VTConfig(**{k: setting[k] for k in keys}, dropout=0.0)
    return S2VT(cfg, setting["vocab"], FRAME_DIM, AUDIO_DIM).eval()


def make_records(n: int, frames: int, seed: int = 0) -> list[FeatureRecord]:
    rng = np.random.default_rng(seed)
    return [FeatureRecord(id=f"v{i}", frames=rng.normal(size=(frames, FRAME_DIM)).astype(np.float32),
                          audio=rng.normal(size=(AUDIO_STEPS, AUDIO_DIM)).astype(np.float32)) for i in range(n)]


def decode(model: S2VT, records: list[FeatureRecord], beam: int, max_len: int) -> list:
    batch = collate(records, FRAME_DIM, AUDIO_DIM)
    ctx = DecodeContext(batch_size=len(records), beam_size=beam)
    return beam_search({"caption": CaptionScorer(model, batch)}, {"caption": 1.0}, ctx, bos_id=BOS, eos_id=EOS,
                       max_len=max_len, nbest=1)


def bench(name: str, videos: int, beam: int, max_len: int) -> dict:
    setting = SETTINGS[name]
    model = make_model(setting)
    records = make_records(videos, setting["frames"])
    decode(model, records[:2], beam, 3)  # warm-up (allocator, kernels)
    start = time.perf_counter()
    batched = decode(model, records, beam, max_len)
    batched_s = time.perf_counter() - start
    start = time.perf_counter()
    single = [decode(model, [r], beam, max_len)[0] for r in records]
    single_s = time.perf_counter() - start
    same = sum(a[0].tokens == b[0].tokens for a, b in zip(batched, single))
    max_diff = max(abs(a[0].score - b[0].score) for a, b in zip(batched, single))
    assert same == videos, f"{name}: batched and one-at-a-time captions differ for {videos - same} videos"
    assert max_diff < 1e-4, f"{name}: scores differ by {max_diff}"
    words = float(np.mean([len(b[0].tokens) for b in batched]))
    return {"setting": name, "videos": videos, "beam": beam, "max_len": max_len, "hidden_size": setting["hidden_size"],
            "vocab": setting["vocab"], "batched_s": round(batched_s, 3), "one_at_a_time_s": round(single_s, 3),
            "speedup": round(single_s / batched_s, 2), "same_captions": same, "max_score_diff": max_diff,
            "mean_words": words}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=64)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--max-len", type=int, default=20)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="torch CPU threads to measure with (the target machine has 2 cores)")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--out", default="results", help="folder for bench_beam_search.{json,md}")
    args = p.parse_args(argv)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name in args.settings:
            row = {**bench(name, args.videos, args.beam, args.max_len), "threads": threads}
            print(json.dumps(row))
            rows.append(row)
    load = os.getloadavg()[0]
    env = machine()
    out = Path(args.out)
    atomic_write_json(out / "bench_beam_search.json", {"environment": env, "results": rows})
    lines = ["# Batched beam search vs one video at a time", "",
             f"{args.videos} videos, beam {args.beam}, max {args.max_len} words, torch {torch.__version__}, "
             f"{os.cpu_count()} CPUs (1-min load average {load:.1f} at the end); same captions asserted.", "",
             "| model | hidden | vocab | threads | batched (s) | one at a time (s) | speed-up |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['setting']} | {r['hidden_size']} | {r['vocab']} | {r['threads']} | {r['batched_s']:.2f} | "
              f"{r['one_at_a_time_s']:.2f} | {r['speedup']:.1f}x |" for r in rows]
    atomic_write_text(out / "bench_beam_search.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
