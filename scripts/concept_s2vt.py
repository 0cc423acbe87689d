"""S2VT from text alone (issue 20, 3b): train on synthesised concept inputs, caption the real clips.

Cross-fitted so that no clip's caption comes from a model shaped by that clip: the visual noise
pools (:mod:`fusion.concept_s2vt.synth`) of the model that captions the MSVD clips are measured
on the MSR-VTT development clips, and those of the model that captions the MSR-VTT clips on the
MSVD clips; the audio pools on ESC-10 recordings (real sound, labelled by class name) for both.
Each model trains within ``--budget`` seconds on corpus captions, and is decoded

- ``S2VT from text``: alone (beam 5, no repeated bigram);
- ``S2VT from text + LM + verifiers``: as the ``"caption"`` scorer beside the zero-shot model's
  LM, visual and audio verifiers and length (``--zeroshot RUN``, bound to the S2VT's vocabulary;
  per clip the weights the zero-shot model's leave-one-out fold chose), with ``--caption-weight``.

Writes ``--out``/predictions.json (system -> clip -> caption), the pools' description and the
training histories; ``scripts.zeroshot_real_clips --predictions NAME=FILE`` puts them in the table::

    python -m scripts.concept_s2vt --zeroshot runs/zeroshot --out runs/concept_s2vt
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

from fusion.errors import DataError, script_main
from fusion.io import atomic_write_json

logger = logging.getLogger(__name__)

ESC10_PER_CLASS = 12  # ESC-10 recordings per class measured for the audio pool (fold order)


def esc10_items(per_class: int, store: Path) -> list[tuple[Any, list[str]]]:
    """(feature record, [class name]) of the first ``per_class`` ESC-10 recordings of each class."""
    from fusion.features import ensure_features
    from fusion.manifest import ManifestEntry
    from fusion.paths import data_dir
    from fusion.realeval.harness import dev_extract_config

    root = data_dir() / "esc10"
    classes = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not classes:
        raise DataError(f"{root}: ESC-10 not found; set FUSION_DATA_DIR to the shared data folder")
    entries = []
    for folder in classes:
        name = folder.name.split(" - ", 1)[-1].lower()
        for path in sorted(folder.glob("*.ogg"))[:per_class]:
            entries.append(ManifestEntry(path.stem, str(path), "test", [name]))
    opened = ensure_features(entries, store, dev_extract_config())  # the development clips' encoders
    return [(opened[e.id], e.captions) for e in entries]


def evidence_fns(links: Any) -> dict[str, Any]:
    """modality -> record -> key -> evidence (the zero-shot model's visual and audio verifiers' rule)."""
    from fusion.concepts import AUDIO_SOURCES, VISUAL_SOURCES, ConceptEvidence

    return {"visual": ConceptEvidence(links, VISUAL_SOURCES), "audio": ConceptEvidence(links, AUDIO_SOURCES)}


def fold_pools(dev: Any, esc: list[tuple[Any, list[str]]], evidence: dict[str, Any], links: Any) -> dict[str, Any]:
    """Held-out dataset -> the evidence pools measured without it."""
    from fusion.concept_s2vt.synth import EvidencePools, measure_pools

    audio = measure_pools(esc, evidence["audio"].evidence, links.key_of)
    refs = dev.references
    out = {}
    for held_out in ("msrvtt", "msvd"):
        train = [(dev.records[e.id], refs[e.id]) for e in dev.entries if e.meta["dataset"] != held_out]
        visual = measure_pools(train, evidence["visual"].evidence, links.key_of)
        other = "MSVD" if held_out == "msrvtt" else "MSR-VTT"
        out[held_out] = EvidencePools({"visual": visual[0], "audio": audio[0]}, {"visual": visual[1], "audio": audio[1]},
                                      {"visual": f"{other} development clips (frames)", "audio": "ESC-10 (sound)"})
    return out


def fused_scorers(zeroshot: Any, vocab: Any, point: dict[str, float] | None) -> tuple[dict[str, Any], dict[str, float]]:
    """The zero-shot model's scorers (LM, visual and audio verifiers, length) over ``vocab``, with its
    weights (``point``: the weights a leave-one-out fold chose, else the model's own)."""
    from fusion.decoding.concept_scorer import ConceptScorer
    from fusion.decoding.lm_scorer import LMScorer
    from fusion.decoding.scorers import LengthScorer

    config = zeroshot.config.replace(**(point or {}))
    scorers: dict[str, Any] = {"lm": LMScorer(zeroshot.lm, vocab)}
    weights = {"lm": 1.0}
    for name, weight, negative, evidence in (
            ("visual", config.visual_weight, config.visual_negative_scale, zeroshot.visual),
            ("audio", config.audio_weight, config.audio_negative_scale, zeroshot.audio)):
        if weight:
            scorers[name], weights[name] = ConceptScorer(vocab, evidence, negative), float(weight)
    if config.length_weight:
        scorers["length"], weights["length"] = LengthScorer(len(vocab)), float(config.length_weight)
    return scorers, weights


def decode(model: Any, inputs: Any, records: list[Any], vocab: Any, zeroshot: Any = None,
           caption_weight: float = 1.0, points: dict[str, dict[str, float]] | None = None) -> list[str]:
    """Captions of the records: the S2VT alone (``zeroshot`` None) or fused with the zero-shot scorers
    (per clip the weights of ``points``, where given), one clip at a time."""
    import torch

    from fusion.concept_s2vt.model import ConceptCaptionScorer
    from fusion.decoding.beam_search import beam_search
    from fusion.decoding.guards import caption_guards
    from fusion.decoding.processors import caption_processors
    from fusion.decoding.scorer import BatchInputs, DecodeContext, bind_inputs

    processors = caption_processors(vocab.pad_id, vocab.bos_id, vocab.unk_id, 2, no_immediate_repeat=True)
    captions = []
    for record in records:
        scorers, weights = fused_scorers(zeroshot, vocab, (points or {}).get(record.id)) if zeroshot else ({}, {})
        scorers["caption"], weights["caption"] = ConceptCaptionScorer(model, inputs), caption_weight
        scorers = {name: bind_inputs(scorer, BatchInputs(records=[record])) for name, scorer in scorers.items()}
        guards = caption_guards(vocab, eos_id=vocab.eos_id, max_len=20, beam_size=5,
                                audio_present=torch.tensor([record.audio is not None]))  # no sound words without audio
        hyps = beam_search(scorers, weights, DecodeContext(batch_size=1, beam_size=5), bos_id=vocab.bos_id,
                           eos_id=vocab.eos_id, max_len=20, processors=[*processors, *guards], decode_words=vocab.decode)
        captions.append(hyps[0][0].words)
    return captions


def held_out_points(folder: str | None) -> dict[str, dict[str, float]]:
    """clip -> the weights the zero-shot model's leave-one-out fold chose for it (empty without a tune file)."""
    import json

    path = Path(folder) / "tune" / "leave_one_out.json" if folder else None
    if path is None or not path.is_file():
        return {}
    return {clip: row["point"] for clip, row in json.loads(path.read_text(encoding="utf-8"))["held_out"].items()}


def train_folds(args: argparse.Namespace, dev: Any, links: Any, vocab: Any, zeroshot: Any) -> dict[str, Any]:
    """Train one model per held-out dataset and caption its clips; predictions and provenance."""
    from fusion.concept_s2vt.model import (MODEL_FILE, ConceptInputs, ConceptS2VTConfig, load_model, save_model,
                                           train_concept_s2vt)
    from fusion.concept_s2vt.synth import Synthesizer
    from fusion.training.lm import read_corpus

    evidence = evidence_fns(links)
    pools = fold_pools(dev, esc10_items(ESC10_PER_CLASS, Path(args.out) / "esc10_features"), evidence, links)
    keys = {m: e.keys for m, e in evidence.items()}
    inputs = ConceptInputs({m: e.evidence for m, e in evidence.items()}, keys)
    captions = read_corpus(Path(args.corpus) / "train.txt")
    config = ConceptS2VTConfig(sentences=args.sentences, time_budget_s=args.budget, batch_size=args.batch_size,
                               hidden_size=args.hidden, frame_embed_size=args.hidden, word_embed_size=args.hidden // 2)
    captions = [c for c in captions if vocab.unk_id not in vocab.encode(c)]  # the vocabulary covers every word
    preds: dict[str, dict[str, str]] = {"S2VT from text": {}}
    if zeroshot is not None:
        preds["S2VT from text + LM + verifiers"] = {}
    info: dict[str, Any] = {"config": dataclasses.asdict(config), "input_dims": inputs.dims, "folds": {}}
    for held_out, fold_pool in pools.items():
        folder = Path(args.out) / f"without_{held_out}"
        if args.reuse and (folder / MODEL_FILE).is_file():
            model, saved, _ = load_model(folder)
            history = saved["training"]
            info["config"] = saved["config"]  # what the saved models were trained with
        else:
            synth = Synthesizer(fold_pool, keys, links.key_of)
            model, history = train_concept_s2vt(captions, vocab, synth, inputs.dims, config, progress=logger.info)
            history.pop("losses")
            save_model(folder, model, config, vocab, {"input_dims": list(inputs.dims), "training": history,
                                                      "pools": fold_pool.describe(), "held_out": held_out})
        records = [dev.records[e.id] for e in dev.entries if e.meta["dataset"] == held_out]
        ids = [r.id for r in records]
        preds["S2VT from text"].update(zip(ids, decode(model, inputs, records, vocab, None, 1.0)))
        if zeroshot is not None:
            fused = decode(model, inputs, records, vocab, zeroshot, args.caption_weight, held_out_points(args.zeroshot))
            preds["S2VT from text + LM + verifiers"].update(zip(ids, fused))
        info["folds"][held_out] = {"pools": fold_pool.describe(), "training": history, "clips": ids}
    return {"predictions": preds, **info}


@script_main("concept_s2vt")
def main(argv: list[str] | None = None) -> int:
    """``python -m scripts.concept_s2vt``; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m scripts.concept_s2vt", description=__doc__.splitlines()[0])
    p.add_argument("--manifest", default="runs/devclips/manifest.jsonl", help="development manifest (data_prep.devclips)")
    p.add_argument("--corpus", default="runs/corpus", help="caption corpus folder (data_prep.caption_corpus)")
    p.add_argument("--zeroshot", default=None, help="zero-shot model folder: its LM, links and verifiers join the decode")
    p.add_argument("--caption-weight", type=float, default=1.0, help="weight of the S2VT beside the zero-shot scorers")
    p.add_argument("--budget", type=float, default=240.0, help="training seconds per fold (two folds)")
    p.add_argument("--batch-size", type=int, default=32, help="captions per training step")
    p.add_argument("--hidden", type=int, default=128, help="S2VT LSTM width (frame embedding too; words half)")
    p.add_argument("--min-count", type=int, default=50, help="corpus uses a word needs to be in the vocabulary")
    p.add_argument("--sentences", type=int, default=40_000, help="corpus captions sampled for training")
    p.add_argument("--out", default="runs/concept_s2vt", help="output folder")
    p.add_argument("--reuse", action="store_true", help="decode with the models already in --out (no training)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from fusion.concepts import default_links
    from fusion.realeval import load_devset
    from fusion.text import Vocabulary
    from fusion.training.lm import read_corpus

    dev = load_devset(args.manifest)
    zeroshot = None
    if args.zeroshot:
        from fusion.zeroshot.model import ZeroShotModel

        zeroshot = ZeroShotModel(args.zeroshot)
    links = zeroshot.links if zeroshot is not None else default_links()
    vocab = Vocabulary.build(read_corpus(Path(args.corpus) / "train.txt"), args.min_count)
    result = train_folds(args, dev, links, vocab, zeroshot)
    atomic_write_json(Path(args.out) / "predictions.json", result["predictions"])
    atomic_write_json(Path(args.out) / "report.json", {k: v for k, v in result.items() if k != "predictions"})
    for name, preds in result["predictions"].items():
        print(f"{name}: " + "; ".join(f"{i}: {c}" for i, c in list(preds.items())[:4]) + " ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
