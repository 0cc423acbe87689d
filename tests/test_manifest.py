"""Manifest format: round trip, relative paths, and errors that name line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fusion.errors import ManifestError
from fusion.manifest import ManifestEntry, load_manifest, references, split_entries, write_manifest


def _write_lines(path: Path, objs: list[object]) -> Path:
    path.write_text("\n".join(o if isinstance(o, str) else json.dumps(o) for o in objs) + "\n", encoding="utf-8")
    return path


GOOD = {"id": "v1", "video": "clips/v1.mp4", "split": "train", "captions": ["a cat sits"], "meta": {"k": 1}}


def test_round_trip_relative_and_absolute_paths(tmp_path: Path) -> None:
    inside = tmp_path / "clips" / "a.mp4"
    outside = Path("/elsewhere/b.avi")
    entries = [ManifestEntry("a", str(inside), "train", ["one", "two"], {"x": [1, 2]}),
               ManifestEntry("b", str(outside), "test", [], {})]
    path = tmp_path / "m.jsonl"
    write_manifest(entries, path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["video"] == "clips/a.mp4"  # relative to the manifest folder
    assert lines[1]["video"] == "/elsewhere/b.avi"  # outside: stays absolute
    loaded = load_manifest(path)
    assert loaded == [ManifestEntry("a", str(inside.resolve()), "train", ["one", "two"], {"x": [1, 2]}),
                      ManifestEntry("b", str(outside), "test", [], {})]
    assert [e.id for e in split_entries(loaded, "test")] == ["b"]
    assert references(loaded) == {"a": ["one", "two"], "b": []}


def test_write_is_byte_stable(tmp_path: Path) -> None:
    entries = [ManifestEntry("a", "v/a.mp4", "val", ["x"], {"b": 1, "a": 2})]
    write_manifest(entries, tmp_path / "1.jsonl")
    write_manifest(entries, tmp_path / "2.jsonl")
    assert (tmp_path / "1.jsonl").read_bytes() == (tmp_path / "2.jsonl").read_bytes()


@pytest.mark.parametrize(
    ("bad", "field", "fragment"),
    [
        ({k: v for k, v in GOOD.items() if k != "split"}, "split", "missing"),
        ({**GOOD, "split": "dev"}, "split", "train, val, test"),
        ({**GOOD, "captions": "a cat"}, "captions", "list of strings"),
        ({**GOOD, "captions": ["ok", 3]}, "captions[1]", "non-empty string"),
        ({**GOOD, "id": ""}, "id", "non-empty"),
        ({**GOOD, "video": 5}, "video", "path"),
        ({**GOOD, "meta": []}, "meta", "JSON object"),
        ({**GOOD, "caption": ["x"]}, "caption", "unknown field"),
    ],
)
def test_errors_name_line_and_field(tmp_path: Path, bad: dict, field: str, fragment: str) -> None:
    path = _write_lines(tmp_path / "m.jsonl", [GOOD | {"id": "first"}, "", bad])
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    msg = str(info.value)
    assert f"m.jsonl:3 field '{field}'" in msg  # line 3 (the blank line 2 still counts)
    assert fragment in msg
    assert "\n" not in msg


def test_invalid_json_and_duplicates_name_the_line(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "m.jsonl", [GOOD, '{"id": "x", '])
    with pytest.raises(ManifestError, match=r"m\.jsonl:2: invalid JSON"):
        load_manifest(path)
    path = _write_lines(tmp_path / "d.jsonl", [GOOD, GOOD])
    with pytest.raises(ManifestError, match=r"d\.jsonl:2 field 'id': duplicate id 'v1' \(first on line 1\)"):
        load_manifest(path)
    path = _write_lines(tmp_path / "n.jsonl", [[1, 2]])
    with pytest.raises(ManifestError, match=r"n\.jsonl:1: expected a JSON object"):
        load_manifest(path)


def test_missing_and_empty_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path / "nope.jsonl")
    (tmp_path / "e.jsonl").write_text("\n\n")
    with pytest.raises(ManifestError, match="no entries"):
        load_manifest(tmp_path / "e.jsonl")
    with pytest.raises(ManifestError, match=r"is a folder, not a manifest; give the manifest file, e\.g\. .*e\.jsonl"):
        load_manifest(tmp_path)  # `fusion data stats DIR`


def test_writer_validates_entries(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"m\.jsonl:2 field 'split'"):
        write_manifest([ManifestEntry("a", "a.mp4", "train"), ManifestEntry("b", "b.mp4", "training")],
                       tmp_path / "m.jsonl")
    assert not (tmp_path / "m.jsonl").exists()
