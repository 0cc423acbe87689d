"""SoundNet transfer to ESC-10: five-fold cross-validation on the dataset's own folds.

Reproduces the ESC-10 experiment of Aytar, Vondrick & Torralba (NeurIPS 2016, Table 2:
SoundNet 92.2%, humans 95.7%): frozen SoundNet features of conv5, pool5, conv6 and conv7,
pooled over time, and two classifiers trained on four folds and tested on the fifth:

* ``svm``: standardisation + scikit-learn ``LinearSVC`` (C picked by inner leave-one-fold-out
  CV on the training folds);
* ``softmax``: a single-layer softmax perceptron (one linear layer, cross-entropy, Adam, weight
  decay) in PyTorch.

Time pooling (mean, max, or mean+std) is chosen per outer fold by the same inner CV with the
SVM, never on the test fold. Baselines from the project's earlier audio approaches: MFCC
statistics + linear SVM, and a small log-mel CNN (torchaudio transforms).

    .venv/bin/python scripts/soundnet_esc10.py --data $FUSION_DATA_DIR/esc10 --out results/soundnet_esc10

Writes ``results.json`` ({"<feature>_<classifier>": mean accuracy, ..., "best": {...}}),
``results.md`` (per-fold accuracies), ``accuracy.png`` and caches features in ``<out>/cache``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from torch import nn
from tqdm import tqdm

from fusion.encoders.soundnet import SOUNDNET8, analyse_audio, pool_time
from fusion.errors import DataError, script_main
from fusion.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from fusion.media import decode
from fusion.paths import data_dir

logger = logging.getLogger("soundnet_esc10")

LAYERS = ("conv5", "pool5", "conv6", "conv7")
POOLINGS = ("mean", "max", "meanstd")
SVM_C = (0.001, 0.01, 0.1)  # C >= 1 overfits standardised SoundNet features and converges slowly
SR = 22050  # SoundNet's input rate
FEATURE_VERSION = "soundnet8-pad12s-v1"  # bump when the feature computation changes


def list_clips(root: Path) -> tuple[list[Path], np.ndarray, np.ndarray, list[str]]:
    """ESC-10 files, class ids, folds (from ``FOLD-ID-TAKE.ogg``) and class names."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files, labels, folds = [], [], []
    for idx, name in enumerate(classes):
        for path in sorted((root / name).glob("*.ogg")):
            files.append(path)
            labels.append(idx)
            folds.append(int(path.name.split("-")[0]))
    if len(classes) != 10 or not files:
        raise DataError(f"{root}: expected the ESC-10 folders ('001 - Dog bark', ...); pass --data <esc10 folder>")
    return files, np.array(labels), np.array(folds), classes


def _cached(cache: Path, name: str, key: str, compute) -> dict[str, np.ndarray]:
    """Load ``cache/name.npz`` if it was made for ``key``, else compute and save it atomically."""
    path = cache / f"{name}.npz"
    if path.is_file():
        with np.load(path) as data:
            if str(data["key"]) == key:
                return {k: data[k] for k in data.files if k != "key"}
    arrays = compute()
    buf = io.BytesIO()
    np.savez(buf, key=np.array(key), **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return arrays


def soundnet_features(waves: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Time-pooled SoundNet features: ``{"<layer>/<pooling>": (N, D) float32}``."""
    model = SOUNDNET8.get_model()
    out: dict[str, list[np.ndarray]] = {f"{l}/{p}": [] for l in LAYERS for p in POOLINGS}
    for wave in tqdm(waves, desc="SoundNet features", disable=not sys.stderr.isatty()):
        feats, _, _ = analyse_audio(model, wave, LAYERS)
        for layer in LAYERS:
            for pooling in POOLINGS:
                out[f"{layer}/{pooling}"].append(pool_time(feats[layer], pooling))
    return {k: np.stack(v).astype(np.float32) for k, v in out.items()}


def mfcc_features(waves: list[np.ndarray]) -> dict[str, np.ndarray]:
    """MFCC statistics (Piczak 2015 baseline style): mean, std, min, max of 20 MFCCs and their deltas."""
    import torchaudio

    mfcc = torchaudio.transforms.MFCC(SR, n_mfcc=20, melkwargs={"n_fft": 1024, "hop_length": 512, "n_mels": 64})
    delta = torchaudio.transforms.ComputeDeltas()
    rows = []
    for wave in waves:
        m = mfcc(torch.from_numpy(wave))  # (20, frames)
        both = torch.cat([m, delta(m)])  # (40, frames)
        rows.append(torch.cat([both.mean(1), both.std(1), both.min(1).values, both.max(1).values]).numpy())
    return {"mfcc/stats": np.stack(rows).astype(np.float32)}


def logmel_features(waves: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Log-mel spectrograms ``(N, 1, 40, frames)`` of the clips (5 s, zero-padded to the longest)."""
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(SR, n_fft=1024, hop_length=1024, n_mels=40)
    length = max(len(w) for w in waves)
    batch = torch.from_numpy(np.stack([np.pad(w, (0, length - len(w))) for w in waves]))  # (N, S)
    return {"logmel": torch.log(mel(batch) + 1e-6).unsqueeze(1).numpy().astype(np.float32)}


def fit_svm(x: np.ndarray, y: np.ndarray, c: float):
    return make_pipeline(StandardScaler(), LinearSVC(C=c, max_iter=20000)).fit(x, y)


def inner_cv_svm(options: dict[str, np.ndarray], y: np.ndarray, folds: np.ndarray) -> tuple[str, float]:
    """Pick (feature variant, C) by leave-one-fold-out CV on the training folds only."""
    best = ("", 0.0, -1.0)
    for name, x in options.items():
        for c in SVM_C:
            accs = [fit_svm(x[folds != f], y[folds != f], c).score(x[folds == f], y[folds == f])
                    for f in np.unique(folds)]
            if np.mean(accs) > best[2]:
                best = (name, c, float(np.mean(accs)))
    return best[0], best[1]


def train_softmax(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray, seed: int) -> float:
    """Single-layer softmax perceptron on standardised features; returns test accuracy."""
    torch.manual_seed(seed)
    mean, std = x_tr.mean(0), x_tr.std(0) + 1e-6
    xt, xe = torch.from_numpy((x_tr - mean) / std), torch.from_numpy((x_te - mean) / std)
    yt = torch.from_numpy(y_tr)
    layer = nn.Linear(xt.shape[1], 10)
    opt = torch.optim.Adam(layer.parameters(), lr=3e-3, weight_decay=1e-3)
    for _ in range(200):  # full batch: 320 clips
        opt.zero_grad()
        nn.functional.cross_entropy(layer(xt), yt).backward()
        opt.step()
    with torch.no_grad():
        return float((layer(xe).argmax(1).numpy() == y_te).mean())


class LogMelCNN(nn.Module):
    """Small CNN on (B, 1, 40, T) log-mels: three conv-BN-ReLU-pool blocks, global pooling, linear."""

    def __init__(self, classes: int = 10, width: int = 16) -> None:
        super().__init__()
        blocks, ch = [], 1
        for out in (width, 2 * width, 4 * width):
            blocks += [nn.Conv2d(ch, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
            ch = out
        self.body = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(ch, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float32 (B, 1, mels, T) -> logits (B, classes)."""
        h = self.body(x)  # (B, C, mels/8, T/8)
        return self.head(h.mean(dim=(2, 3)))


def train_cnn(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray, seed: int,
              epochs: int) -> float:
    """Train the log-mel CNN (random time shifts as augmentation); returns test accuracy."""
    torch.manual_seed(seed)
    mean, std = float(x_tr.mean()), float(x_tr.std())
    xt, xe = torch.from_numpy((x_tr - mean) / std), torch.from_numpy((x_te - mean) / std)
    yt = torch.from_numpy(y_tr)
    model = LogMelCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * ((len(xt) + 31) // 32))
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(xt)).split(32):
            batch = torch.roll(xt[idx], shifts=int(torch.randint(0, xt.shape[-1], ())), dims=-1)  # circular shift
            opt.zero_grad()
            nn.functional.cross_entropy(model(batch), yt[idx]).backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        return float((model(xe).argmax(1).numpy() == y_te).mean())


def cross_validate(feats: dict[str, np.ndarray], y: np.ndarray, folds: np.ndarray,
                   cnn_epochs: int) -> tuple[dict[str, list[float]], dict[str, list[str]]]:
    """Outer 5-fold CV for every (feature, classifier). Returns per-fold accuracies and choices."""
    per_fold: dict[str, list[float]] = {}
    choices: dict[str, list[str]] = {}
    groups = {layer: {p: feats[f"{layer}/{p}"] for p in POOLINGS} for layer in LAYERS}
    groups["mfcc"] = {"stats": feats["mfcc/stats"]}
    for test_fold in tqdm(np.unique(folds), desc="outer folds", disable=not sys.stderr.isatty()):
        tr, te = folds != test_fold, folds == test_fold
        for name, options in groups.items():
            variant, c = inner_cv_svm({k: v[tr] for k, v in options.items()}, y[tr], folds[tr])
            x = options[variant]
            per_fold.setdefault(f"{name}_svm", []).append(fit_svm(x[tr], y[tr], c).score(x[te], y[te]))
            choices.setdefault(f"{name}_svm", []).append(f"{variant}, C={c:g}")
            if name != "mfcc":
                per_fold.setdefault(f"{name}_softmax", []).append(train_softmax(x[tr], y[tr], x[te], y[te], 0))
                choices.setdefault(f"{name}_softmax", []).append(variant)
        x = feats["logmel"]
        per_fold.setdefault("logmel_cnn", []).append(train_cnn(x[tr], y[tr], x[te], y[te], 0, cnn_epochs))
        logger.info("fold %d done", test_fold)
    return per_fold, choices


def write_reports(out: Path, per_fold: dict[str, list[float]], choices: dict[str, list[str]],
                  meta: dict) -> dict:
    """results.json, results.md, accuracy.png (atomic)."""
    means = {k: round(float(np.mean(v)), 4) for k, v in per_fold.items()}
    best = max(means, key=means.get)
    results = {**means, "best": {"name": best, "accuracy": means[best]}}
    atomic_write_json(out / "results.json", results)
    lines = ["# SoundNet features on ESC-10 (5-fold CV, the dataset's folds)", "",
             f"Command: `{meta['command']}`  ", f"Clips: {meta['clips']}; run time {meta['seconds']:.0f} s on "
             f"{meta['threads']} CPU threads. Anchor: SoundNet paper 92.2%, humans 95.7%.", "",
             "| feature_classifier | mean | " + " | ".join(f"fold {f}" for f in range(1, 6)) + " | chosen (inner CV) |",
             "|---|---|" + "---|" * 5 + "---|"]
    for name in sorted(per_fold, key=lambda k: -means[k]):
        folds_txt = " | ".join(f"{a:.3f}" for a in per_fold[name])
        chosen = "; ".join(dict.fromkeys(choices.get(name, ["-"])))
        lines.append(f"| {name} | **{means[name]:.3f}** | {folds_txt} | {chosen} |")
    lines += ["", "Pooling over time (mean / max / mean+std) and the SVM's C are chosen on the four training",
              "folds of each outer fold by leave-one-fold-out CV; the test fold is never used to choose.",
              "SoundNet input: 5-s clips repeat-padded to 12 s for the network, features cropped to the",
              "steps covering the real 5 s (SOUNDNET8.preprocess, fusion.encoders.soundnet_preprocess; no ESC-10",
              "clip reaches 12 s, where the tail padding of longer audio begins).", ""]
    atomic_write_text(out / "results.md", "\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(means, key=means.get)
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.2))
    ax.barh(names, [means[n] for n in names], xerr=[np.std(per_fold[n]) for n in names], color="#4c72b0")
    ax.axvline(0.922, color="#c44e52", linestyle="--", label="SoundNet paper 92.2%")
    ax.set_xlim(0.5, 1.0)
    ax.set_xlabel("ESC-10 accuracy (mean of 5 folds, bars = std)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(out / "accuracy.png", buf.getvalue())
    return results


@script_main("soundnet_esc10")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=data_dir() / "esc10", help="ESC-10 folder")
    parser.add_argument("--out", type=Path, default=Path("results/soundnet_esc10"), help="output folder")
    parser.add_argument("--cnn-epochs", type=int, default=30, help="log-mel CNN epochs per fold")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: on a shared 2-core machine more threads run 10x slower)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    start = time.time()
    files, y, folds, classes = list_clips(args.data)
    key = hashlib.sha1((FEATURE_VERSION + "\n".join(str(f.relative_to(args.data)) for f in files)).encode()
                       ).hexdigest()
    waves: list[np.ndarray] = []

    def load_waves() -> list[np.ndarray]:
        if not waves:
            waves.extend(decode(f, frames=False).audio for f in tqdm(files, desc="decode", disable=True))
        return waves

    cache = args.out / "cache"
    feats = {**_cached(cache, "soundnet", key, lambda: soundnet_features(load_waves())),
             **_cached(cache, "mfcc", key, lambda: mfcc_features(load_waves())),
             **_cached(cache, "logmel", key, lambda: logmel_features(load_waves()))}
    logger.info("features ready after %.0f s", time.time() - start)
    per_fold, choices = cross_validate(feats, y, folds, args.cnn_epochs)
    meta = {"command": "python scripts/soundnet_esc10.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "clips": len(files), "seconds": time.time() - start, "threads": args.threads}
    results = write_reports(args.out, per_fold, choices, meta)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
