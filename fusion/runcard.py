"""What a run was trained on: ``RUN/run_card.json``, and the profile beside it.

The run card says, in a few facts, which world a captioner knows: the dataset (its
generator or folder name and a one-line description where known), the number of training
and validation clips, how many had sound, the vocabulary size and the sound classes its
training clips contain (the benchmark's labels where the manifest has them, else the audible
nouns its training captions name). ``fusion caption`` prints it; the web page reads it with
:func:`read_run_card` / :func:`describe_training`.

:func:`write_run_knowledge` writes the card and the training profile (:mod:`fusion.ood`)
together: ``fusion train`` calls it at the end of training; :func:`run_knowledge` loads them
for a trained run, computing them from the run's manifest and feature store the first time
a run made before they existed is used.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fusion.errors import FusionError
from fusion.io import atomic_write_json
from fusion.ood import DEFAULT_QUANTILE, TrainingProfile, bound_model_inputs, measure_model_bounds, profile_path

logger = logging.getLogger(__name__)

CARD_FILE = "run_card.json"
CARD_FORMAT = "fusion.run_card/1"
# Datasets the project can make, by the generator named in the manifest folder's benchmark.json.
KNOWN_DATASETS = {
    "data_prep.avsynth": ("avsynth", "coloured shapes moving on a plain background, with ESC-10 sounds"),
}


def _dataset(manifest: str | None) -> tuple[str, str]:
    """(name, description) of the dataset a manifest belongs to."""
    if not manifest:
        return "unknown", ""
    folder = Path(manifest).parent
    try:
        info = json.loads((folder / "benchmark.json").read_text())
    except (OSError, ValueError):
        info = {}
    known = KNOWN_DATASETS.get(str(info.get("generator", "")))
    if known is not None:
        return known[0] + (f" ({info['size']})" if info.get("size") else ""), known[1]
    return folder.name or Path(manifest).stem, ""


def _sound_classes(entries: Sequence[Any]) -> list[str]:
    """The training clips' sound classes: manifest labels where present, else audible nouns in captions."""
    labelled = sorted({str(e.meta["sound_class"]) for e in entries if (e.meta or {}).get("sound_class")})
    if labelled:
        return labelled
    try:
        from fusion.text import tokenize
        from fusion.verifier.table import default_table

        table = default_table()
        counts: dict[str, int] = {}
        for e in entries:
            named = {n for c in e.captions for n in table.mentions(tokenize(c))}
            for noun in named:
                counts[noun] = counts.get(noun, 0) + 1
        return sorted(n for n, k in counts.items() if k >= 3)  # named in 3+ training clips
    except FusionError as err:  # no noun table: say nothing rather than guess
        logger.info("sound classes unknown: %s", err)
        return []


def make_run_card(config: Any, train_entries: Sequence[Any], val_entries: Sequence[Any], train_records: Sequence[Any],
                  vocab: Any) -> dict[str, Any]:
    """The run card of a run trained with ``config`` on these entries and their records."""
    manifest = getattr(config.data, "manifest", None)
    name, description = _dataset(manifest)
    return {
        "format": CARD_FORMAT,
        "dataset": name,
        "description": description,
        "manifest": str(manifest) if manifest else None,
        "train_clips": len(train_entries),
        "val_clips": len(val_entries),
        "train_clips_with_audio": sum(getattr(r, "audio", None) is not None for r in train_records),
        "vocab_size": len(vocab),
        "sound_classes": _sound_classes(train_entries),
        "audio_mode": getattr(config.model, "audio_mode", None),
        "encoders": {"frames": config.extract.frame_encoder, "audio": config.extract.audio_encoder},
    }


def describe_training(card: dict[str, Any] | None, short: bool = False) -> str:
    """One phrase: ``avsynth (small): 300 training clips of coloured shapes ...; a vocabulary of 134
    words; sounds: Baby cry, ...`` (``short``: up to the clips only)."""
    if not card:
        return "an unknown dataset (the run has no run card)"
    clips = f"{card.get('train_clips', '?')} training clips"
    if card.get("summary"):  # a model trained on no clips says what it learned from instead
        clips = str(card["summary"])
    elif card.get("description"):
        clips += f" of {card['description']}"
    parts = [clips]
    if not short:
        parts.append(f"a vocabulary of {card.get('vocab_size', '?')} words")
        sounds = card.get("sound_classes") or []
        if sounds:
            parts.append("sounds: " + ", ".join(sounds[:10]) + (" ..." if len(sounds) > 10 else ""))
    return f"{card.get('dataset', 'unknown')}: {'; '.join(parts)}"


def read_run_card(run_dir: str | Path) -> dict[str, Any] | None:
    """``RUN/run_card.json`` as a dict, or None when the run has none (yet)."""
    try:
        card = json.loads((Path(run_dir) / CARD_FILE).read_text())
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) and card.get("format") == CARD_FORMAT else None


def write_run_knowledge(run_dir: str | Path, config: Any, train_entries: Sequence[Any], val_entries: Sequence[Any],
                        train_records: Sequence[Any], val_records: Sequence[Any], vocab: Any,
                        quantile: float = DEFAULT_QUANTILE) -> TrainingProfile:
    """Fit the training profile on the records and write it with the run card into ``run_dir``."""
    profile = TrainingProfile.fit(train_records, val_records, quantile)
    profile.save(profile_path(run_dir))
    card = make_run_card(config, train_entries, val_entries, train_records, vocab)
    card["ood"] = {name: {"threshold": round(p.threshold, 4), "calibrated_on": p.calibrated_on,
                          "calibration_clips": p.n_calibration, "quantile": quantile}
                   for name, p in profile.modalities.items()}
    atomic_write_json(Path(run_dir) / CARD_FILE, card)
    logger.info("wrote %s and %s", profile_path(run_dir), Path(run_dir) / CARD_FILE)
    return profile


def write_for_training(config: Any, run_dir: str | Path, data: Any) -> None:
    """End of ``fusion train``: the run card and training profile from the run's ``TrainingData``.

    Never fails the training run: a problem is logged with the command that retries it.
    """
    try:
        write_run_knowledge(run_dir, config, data.train.entries, data.val.entries, data.train.records,
                            data.val.records, data.vocab)
    except (FusionError, OSError, ValueError) as err:
        logger.warning("no training profile written (%s); compute it with `python -m fusion.runcard %s`", err, run_dir)


@dataclass
class RunKnowledge:
    """A trained run's card and training profile, or why they are unavailable.

    Attributes:
        card: the run card, or None.
        profile: the training profile, or None.
        note: why the profile is unavailable and how to make it (None when it is there).
    """

    card: dict[str, Any] | None
    profile: TrainingProfile | None
    note: str | None = None


def compute_for_run(run: Any, manifest: str | Path | None = None, features: str | Path | None = None) -> RunKnowledge:
    """Compute and write the card and profile of a trained run from its manifest and feature store.

    Args:
        run: a ``fusion.checkpoint.LoadedRun``.
        manifest: the training manifest (default: the run's ``data.manifest``).
        features: its feature store (default: the run's ``data.features``).

    Raises:
        FusionError: the manifest or the store cannot be read, or records are missing.
    """
    from fusion.checkpoint import run_folder
    from fusion.errors import ConfigError, DataError
    from fusion.features import FeatureStore
    from fusion.manifest import load_manifest, split_entries

    dc = run.config.data
    manifest = manifest if manifest is not None else dc.manifest
    features = features if features is not None else dc.features
    if manifest is None or features is None:
        raise ConfigError("the run names no manifest or feature store; give --manifest M --features STORE")
    if not Path(features).is_dir():
        raise DataError(f"{features}: the run's feature store is missing; give --features STORE")
    entries = load_manifest(manifest)
    store = FeatureStore(features)
    train, val = split_entries(entries, dc.train_split), split_entries(entries, dc.val_split)
    missing = [e.id for e in train + val if e.id not in store]
    if missing:
        raise DataError(f"{features}: no features for {len(missing)} training clips (e.g. {missing[0]!r}); "
                        f"extract them with `fusion extract {manifest}`")
    folder = run_folder(run.checkpoint_dir)
    train_records = [store[e.id] for e in train]
    profile = write_run_knowledge(folder, run.config, train, val, train_records, [store[e.id] for e in val], run.vocab)
    if measure_model_bounds(run.model, profile, train_records):  # a captioner from before the input bounds
        profile.save(profile_path(folder))
    return RunKnowledge(read_run_card(folder), profile)


def run_knowledge(run: Any, compute: bool = True) -> RunKnowledge:
    """The card and profile of a loaded run; computed (and written) first if missing and ``compute``.
    A captioner saved before it recorded input bounds gets them from the profile.

    Never raises for a missing or unreadable profile: the result's ``note`` says why and how to fix it.
    """
    from fusion.checkpoint import run_folder

    folder = run_folder(run.checkpoint_dir)
    fix = f"compute it with `python -m fusion.runcard {folder}` (add --manifest M --features STORE if they moved)"
    path = profile_path(folder)
    if path.is_file():
        try:
            profile = TrainingProfile.load(path)
        except FusionError as err:  # said, never silently: without it no clip is flagged as unfamiliar
            logger.warning("%s; clips unlike the training data are not flagged until it is rebuilt", err)
            return RunKnowledge(read_run_card(folder), None, str(err))
        bound_model_inputs(run.model, profile)
        if not _bounded(run.model) and compute:  # a profile without the step norm the old captioner needs
            remeasured = _compute(run, folder, fix, compute)
            if remeasured.profile is not None:
                return remeasured
        return RunKnowledge(read_run_card(folder), profile)
    return _compute(run, folder, fix, compute)


def _bounded(model: Any) -> bool:
    norms = [getattr(model, n, None) for n in ("frame_norm", "audio_norm")]
    return all(getattr(n, "has_bounds", True) for n in norms if n is not None and hasattr(n, "max_rms"))


def _compute(run: Any, folder: Path, fix: str, compute: bool) -> RunKnowledge:
    if not compute:
        return RunKnowledge(read_run_card(folder), None, f"the run has no training profile; {fix}")
    try:
        knowledge = compute_for_run(run)
        logger.info("computed the training profile of %s (made before runs recorded one)", folder)
        return knowledge
    except (FusionError, OSError) as err:
        return RunKnowledge(read_run_card(folder), None, f"the run has no training profile ({err}); {fix}")


def warning_line(report: Any, card: dict[str, Any] | None) -> str | None:
    """The one warning line for a clip unlike the training data (None when it is not)."""
    if report is None or not report.flagged:
        return None
    far = ", ".join(f"{m} distance {report.distances[m]:.1f} > {report.thresholds[m]:.1f}" for m in report.unfamiliar)
    return (f"warning: this clip is unlike the training data ({far}); the model was trained on "
            f"{describe_training(card, short=True)}; this caption is unreliable")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fusion.runcard RUN [--manifest M] [--features STORE]``: (re)compute a run's training
    profile and run card from its training data, and print the card. User errors: one line, exit 2."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m fusion.runcard",
                                     description="compute the training profile (out-of-distribution distances) "
                                     "and run card of a trained run from its manifest and feature store")
    parser.add_argument("run", metavar="RUN", help="run folder made by `fusion train`")
    parser.add_argument("--manifest", help="the run's training manifest (default: the run's data.manifest)")
    parser.add_argument("--features", help="its feature store (default: the run's data.features)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        from fusion.checkpoint import load_run

        knowledge = compute_for_run(load_run(args.run), args.manifest, args.features)
    except FusionError as err:
        print(f"python -m fusion.runcard: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(knowledge.card, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
