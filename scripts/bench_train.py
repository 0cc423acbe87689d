"""Training throughput (samples/s) of the S2VT captioner versus batch size.

Times full optimizer steps (forward, cross-entropy, backward, gradient clipping, Adam) of the
model a config describes, on inputs shaped like that config's data: T frame steps of Dv
features, A SoundNet steps of Da features, captions of ``--words`` words. By default the
inputs are random (shapes are what matter for speed); ``--manifest`` times real batches of a
prepared benchmark instead. Prints a table and writes ``results/bench_train.{json,md}``.

    python -m scripts.bench_train --config configs/avsynth/audio_early.yaml
    python -m scripts.bench_train --config configs/msvd/s2vt.yaml --batch-sizes 16 32 64 --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fusion.data import collate
from fusion.experiment import load_experiment
from fusion.features import FeatureRecord
from fusion.io import atomic_write_json, atomic_write_text
from fusion.models.s2vt import S2VT
from fusion.training.setup import resolve_device


def _random_batch(rng: np.random.Generator, b: int, t: int, dv: int, a: int, da: int, words: int, vocab: int):
    records = [FeatureRecord(id=str(i), frames=rng.normal(size=(t, dv)).astype(np.float32),
                             audio=rng.normal(size=(a, da)).astype(np.float32)) for i in range(b)]
    tokens = [[1, *rng.integers(4, vocab, size=words).tolist(), 2] for _ in range(b)]
    return collate(records, dv, da, tokens)


def time_steps(model: S2VT, batch, device: torch.device, steps: int, warmup: int = 2) -> float:
    """Seconds per optimizer step (mean over ``steps`` after ``warmup``)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = batch.to(device)
    model.train()

    def one() -> None:
        logits = model(batch)  # (B, L-1, V)
        loss = F.cross_entropy(logits.transpose(1, 2), batch.tokens[:, 1:], ignore_index=0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    for _ in range(warmup):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/avsynth/audio_early.yaml", help="experiment YAML (model + frames)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    p.add_argument("--steps", type=int, default=5, help="timed steps per batch size")
    p.add_argument("--audio-steps", type=int, default=19, help="A: SoundNet pool5 steps (~7 s clip)")
    p.add_argument("--words", type=int, default=10, help="words per caption")
    p.add_argument("--vocab", type=int, default=120, help="vocabulary size")
    p.add_argument("--frame-dim", type=int, default=1280, help="Dv (EfficientNet-Lite0: 1280, VGG16 fc7: 4096)")
    p.add_argument("--audio-dim", type=int, default=256, help="Da (SoundNet pool5: 256)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--out", default="results/bench_train", help="results path without extension")
    args = p.parse_args(argv)

    cfg = load_experiment(args.config, args.overrides)
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    t = cfg.extract.frames_per_clip
    rng = np.random.default_rng(0)
    rows = []
    for b in args.batch_sizes:
        torch.manual_seed(0)
        model = S2VT(cfg.model, args.vocab, args.frame_dim, args.audio_dim).to(device)
        batch = _random_batch(rng, b, t, args.frame_dim, args.audio_steps, args.audio_dim, args.words, args.vocab)
        sec = time_steps(model, batch, device, args.steps)
        rows.append({"batch_size": b, "step_ms": round(sec * 1000, 1), "samples_per_s": round(b / sec, 1)})
        print(f"batch {b:4d}: {sec * 1000:8.1f} ms/step  {b / sec:8.1f} samples/s", flush=True)
    base = rows[0]["samples_per_s"]
    for r in rows:
        r["speedup_vs_smallest"] = round(r["samples_per_s"] / base, 2)
    result = {
        "config": args.config, "overrides": args.overrides, "audio_mode": cfg.model.audio_mode,
        "hidden_size": cfg.model.hidden_size, "frames": t, "audio_steps": args.audio_steps, "words": args.words,
        "vocab": args.vocab, "device": str(device), "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "rows": rows,
    }
    out = Path(args.out)
    atomic_write_json(out.with_suffix(".json"), result)
    lines = [f"Training throughput, {args.config} (audio_mode={cfg.model.audio_mode}, hidden {cfg.model.hidden_size}, "
             f"T={t}, A={args.audio_steps}, {args.words} words), {device}, {torch.get_num_threads()} threads", "",
             "| batch | ms/step | samples/s | vs batch " + str(rows[0]["batch_size"]) + " |", "|---|---|---|---|"]
    lines += [f"| {r['batch_size']} | {r['step_ms']} | {r['samples_per_s']} | {r['speedup_vs_smallest']}x |" for r in rows]
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
