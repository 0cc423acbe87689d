"""``fusion zeroshot build``: corpus -> caption LM -> concept links -> real-clip calibration -> tuned weights.

:func:`build_zeroshot` writes a zero-shot model folder (layout: :mod:`fusion.zeroshot.config`):

1. the caption LM, trained on the corpus's train captions (a seeded sample of ``sentences``),
   validated on its val captions (perplexity recorded);
2. the committed concept-link table, copied in, so the folder is self-contained, and the caption
   index of the consensus mode: every corpus caption (train + val) by clip, with its linked words
   (:mod:`fusion.zeroshot.neighbours`);
3. where development clips are given (real clips with references; none of them is in the
   corpus): their features, the unfamiliarity profile calibrated on them (leave-one-out,
   :mod:`fusion.zeroshot.calibrate`), and the weights chosen on them with leave-one-out
   cross-validation (:mod:`fusion.zeroshot.tune`: the mode too); without clips the defaults stay.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusion.concepts.links import DEFAULT_LINKS_PATH
from fusion.config import from_dict, to_dict
from fusion.errors import FusionError
from fusion.io import atomic_write_json
from fusion.models.lm import LMConfig
from fusion.zeroshot.config import LINKS_FILE, LM_DIR, ZeroShotConfig, ZeroShotFolder

logger = logging.getLogger(__name__)

TUNE_FILE = "tune/leave_one_out.json"
FRAMES_PER_CLIP = 8  # posteriors averaged over 8 frames; keeps a warm caption of a 10-s clip under 1 s on 2 cores
VAL_SENTENCES = 2000  # a seeded sample of the corpus's val captions measures the LM's perplexity


@dataclass
class DevClip:
    """A real development clip: ``id``, media ``path`` and its reference captions."""

    id: str
    path: Path
    references: list[str] = field(default_factory=list)


def read_sentences(path: Path) -> list[str]:
    """The captions of a corpus file (``key<TAB>caption`` lines)."""
    from fusion.training.lm import read_corpus

    return read_corpus(path)


def train_caption_lm(corpus_dir: Path, out: Path, config: LMConfig, sentences: int | None, progress: bool) -> dict[str, Any]:
    """Train the LM on (a seeded sample of) ``corpus_dir/train.txt``; returns its provenance."""
    from fusion.training.lm import train_lm

    train = read_sentences(corpus_dir / "train.txt")
    val = read_sentences(corpus_dir / "val.txt")
    if sentences is not None and sentences < len(train):
        train = random.Random(config.seed).sample(train, sentences)
    val_sample = random.Random(config.seed).sample(val, min(len(val), VAL_SENTENCES))
    start = time.perf_counter()
    lm = train_lm(train, config, val_sentences=val_sample, out_dir=out / LM_DIR, progress=progress)
    best = min(h["val_perplexity"] for h in lm.history)  # train_lm keeps the best epoch
    return {"train_sentences": len(train), "val_sentences": len(val_sample), "vocab_size": len(lm.vocab),
            "val_perplexity": round(best, 2), "train_seconds": round(time.perf_counter() - start, 1),
            "config": to_dict(config)}


def build_index(corpus_dir: Path, out: Path) -> dict[str, Any]:
    """Index the corpus's train + val captions by clip for the consensus mode; returns its provenance."""
    from fusion.concepts.links import ConceptLinks
    from fusion.zeroshot.neighbours import CaptionIndex

    start = time.perf_counter()
    links = ConceptLinks.load(out / LINKS_FILE)
    pairs = []
    for split in ("train", "val"):
        for line in (corpus_dir / f"{split}.txt").read_text(encoding="utf-8").splitlines():
            key, sep, caption = line.partition("\t")
            if sep:
                pairs.append((key, caption))
    index = CaptionIndex.build(pairs, links.key_of, list(links.entries))
    index.save(out)
    return {"clips": len(index.clips), "captions": sum(len(c) for c in index.captions),
            "seconds": round(time.perf_counter() - start, 1)}


def audioset_encoders() -> dict[str, str | None]:
    """``{"yamnet": None}`` (AudioSet posteriors of the sound) where YAMNet's weights are found, else ``{}``."""
    from fusion.encoders.yamnet import default_weights_file

    if default_weights_file() is None:
        logger.warning("YAMNet weights not found: the zero-shot model hears through SoundNet only "
                       "(python -m data_prep.fetch yamnet --out DIR; export FUSION_DATA_DIR=DIR)")
        return {}
    return {"yamnet": None}


def reusable_lm(out: Path, config: LMConfig, sentences: int | None) -> dict[str, Any] | None:
    """The provenance of an LM an earlier build left in ``out`` with the same settings, else None."""
    try:
        earlier = ZeroShotFolder.load(out).provenance.get("lm") or {}
    except FusionError:
        return None
    same = (earlier.get("config") == to_dict(config)
            and earlier.get("sentences_asked", earlier.get("train_sentences")) == sentences)
    return earlier if same and (out / LM_DIR / "lm.json").is_file() else None


def dev_features_dir(out: Path, config: Any) -> Path:
    """Where a build keeps the development clips' features: ``out/features/<extraction fingerprint>``."""
    return out / "features" / config.fingerprint()[:16]


def extract_dev(clips: Sequence[DevClip], out: Path, extract: dict[str, Any], progress: bool,
                store_dir: Path | None = None) -> list[Any]:
    """Feature records of the clips (cached in ``store_dir``, default :func:`dev_features_dir`); unreadable
    clips are skipped."""
    from fusion.features import ExtractConfig, FeatureStore
    from fusion.features.runner import extract_to_store

    config = from_dict(ExtractConfig, extract)
    store = FeatureStore(store_dir or dev_features_dir(out, config), config)
    extract_to_store([(c.id, str(c.path)) for c in clips], store, config, progress=progress)
    return [store[c.id] for c in clips if c.id in store]


def calibrate(out: Path, records: Sequence[Any], provenance: dict[str, Any]) -> dict[str, list[float]]:
    """Write the real-clip profile and the run card; returns the held-out distances."""
    from fusion.ood import PROFILE_FILE
    from fusion.runcard import CARD_FILE, CARD_FORMAT
    from fusion.zeroshot.calibrate import real_clip_profile

    profile, held_out = real_clip_profile(records)
    profile.save(out / PROFILE_FILE)
    card = {"format": CARD_FORMAT, "dataset": "zero-shot",
            "summary": f"no training video; it picks among {provenance['index']['captions']:,} real captions of "
                       f"{provenance['index']['clips']:,} MSVD + MSR-VTT clips (its LM learned from "
                       f"{provenance['lm']['train_sentences']:,}) by what the ImageNet / SoundNet / AudioSet classes "
                       "of pretrained encoders see and hear",
            "train_clips": 0, "val_clips": len(records), "calibration_clips": len(records),
            "train_clips_with_audio": 0, "vocab_size": provenance["lm"]["vocab_size"], "sound_classes": [],
            "encoders": provenance.get("encoders", {})}
    atomic_write_json(out / CARD_FILE, card)
    return held_out


def tune_folder(out: str | Path, dev: Sequence[DevClip], records: Sequence[Any] | None = None, *,
                grid: Sequence[dict[str, Sequence[Any]]] | None = None, device: str = "cpu",
                progress: bool = True) -> dict[str, Any]:
    """Choose the folder's mode and weights on real clips with references, by leave-one-out
    (:mod:`fusion.zeroshot.tune`): writes ``out/tune/leave_one_out.json`` and the chosen settings into
    ``out/zeroshot.json``. ``records``: the clips' feature records (default: extracted, cached in the folder);
    ``grid``: the points tried (default :data:`fusion.zeroshot.tune.GRID`).

    Returns:
        ``{"file", "chosen", "held_out_cider", "clips"}`` (also kept as the folder's ``provenance["tuned"]``).
    """
    from fusion.errors import DataError
    from fusion.zeroshot.model import ZeroShotModel
    from fusion.zeroshot.tune import GRID, tune_weights

    out = Path(out)
    folder = ZeroShotFolder.load(out)
    if records is None:
        records = extract_dev(dev, out, folder.extract, progress)
    refs = {c.id: c.references for c in dev}
    records = [r for r in records if refs.get(r.id)]
    if len(records) < 2:
        raise DataError(f"{len(records)} readable clip(s) with reference captions: leave-one-out needs at least 2")
    base = ZeroShotConfig(beam_size=folder.config.beam_size, max_len=folder.config.max_len, min_len=folder.config.min_len)
    result = tune_weights(ZeroShotModel(out, device=device), records, refs, base, grid or GRID, progress=progress)
    atomic_write_json(out / TUNE_FILE, result)
    folder.config = base.replace(**result["chosen"])
    folder.provenance["tuned"] = {"file": TUNE_FILE, "chosen": result["chosen"],
                                  "held_out_cider": result["held_out_cider"], "clips": len(records)}
    folder.save(out)
    return folder.provenance["tuned"]


def build_zeroshot(out: str | Path, corpus_dir: str | Path, dev: Sequence[DevClip] = (), *,
                   lm_config: LMConfig | None = None, sentences: int | None = None, tune: bool = True,
                   device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Build a zero-shot model folder (module docstring). Returns the build summary (also ``out/build.json``)."""
    from fusion.features import ExtractConfig

    out, corpus_dir = Path(out), Path(corpus_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    extract = ExtractConfig(frames_per_clip=FRAMES_PER_CLIP, extra_audio_encoders=audioset_encoders())
    provenance: dict[str, Any] = {"corpus": str(corpus_dir.name),
                                  "encoders": {"frames": extract.frame_encoder, "audio": extract.audio_encoder}}
    lm_config = lm_config or LMConfig()
    provenance["lm"] = reusable_lm(out, lm_config, sentences)
    if provenance["lm"] is not None:
        logger.info("caption LM: reusing %s (same settings)", out / LM_DIR)
    else:
        provenance["lm"] = {**train_caption_lm(corpus_dir, out, lm_config, sentences, progress), "sentences_asked": sentences}
    shutil.copyfile(DEFAULT_LINKS_PATH, out / LINKS_FILE)
    provenance["index"] = build_index(corpus_dir, out)
    folder = ZeroShotFolder(ZeroShotConfig(), to_dict(extract), provenance)
    folder.save(out)
    summary: dict[str, Any] = {"lm": provenance["lm"], "dev_clips": len(dev)}
    if dev:
        records = extract_dev(dev, out, folder.extract, progress)
        summary["calibration_held_out_distances"] = calibrate(out, records, provenance)
        if tune:
            summary["tuned"] = tune_folder(out, dev, records, device=device, progress=progress)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_json(out / "build.json", summary)
    return summary
