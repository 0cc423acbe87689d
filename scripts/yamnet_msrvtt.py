"""What YAMNet hears on the real MSR-VTT clips, against what their 20 human captions say.

For every clip in ``FUSION_DATA_DIR/msrvtt/clips`` (18 with sound): the YAMNet clip scores
(the mean over 0.96 s patches of the sigmoid scores, as YAMNet's own demo averages them), its
top AudioSet classes, and, per sound concept (:data:`CONCEPTS`: speech, music, singing,
vehicle, animal, crowd, laughter), the concept's score (the highest clip score among its
AudioSet classes) and how many of the clip's 20 reference captions name it (word stems,
e.g. ``talk``/``speak``/``explain`` for speech). A concept is "heard" at score >=
:data:`HEARD_AT` and "said" when at least :data:`SAID_BY` captions name it; the report counts
the clips where both agree. 18 clips are few: the counts describe these clips, nothing more.

    python scripts/yamnet_msrvtt.py     # writes results/yamnet_msrvtt.{json,md}
"""

from __future__ import annotations

import logging
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from data_prep.msrvtt import read_msrvtt
from fusion.encoders.yamnet import YAMNET, describe_yamnet
from fusion.errors import script_main
from scripts.benchio import machine, write_report
from scripts.yamnet_vs_tflite import data_and_weights, decode_audio, script_arguments

logger = logging.getLogger("yamnet_msrvtt")

HEARD_AT = 0.2  # clip score at which a concept counts as heard
SAID_BY = 2  # captions (of 20) that must name a concept for it to count as said
TOP_K = 5
# concept -> (AudioSet display names, caption word stems (regex alternatives, matched at a word start))
CONCEPTS: dict[str, tuple[tuple[str, ...], str]] = {
    "speech": (("Speech", "Child speech, kid speaking", "Conversation", "Narration, monologue", "Babbling"),
               r"talk|speak|speech|say|said|explain|discuss|interview|narrat|voice|tell|describ|announc|"
               r"comment|report|lectur|convers|chat"),
    "music": (("Music", "Musical instrument", "Song", "Pop music", "Rock music", "Hip hop music",
               "Electronic music", "Background music", "Soundtrack music", "Dance music"),
              r"music|song|sing|bands?\b|concert|danc|guitar|piano|drum|rap(?:s|ping|per|pers)?\b|dj\b"),
    "singing": (("Singing", "Choir", "Rapping", "Child singing", "Vocal music"), r"sing|song|rap(?:s|ping|per|pers)?\b|choir|vocal"),
    "vehicle": (("Vehicle", "Car", "Motor vehicle (road)", "Truck", "Engine", "Race car, auto racing",
                 "Motorcycle", "Train", "Aircraft", "Accelerating, revving, vroom"),
                r"cars?\b|truck|vehicle|driv|rac(?:e|es|ing)\b|motorcycle|engine|bus(?:es)?\b|trains?\b|"
                r"plane|airplane|bike|jeep"),
    "animal": (("Animal", "Dog", "Cat", "Bird", "Horse", "Domestic animals, pets", "Livestock, farm animals, "
                "working animals"), r"dog|cats?\b|animal|bird|horse|pupp|kitten|cows?\b|pets?\b"),
    "crowd": (("Crowd", "Cheering", "Applause", "Chatter", "Hubbub, speech noise, speech babble"),
              r"crowd|audience|cheer|applau|clap|fans?\b"),
    "laughter": (("Laughter", "Giggle", "Belly laugh", "Chuckle, chortle", "Baby laughter"), r"laugh|giggl"),
}


def category_names(annotations: Path) -> dict[int, str]:
    """MSR-VTT category ids -> names, from ``category.txt`` in ``train_val_annotation.zip`` (empty if absent)."""
    try:
        with zipfile.ZipFile(annotations / "train_val_annotation.zip") as archive:
            text = archive.read("category.txt").decode("utf-8")
    except (OSError, KeyError, zipfile.BadZipFile):
        return {}
    pairs = (line.rsplit("\t", 1) for line in text.splitlines() if "\t" in line)
    return {int(number): name for name, number in pairs}


def mentions(captions: list[str], stems: str) -> list[str]:
    """The captions that name a concept (a word starting with one of the stems)."""
    pattern = re.compile(rf"\b(?:{stems})", re.IGNORECASE)
    return [caption for caption in captions if pattern.search(caption)]


def clip_row(path: Path, model: torch.nn.Module, captions: list[str], category: str) -> dict[str, Any] | None:
    """YAMNet tags and concept agreement of one clip (None if it has no audio: logged)."""
    audio = decode_audio(path)
    if audio is None:
        return None
    scores = describe_yamnet(model, audio).mean_scores
    names = YAMNET.label_spaces["audioset"]
    index = {name: i for i, name in enumerate(names)}
    row: dict[str, Any] = {"clip": path.stem, "category": category, "audio_seconds": round(audio.size / 22050, 1),
                           "captions": len(captions),
                           "top": [{"label": names[i], "score": round(float(scores[i]), 3)}
                                   for i in np.argsort(-scores)[:TOP_K]], "concepts": {}}
    for concept, (classes, stems) in CONCEPTS.items():
        said = mentions(captions, stems)
        score = max(float(scores[index[name]]) for name in classes)
        row["concepts"][concept] = {"score": round(score, 3), "heard": score >= HEARD_AT,
                                    "said_by": len(said), "said": len(said) >= SAID_BY,
                                    "example": said[0] if said else None}
    return row


def agreement(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per concept: clips heard and said, heard only, said only, neither."""
    out = {}
    for concept in CONCEPTS:
        cells = [(r["concepts"][concept]["heard"], r["concepts"][concept]["said"]) for r in rows]
        out[concept] = {"both": cells.count((True, True)), "heard_only": cells.count((True, False)),
                        "said_only": cells.count((False, True)), "neither": cells.count((False, False))}
    return out


def to_markdown(result: dict[str, Any]) -> str:
    """Per-concept agreement, then every clip: category, YAMNet's top classes, concept scores vs captions."""
    lines = ["# YAMNet on the real MSR-VTT clips vs their captions", "",
             f"Command: `{result['command']}`. {result['clips']} clips with sound (`msrvtt/clips`), each with its 20 "
             "MSR-VTT reference captions. Clip score = mean over 0.96 s patches of YAMNet's sigmoid scores "
             "(PyTorch port, `dynamic_int8`, equal to the TFLite interpreter). A concept is *heard* when its best "
             f"AudioSet class scores >= {HEARD_AT}, *said* when >= {SAID_BY} of the 20 captions name it "
             "(word stems in `scripts/yamnet_msrvtt.py`). 18 clips: counts, not statistics.", "",
             "| concept | heard and said | heard only | said only | neither |", "|---|---|---|---|---|"]
    for concept, cell in result["agreement"].items():
        lines.append(f"| {concept} | {cell['both']} | {cell['heard_only']} | {cell['said_only']} | {cell['neither']} |")
    lines += ["", "## Clips", "", "| clip | category | s | YAMNet top 5 (clip score) | "
              + " | ".join(f"{c} score / captions" for c in CONCEPTS) + " |",
              "|---|---|---|---|" + "---|" * len(CONCEPTS)]
    for r in result["rows"]:
        top = ", ".join(f"{t['label']} {t['score']:.2f}" for t in r["top"])
        cells = " | ".join(f"{r['concepts'][c]['score']:.2f} / {r['concepts'][c]['said_by']}" for c in CONCEPTS)
        lines.append(f"| {r['clip']} | {r['category']} | {r['audio_seconds']} | {top} | {cells} |")
    lines += ["", "## A caption naming each concept (first found)", ""]
    for r in result["rows"]:
        said = [f"{c}: \"{r['concepts'][c]['example']}\"" for c in CONCEPTS if r["concepts"][c]["said"]]
        lines.append(f"- {r['clip']}: " + ("; ".join(said) if said else "(no concept named by 2+ captions)"))
    lines += ["", f"Machine: {result['machine']}", ""]
    return "\n".join(lines)


@script_main("yamnet_msrvtt")
def main(argv: list[str] | None = None) -> int:
    """Tag the clips, compare with the captions, write ``--out`` (.json and .md) and print the markdown."""
    args = script_arguments(__doc__.split("\n\n")[0], "yamnet_msrvtt.json").parse_args(argv)
    root, weights = data_and_weights(args)
    _, _, captions, meta = read_msrvtt(root / "msrvtt" / "annotations")
    model = YAMNET.get_model(weights)
    categories = category_names(root / "msrvtt" / "annotations")
    clips = sorted((root / "msrvtt" / "clips").glob("*.mp4"), key=lambda p: int(p.stem[5:]))
    rows = []
    for path in tqdm(clips, desc="clips", file=sys.stderr):
        category = meta.get(path.stem, {}).get("category")
        row = clip_row(path, model, captions.get(path.stem, []), categories.get(category, str(category)))
        if row is not None:
            rows.append(row)
    result = {"command": "python scripts/yamnet_msrvtt.py", "clips": len(rows), "heard_at": HEARD_AT,
              "said_by": SAID_BY, "agreement": agreement(rows), "rows": rows, "machine": machine()}
    write_report(args.out, result, to_markdown(result), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
