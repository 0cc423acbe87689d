"""Every captioner and baseline on the real development clips, in one table (issue 20, deliverable 5).

The development clips are every clip with media in the shared data folder (18 MSR-VTT clips
with sound, 8 MSVD clips without: ``python -m data_prep.devclips``); none of their captions is
in the text corpus. Systems, all on the same clips:

- ``most frequent caption`` and ``best constant caption``: constants from the corpus (the latter
  the frequent caption with the best CIDEr over the corpus's val clips), chosen without the clips;
- ``blind LM``: beam search with the corpus LM alone (``--lm``, default the zero-shot model's);
- ``retrieval``: the corpus caption whose linked concepts the clip's posteriors support best
  (:class:`fusion.realeval.baselines.RetrievalIndex`); its one setting, the weight of the caption's
  corpus frequency, is chosen per clip by leave-one-out on the other clips' CIDEr;
- ``--model NAME=PATH`` (repeatable): any model ``fusion caption --model PATH`` takes (the zero-shot
  model, the S2VT from text, the demo S2VT), decoded from the cached features as it would caption.

Per clip BLEU-4, METEOR, ROUGE-L, CIDEr and noun precision; paired bootstrap intervals against
each baseline; the audio ablation (audio evidence on vs off) for every system that hears.
Writes ``--results``.json / .md::

    python -m data_prep.caption_corpus --out runs/corpus
    python -m scripts.zeroshot_real_clips --model "zero-shot=runs/zeroshot" --primary zero-shot
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fusion.errors import DataError, script_main
from fusion.io import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

BASELINES = ("most frequent caption", "best constant caption", "blind LM", "retrieval")
PRIOR_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.5)  # retrieval: weight of log(corpus count), chosen by leave-one-out
NOTES = {
    "most frequent caption": "the corpus's most frequent caption, for every clip",
    "best constant caption": "of the 50 most frequent corpus captions, the best CIDEr as the caption of every "
                             "corpus val clip; for every clip",
    "blind LM": "beam 5 with the corpus LM alone (no evidence): one caption for every clip",
    "retrieval": "the corpus caption (<= 12 words) with the best mean concept evidence (frames' ImageNet, sound's "
                 "ImageNet / Places2 / AudioSet posteriors) over its linked words, + w x log(count); w by leave-one-out "
                 "on CIDEr",
}
RETRIEVAL_NOUNS = "retrieval (w by noun precision)"
NOTES[RETRIEVAL_NOUNS] = ("the same retrieval, with w chosen per clip by leave-one-out on the other clips' noun "
                          "precision (a caption without nouns counts 0) instead of their CIDEr")


def corpus_pairs(corpus: Path, split: str) -> list[tuple[str, str]]:
    """``(clip key, caption)`` of a corpus split file (``key<TAB>caption`` lines)."""
    path = corpus / f"{split}.txt"
    if not path.is_file():
        raise DataError(f"{path}: corpus file not found; run `python -m data_prep.caption_corpus --out {corpus}`")
    return [tuple(line.split("\t", 1)) for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line]


def constant_systems(corpus: Path) -> dict[str, str]:
    """The two constant captions, chosen on the corpus alone (cached in ``corpus/constant_captions.json``)."""
    import json

    from fusion.realeval.baselines import CONSTANT_CANDIDATES, best_constant_caption, caption_counts, most_frequent_caption

    cache = corpus / "constant_captions.json"
    stamp = {"candidates": CONSTANT_CANDIDATES, "train_bytes": (corpus / "train.txt").stat().st_size,
             "val_bytes": (corpus / "val.txt").stat().st_size}
    if cache.is_file():
        saved = json.loads(cache.read_text(encoding="utf-8"))
        if saved.get("stamp") == stamp:
            return saved["captions"]
    train, val = corpus_pairs(corpus, "train"), corpus_pairs(corpus, "val")
    counts = caption_counts(c for _, c in train + val)
    refs: dict[str, list[str]] = defaultdict(list)
    for key, caption in val:
        refs[key].append(caption)
    best, table = best_constant_caption(counts, refs)
    captions = {"most frequent caption": most_frequent_caption(counts), "best constant caption": best}
    atomic_write_json(cache, {"stamp": stamp, "captions": captions, "val_cider": table})
    return captions


def retrieval_candidates(corpus: Path, dev: Any) -> tuple[dict[float, dict[str, str]], Any]:
    """Retrieval captions of every clip per prior weight, and the caption function factory."""
    from fusion.concepts import AUDIO_SOURCES, VISUAL_SOURCES, ConceptEvidence, default_links
    from fusion.realeval.baselines import RetrievalIndex, caption_counts

    links = default_links()
    counts = caption_counts(c for _, c in corpus_pairs(corpus, "train") + corpus_pairs(corpus, "val"))
    index = RetrievalIndex(counts, links.key_of)
    visual, audio = ConceptEvidence(links, VISUAL_SOURCES), ConceptEvidence(links, AUDIO_SOURCES)

    def evidence(record: Any) -> dict[str, float]:
        merged = dict(visual.evidence(record) or {})
        for key, value in (audio.evidence(record) or {}).items():
            merged[key] = (merged[key] + value) / 2 if key in merged else value
        return merged

    def system(weights: Mapping[str, float]) -> Any:
        def caption_fn(records: Sequence[Any]) -> list[str]:
            return [index.retrieve(evidence(r), weights[r.id]) for r in records]
        return caption_fn

    records = dev.ordered_records()
    cands = {w: {r.id: c for r, c in zip(records, system(defaultdict(lambda w=w: w))(records))} for w in PRIOR_WEIGHTS}
    return cands, system


def open_model(spec: str) -> tuple[Any, Any, str]:
    """(caption function, extraction config, note) of a model folder, as ``fusion caption --model`` loads it.

    ``spec`` is ``PATH`` or, for a zero-shot folder, ``PATH@MODE`` (``consensus`` / ``fused``): that mode only.
    A zero-shot folder whose settings were chosen on the development clips (``RUN/tune/leave_one_out.json``)
    captions each clip with the point its leave-one-out fold chose without that clip (with ``@MODE``,
    leave-one-out again over that mode's points only).
    """
    import json

    from fusion.manifest import load_manifest
    from fusion.realeval import loo_select
    from fusion.realeval.systems import open_run, run_extract_config, run_system
    from fusion.zeroshot.tune import cider_per_clip

    path, _, mode = spec.partition("@")
    pipeline = open_run(path)
    tune = Path(path) / "tune" / "leave_one_out.json"
    note = f"`fusion caption --model {path}`" + (f" in its {mode} mode" if mode else "")
    if not tune.is_file():
        options = pipeline.options.replace(mode=mode or None) if mode else None
        return run_system(pipeline, options), run_extract_config(pipeline), note
    saved = json.loads(tune.read_text(encoding="utf-8"))
    held_out = {clip: row["point"] for clip, row in saved["held_out"].items()}
    if mode:
        keep = [str(i) for i, point in enumerate(saved["points"]) if point.get("mode", "fused") == mode]
        if not keep:
            raise DataError(f"{tune}: no {mode!r} point was tried; rebuild the model with `fusion zeroshot build`")
        devclips = Path(path) / "devclips.jsonl"
        if not devclips.is_file():
            raise DataError(f"{devclips} not found: cannot redo the leave-one-out choice for {mode!r}")
        refs = {e.id: list(e.captions) for e in load_manifest(devclips)}
        ids = list(held_out)
        scores = {p: cider_per_clip({i: saved["captions"][p][i] for i in ids}, refs) for p in keep}
        choice = loo_select(scores, {p: saved["captions"][p] for p in keep}, ids)
        held_out = {clip: saved["points"][int(p)] for clip, p in choice.chosen.items()}
    options = {clip: pipeline.options.replace(**point) for clip, point in held_out.items()}
    note += "; each clip captioned with the settings its leave-one-out fold chose on the other clips"
    return run_system(pipeline, options), run_extract_config(pipeline), note


def read_predictions(path: str, ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """system -> clip -> caption from a JSON file (DataError naming the file and the gap)."""
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read predictions ({err}); give a JSON object system -> clip -> caption") from None
    for name, preds in data.items() if isinstance(data, dict) else [("", None)]:
        if not isinstance(preds, dict) or any(i not in preds for i in ids):
            raise DataError(f"{path}: system {name!r} lacks a caption for some development clip; caption all {len(ids)}")
    return data


def parse_models(specs: Sequence[str]) -> dict[str, str]:
    """``NAME=PATH`` pairs (DataError naming the bad one)."""
    out = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise DataError(f"--model {spec!r}: expected NAME=PATH, e.g. --model zero-shot=runs/zeroshot")
        out[name] = path
    return out


class Scoreboard:
    """Systems' captions and scores on the development clips, with their audio ablations."""

    def __init__(self, dev: Any, lexicon: Any) -> None:
        self.dev, self.lexicon = dev, lexicon
        self.scores: dict[str, Any] = {}
        self.ablations: dict[str, Any] = {}
        self.notes: dict[str, str] = {}

    def score(self, predictions: Mapping[str, str]) -> Any:
        from fusion.realeval import score_clips

        return score_clips(predictions, self.dev.references, self.lexicon)

    def add(self, name: str, predictions: Mapping[str, str], note: str) -> None:
        self.scores[name] = self.score(predictions)
        self.notes[name] = note
        logger.info("%s: %s", name, {k: v for k, v in self.scores[name].summary().items() if v is not None})

    def add_hearing(self, name: str, caption_fn: Any, dev: Any, note: str) -> None:
        """A system that may use the sound: scored as is and with every clip's audio removed."""
        from fusion.realeval import ablation_summary, audio_ablation

        on, off = audio_ablation(caption_fn, dev)
        self.add(name, on, note)
        self.ablations[name] = ablation_summary(self.scores[name], self.score(off), dev)


def per_clip_criterion(scores: Any, criterion: str, ids: Sequence[str]) -> dict[str, float]:
    """clip -> selection score: ``CIDEr``, or ``noun_precision`` (a caption without nouns counts 0)."""
    if criterion == "CIDEr":
        return scores.values("CIDEr", ids)
    return {i: float(scores.per_clip[i]["noun_precision"] or 0.0) for i in ids}


def add_retrieval(board: Scoreboard, corpus: Path) -> dict[str, Any]:
    """Retrieval with its prior weight chosen per clip by leave-one-out on the other clips, once by
    their CIDEr (``retrieval``) and once by their noun precision (``RETRIEVAL_NOUNS``)."""
    from fusion.realeval import loo_select

    cands, system = retrieval_candidates(corpus, board.dev)
    scored = {w: board.score(p) for w, p in cands.items()}
    names = {w: f"w={w}" for w in cands}
    extra: dict[str, Any] = {}
    for system_name, criterion in (("retrieval", "CIDEr"), (RETRIEVAL_NOUNS, "noun_precision")):
        per_clip = {names[w]: per_clip_criterion(scored[w], criterion, board.dev.ids) for w in cands}
        choice = loo_select(per_clip, {names[w]: cands[w] for w in cands}, board.dev.ids)
        weights = {clip: float(name[2:]) for clip, name in choice.chosen.items()}
        board.add_hearing(system_name, system(weights), board.dev, NOTES[system_name])
        extra[system_name] = {"criterion": criterion, "folds_chose": choice.counts,
                              "mean_per_weight_all_clips": {n: sum(v.values()) / len(v) for n, v in per_clip.items()}}
    return extra


def goal_check(report: Mapping[str, Any], primary: str) -> dict[str, str]:
    """The issue's goal for the primary system, as measured."""
    sysrep, pairs = report["systems"][primary], report["paired"].get(primary, {})
    out = {}
    for base in ("blind LM", "best constant caption"):
        p = pairs.get(base, {}).get("CIDEr")
        if p and p["mean_delta"] is not None:
            low = p["ci95"][0]
            out[f"CIDEr above {base} (paired interval above 0)"] = f"{'yes' if low > 0 else 'no'}: {p['mean_delta']:+.3f} [{low:+.3f}, {p['ci95'][1]:+.3f}]"
    mine, blind = sysrep["summary"]["all"]["METEOR"], report["systems"].get("blind LM", {}).get("summary", {}).get("all", {}).get("METEOR")
    if blind is not None:
        out["METEOR >= blind LM"] = f"{'yes' if mine >= blind else 'no'}: {mine:.3f} vs {blind:.3f}"
    noun = sysrep["summary"]["all"]["noun_precision"]
    out["noun precision >= 0.5"] = f"{'yes' if noun is not None and noun >= 0.5 else 'no'}: {noun}"
    repeats = sysrep["summary"]["all"]["clips_with_repeats"]
    out["no repeated words"] = f"{'yes' if repeats == 0 else 'no'}: {repeats} caption(s) repeat a word"
    return {f"{primary}: {k}": v for k, v in out.items()}


def build_report(args: argparse.Namespace, lexicon: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Score every system and baseline; the report and the clips' references."""
    from fusion.models.lm import WordLM
    from fusion.realeval import compare_systems, load_devset
    from fusion.realeval.baselines import blind_lm_caption

    dev = load_devset(args.manifest)
    board = Scoreboard(dev, lexicon)
    for name, caption in constant_systems(args.corpus).items():
        board.add(name, {i: caption for i in dev.ids}, NOTES[name])
    extra = add_retrieval(board, args.corpus)
    models = parse_models(args.model)
    lm_path = args.lm or (Path(models[args.primary]) / "lm" if args.primary in models else None)
    if lm_path is not None:
        caption = blind_lm_caption(WordLM.load(lm_path))
        board.add("blind LM", {i: caption for i in dev.ids}, f"{NOTES['blind LM']} (LM: {Path(lm_path).name})")
    for path in args.predictions:
        for name, preds in read_predictions(path, dev.ids).items():
            board.add(name, preds, f"captions from `{path}`")
    for name, path in models.items():
        caption_fn, extract, note = open_model(path)
        board.add_hearing(name, caption_fn, load_devset(args.manifest, extract=extract), note)
    baselines = [b for b in BASELINES if b in board.scores]
    report = compare_systems(board.scores, dev, baselines)
    report.update(clips={s: len(dev.subset(s)) for s in ("all", "with_audio", "without_audio")},
                  notes=board.notes, baselines=baselines, audio_ablation=board.ablations, choices=extra,
                  command="python -m scripts.zeroshot_real_clips " + " ".join(shlex.quote(a) for a in args.argv))
    primary = args.primary if args.primary in board.scores else RETRIEVAL_NOUNS
    report["goal"] = goal_check(report, primary)
    return report, dev.references


def ensure_inputs(args: argparse.Namespace) -> None:
    """Build the development manifest and the corpus where they are missing."""
    if not Path(args.manifest).is_file():
        from data_prep.devclips import build_devclips

        build_devclips(args.manifest)
    if not (Path(args.corpus) / "train.txt").is_file():
        from data_prep.caption_corpus import build_corpus, write_corpus

        write_corpus(build_corpus(), args.corpus)


@script_main("zeroshot_real_clips")
def main(argv: list[str] | None = None) -> int:
    """``python -m scripts.zeroshot_real_clips``; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m scripts.zeroshot_real_clips", description=__doc__.splitlines()[0])
    p.add_argument("--manifest", default="runs/devclips/manifest.jsonl", help="development manifest (built if missing)")
    p.add_argument("--corpus", type=Path, default=Path("runs/corpus"), help="caption corpus folder (built if missing)")
    p.add_argument("--model", action="append", default=[], help="NAME=PATH of a model to score (repeatable)")
    p.add_argument("--predictions", action="append", default=[],
                   help="JSON file system -> clip -> caption (e.g. scripts.concept_s2vt's); repeatable")
    p.add_argument("--lm", default=None, help="LM folder of the blind baseline (default: the primary model's lm/)")
    p.add_argument("--primary", default="zero-shot", help="the system the issue's goal is checked for")
    p.add_argument("--results", default="results/zeroshot_real_clips", help="results path without extension")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from data_prep.devclips import wordnet_nouns
    from fusion.realeval.report import render_markdown

    ensure_inputs(args)
    with wordnet_nouns() as lexicon:
        report, references = build_report(args, lexicon)
    atomic_write_json(Path(f"{args.results}.json"), report)
    markdown = render_markdown(report, references)
    atomic_write_text(Path(f"{args.results}.md"), markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
