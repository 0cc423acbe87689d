"""data_prep.fetch against local mirrors (file:// and a loopback HTTP server with Range), and --from."""

from __future__ import annotations

import hashlib
import http.server
import json
import logging
import shutil
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from data_prep import fetch as fetch_mod
from data_prep.fetch import DATASETS, Dataset, Remote, fetch, main, tree_digest
from fusion.errors import DataError

A = b"vid1\ta man is playing a guitar\n" * 2000  # ~60 kB: several chunks worth resuming
B = b"-4wsuPCjDBc_5_15 vid1\n"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _plain(name: str = "tiny", urls: tuple[str, ...] = ("https://example.invalid/",)) -> Dataset:
    """A two-file data set of known bytes (the real tables' checksums cannot match tiny files)."""
    return Dataset(name, f"{name}/files", (Remote("a.txt", tuple(u + "a.txt" for u in urls), _sha(A)),
                                           Remote("b.txt", tuple(u + "b.txt" for u in urls), _sha(B))))


@pytest.fixture()
def mirror(tmp_path: Path) -> Path:
    root = tmp_path / "mirror"
    (root / "tiny").mkdir(parents=True)
    (root / "tiny" / "a.txt").write_bytes(A)
    (root / "tiny" / "b.txt").write_bytes(B)
    return root


def test_download_from_a_file_mirror_then_nothing_to_do(mirror: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    assert fetch(_plain(), out, mirror=mirror.as_uri()) == "downloaded"
    assert (out / "tiny/files/a.txt").read_bytes() == A and (out / "tiny/files/b.txt").read_bytes() == B
    assert sorted(p.name for p in (out / "tiny/files").iterdir()) == ["a.txt", "b.txt"]  # no .part left
    assert fetch(_plain(), out, mirror=mirror.as_uri()) == "already there"


def test_resumes_a_part_file_and_restarts_a_bad_one(mirror: Path, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "data"
    part = out / "tiny/files/a.txt.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(A[:25_000])  # an interrupted download
    with caplog.at_level(logging.INFO, logger="data_prep.fetch"):
        fetch(_plain(), out, mirror=mirror.as_uri())
    assert "resuming a.txt at 25000 bytes" in caplog.text
    assert (out / "tiny/files/a.txt").read_bytes() == A
    (out / "tiny/files/a.txt").unlink()
    part.write_bytes(b"X" * 1000)  # a part file that is not a prefix of the file
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="data_prep.fetch"):
        fetch(_plain(), out, mirror=mirror.as_uri())
    assert "downloading it again" in caplog.text and (out / "tiny/files/a.txt").read_bytes() == A


def test_checksum_mismatch_is_an_error_and_leaves_nothing(mirror: Path, tmp_path: Path) -> None:
    (mirror / "tiny" / "b.txt").write_bytes(B.replace(b"vid1", b"vid2"))
    out = tmp_path / "data"
    with pytest.raises(DataError, match="b.txt.*SHA-256 does not match") as err:
        fetch(_plain(), out, mirror=mirror.as_uri())
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in (out / "tiny/files").iterdir()) == ["a.txt"]


def test_offline_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a closed port on the loopback address answers like a machine without a network: refused
    code = main(["msvd-captions", "--out", str(tmp_path / "data"), "--mirror", "http://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("data_prep.fetch: error: cannot download sents_train_lc_nopunc.txt from 127.0.0.1:9")
    assert "--from DIR" in err[0]


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder with HTTP Range support (the standard library's handler has none)."""

    ranges: list[str] = []

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        wanted = self.headers.get("Range")
        start = int(wanted.split("=")[1].split("-")[0]) if wanted else 0
        type(self).ranges.append(wanted or "")
        self.send_response(206 if wanted else 200)
        if wanted:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture()
def http_mirror(mirror: Path) -> Iterator[tuple[str, type]]:
    handler = type("Handler", (_RangeHandler,), {"ranges": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(mirror)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_http_range_resume(http_mirror: tuple[str, type], tmp_path: Path) -> None:
    url, handler = http_mirror
    out = tmp_path / "data"
    part = out / "tiny/files/a.txt.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(A[:40_000])
    assert fetch(_plain(), out, mirror=url) == "downloaded"
    assert (out / "tiny/files/a.txt").read_bytes() == A
    assert handler.ranges == ["bytes=40000-", ""]  # a.txt resumed, b.txt whole


def _esc10_like(root: Path) -> tuple[Dataset, Path]:
    """A two-class ESC-10-shaped tree, its zip (GitHub layout: one top folder) and a Dataset for it."""
    tree = root / "tree"
    for cls, clips in (("001 - Dog bark", ("1-100032-A", "2-1-B")), ("002 - Rain", ("1-17367-A",))):
        for clip in clips:
            (tree / cls).mkdir(parents=True, exist_ok=True)
            (tree / cls / f"{clip}.ogg").write_bytes(f"OggS {cls} {clip}".encode())
    (tree / "README.md").write_text("# tiny\n")
    count, digest = tree_digest(tree)
    archive = root / "mirror" / "esc" / "esc.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ESC-10-abc/", "")
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                zf.write(path, f"ESC-10-abc/{path.relative_to(tree).as_posix()}")
        zf.writestr("ESC-10-abc/ESC-10.png", b"not copied")
    return Dataset("esc", "esc10", (Remote("esc.zip", ("https://example.invalid/esc.zip",), None),),
                   tree_sha256=digest, tree_files=count), tree


def test_archive_download_unpacks_and_checks_the_tree(tmp_path: Path) -> None:
    dataset, tree = _esc10_like(tmp_path)
    out = tmp_path / "data"
    assert fetch(dataset, out, mirror=(tmp_path / "mirror").as_uri()) == "downloaded"
    got = sorted(p.relative_to(out / "esc10").as_posix() for p in (out / "esc10").rglob("*") if p.is_file())
    assert got == ["001 - Dog bark/1-100032-A.ogg", "001 - Dog bark/2-1-B.ogg", "002 - Rain/1-17367-A.ogg",
                   "README.md"]
    assert not (out / ".downloads" / "esc.zip").exists()
    assert fetch(dataset, out) == "already there"
    # --from: the unpacked folder, checked the same way; a changed recording is refused
    assert fetch(dataset, tmp_path / "copy", source=tree) == "copied"
    (tree / "002 - Rain" / "1-17367-A.ogg").write_bytes(b"OggS changed")
    with pytest.raises(DataError, match="do not match the published release"):
        fetch(dataset, tmp_path / "copy2", source=tree)


def test_from_a_folder_holding_the_files(mirror: Path, tmp_path: Path) -> None:
    assert fetch(_plain(), tmp_path / "data", source=mirror / "tiny") == "copied"
    assert (tmp_path / "data/tiny/files/a.txt").read_bytes() == A
    with pytest.raises(DataError, match="a.txt not found"):
        fetch(_plain(), tmp_path / "other", source=tmp_path / "nowhere")


def test_the_tables_name_original_sources() -> None:
    assert set(DATASETS) == {"esc10", "msvd-captions", "msrvtt-annotations", "yamnet"}
    assert DATASETS["esc10"].files[0].urls[0].startswith("https://github.com/karolpiczak/ESC-10/archive/")
    for dataset in DATASETS.values():
        for remote in dataset.files:
            assert all(u.startswith("https://") and u.endswith(remote.name) or "archive" in u for u in remote.urls)
            assert remote.sha256 is None or len(remote.sha256) == 64


@pytest.mark.real_data
def test_real_files_through_a_mirror_and_from_the_data_folder(data_dir: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The published checksums match the shared copies, through --mirror file:// and --from."""
    if not all((data_dir / sub).is_dir() for sub in ("msvd/captions", "esc10", "yamnet")):
        pytest.skip(f"{data_dir} lacks msvd/captions, esc10 or yamnet")
    mirror = tmp_path / "mirror"
    for name in ("msvd-captions", "msrvtt-annotations", "yamnet"):
        (mirror / name).mkdir(parents=True)
        for remote in DATASETS[name].files:
            (mirror / name / remote.name).symlink_to(data_dir / DATASETS[name].subdir / remote.name)
    (mirror / "esc10").mkdir()
    with zipfile.ZipFile(mirror / "esc10" / DATASETS["esc10"].files[0].name, "w") as zf:  # stored: .ogg is packed
        for path in sorted((data_dir / "esc10").rglob("*.ogg")):
            zf.write(path, f"ESC-10-{fetch_mod.ESC10_COMMIT}/{path.relative_to(data_dir / 'esc10').as_posix()}")
    out = tmp_path / "fetched"
    assert main(["all", "--out", str(out), "--mirror", mirror.as_uri(), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {k: v["action"] for k, v in report.items()} == dict.fromkeys(DATASETS, "downloaded")
    assert tree_digest(out / "esc10") == (400, fetch_mod.ESC10_TREE_SHA256)
    copied = tmp_path / "copied"
    assert main(["all", "--out", str(copied), "--from", str(data_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {k: v["action"] for k, v in report.items()} == dict.fromkeys(DATASETS, "copied")
    assert main(["msvd-captions", "--out", str(copied), "--json"]) == 0  # no network needed: already there
    assert json.loads(capsys.readouterr().out)["msvd-captions"]["action"] == "already there"
    from data_prep.msvd import build_msvd  # the fetched folder is a usable FUSION_DATA_DIR

    summary = build_msvd(tmp_path / "msvd.jsonl", source=copied / "msvd")
    assert summary.videos == {"train": 1200, "val": 100, "test": 670}
    monkeypatch.setenv("FUSION_DATA_DIR", str(copied))  # and YAMNet finds its weights there
    from fusion.encoders.yamnet import YAMNET

    assert YAMNET.weights_file == copied / "yamnet" / "yamnet.tflite"
    shutil.rmtree(copied)


def test_demo_names_its_sounds(tmp_path: Path) -> None:
    from scripts.demo import _sound_origin, _sounds_note

    assert _sound_origin(tmp_path) == "unknown"
    (tmp_path / "benchmark.json").write_text(json.dumps({"sound_origin": "synthetic"}))
    assert _sound_origin(tmp_path) == "synthetic"
    note = "\n".join(_sounds_note("synthetic"))
    assert "synthetic stand-in" in note and "NOT comparable" in note and "data_prep.fetch esc10" in note
    assert "comparable with the README" in _sounds_note("esc10")[0]
