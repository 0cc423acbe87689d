"""Fetch the real data from its original public sources: ``python -m data_prep.fetch NAME --out DIR``.

NAME is ``esc10``, ``msvd-captions``, ``msrvtt-annotations``, ``yamnet`` or ``all``. ``DIR`` is laid
out as ``FUSION_DATA_DIR`` expects (``DIR/esc10/001 - Dog bark/*.ogg``, ``DIR/msvd/captions/*.txt``,
``DIR/msrvtt/annotations/*.zip``, ``DIR/yamnet/yamnet.tflite``), so ``export FUSION_DATA_DIR=DIR`` is
the last step.

Sources, and what is checked (SHA-256, computed from copies identical to the distributed files):

* ``esc10``: the ESC-10 repository (Piczak, ACM MM 2015; ``karolpiczak/ESC-10`` on GitHub) at
  commit 553c8f17, as GitHub's zip archive of that commit. GitHub builds archives on request and
  does not promise the same bytes twice, so the archive itself is not checked: the 400 unpacked
  ``.ogg`` recordings are. Their digests, one ``<sha256>  <class folder>/<file>`` line each in path
  order, hash to :data:`ESC10_TREE_SHA256`; the README files are copied unchecked.
* ``msvd-captions``: the S2VT caption release (Venugopalan et al., 2015) as published in
  ``vijayvee/video-captioning`` (``text_files/``): ``sents_{train,val,test}_lc_nopunc.txt`` and
  ``youtube_video_to_id_mapping.txt``, each file checked.
* ``msrvtt-annotations``: the MSR-VTT 10K annotation files as Microsoft distributed them,
  ``train_val_annotation.zip`` and ``test_videodatainfo.json.zip``, each zip checked. Microsoft's
  download site is gone; they are fetched from the copy kept in ``WingsBrokenAngel/MSR-VTT-DataCleaning``
  (``clean_process/``), the zips themselves, not re-packed.
* ``yamnet``: YAMNet's weights as a TensorFlow Lite file (``yamnet.tflite``, 4,078,224 bytes, the
  AudioSet classifier of tensorflow/models ``research/audioset/yamnet``, Apache-2.0), from the copy in
  ``Jaskaran197/Speaker-Detector`` at commit 4ec29b6, and its class map ``yamnet_class_map.csv``
  from tensorflow/models (commit dbeeb148), each file checked. ``fusion.encoders.yamnet`` reads the
  weights from ``FUSION_DATA_DIR/yamnet/yamnet.tflite``.

Downloads resume: bytes go to ``FILE.part`` and a rerun asks for the rest (HTTP ``Range``); a
file is moved into place only once its checksum matches. Without a network the error is one
line saying so. ``--mirror URL`` reads ``URL/NAME/FILE`` instead (``file://`` works), and
``--from DIR`` copies from a local folder, a ``FUSION_DATA_DIR``-style one or one holding the
files (for ESC-10 also the unpacked folder or the archive), checked the same way.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from fusion.errors import DataError, script_main

logger = logging.getLogger(__name__)

ESC10_COMMIT = "553c8f1743b9dba6b282e1323c3ca8fa76923448"
ESC10_TREE_SHA256 = "98dcfc5c90c324e1413fa1975dced99302ebae952bbdfa05a0381f4d07300269"
_S2VT = ("https://raw.githubusercontent.com/vijayvee/video-captioning/"
         "b28ee65d7832860eb79e316974ab9f2b1d5d0840/text_files/")
_MSRVTT = ("https://github.com/WingsBrokenAngel/MSR-VTT-DataCleaning/raw/"
           "4eb2f4736e9b606e9296487c3b70351b2cde1dfa/clean_process/")
_YAMNET_TFLITE = ("https://raw.githubusercontent.com/Jaskaran197/Speaker-Detector/"
                  "4ec29b6938f1051fe36b46786f8d486d8b74a38e/yamnet.tflite")
_YAMNET_CLASS_MAP = ("https://raw.githubusercontent.com/tensorflow/models/"
                     "dbeeb148f10adf723067040eedcccda00bdce1e8/research/audioset/yamnet/yamnet_class_map.csv")
CHUNK_BYTES = 1 << 20
_CLASS_DIR = re.compile(r"^\d{3} - [^/]+$")
_READMES = ("README.md", "README.txt")


@dataclass(frozen=True)
class Remote:
    """One file to download: its name, where it is published, and its SHA-256 (None: checked after unpacking)."""

    name: str
    urls: tuple[str, ...]
    sha256: str | None


@dataclass(frozen=True)
class Dataset:
    """A fetchable data set.

    Attributes:
        name: the NAME on the command line.
        subdir: where it goes under ``--out`` (as under ``FUSION_DATA_DIR``).
        files: what to download.
        tree_sha256: for an archive (one file, ``sha256`` None): the digest of the unpacked
            ``.ogg`` files (:func:`tree_digest`) and how many there are.
        tree_files: the number of files behind ``tree_sha256``.
    """

    name: str
    subdir: str
    files: tuple[Remote, ...]
    tree_sha256: str | None = None
    tree_files: int = 0


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("esc10", "esc10", (Remote(f"ESC-10-{ESC10_COMMIT}.zip",
                                      (f"https://github.com/karolpiczak/ESC-10/archive/{ESC10_COMMIT}.zip",), None),),
            tree_sha256=ESC10_TREE_SHA256, tree_files=400),
    Dataset("msvd-captions", "msvd/captions", tuple(Remote(name, (_S2VT + name,), sha) for name, sha in (
        ("sents_train_lc_nopunc.txt", "eae94f08e0794d9b175569ef7bc973ae2899d09ffe3afa2bf63bd61a0116b395"),
        ("sents_val_lc_nopunc.txt", "d23341ce336946aafeef76534a029db88294ee7c09ff4da09188ef8d5ab09089"),
        ("sents_test_lc_nopunc.txt", "fb760644526197e5bc7cc9888169b63558655794f381c8599ee04e1c6e63cee2"),
        ("youtube_video_to_id_mapping.txt", "9de660a4a6db32dea1daea27b4cc3c3717c75911e36a87541b3f20dfa697bc48")))),
    Dataset("msrvtt-annotations", "msrvtt/annotations", tuple(Remote(name, (_MSRVTT + name,), sha) for name, sha in (
        ("train_val_annotation.zip", "ce2d97dd82d03e018c6f9ee69c96eb784397d1c83f734fdb8c17aafa5e27da31"),
        ("test_videodatainfo.json.zip", "0871bbe19dc9c13edeef4af5d7be39600a2e2b7d967e0206bb5911d633af24a0")))),
    Dataset("yamnet", "yamnet", (
        Remote("yamnet.tflite", (_YAMNET_TFLITE,), "469be6a3421cbc52cf97e9f2f966cba984198e8e7af9854d68b3e3ebb1e04194"),
        Remote("yamnet_class_map.csv", (_YAMNET_CLASS_MAP,),
               "cdf24d193e196d9e95912a2667051ae203e92a2ba09449218ccb40ef787c6df2"))),
)}


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_digest(root: Path) -> tuple[int, str]:
    """(number of ``.ogg`` files, SHA-256 of their ``<sha256>  <relative path>`` lines in path order)."""
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.ogg")) if root.is_dir() else []
    lines = "".join(f"{sha256_file(root / f)}  {f}\n" for f in files)
    return len(files), hashlib.sha256(lines.encode("utf-8")).hexdigest()


def _tree_ok(dataset: Dataset, root: Path) -> bool:
    return tree_digest(root) == (dataset.tree_files, dataset.tree_sha256)


def is_complete(dataset: Dataset, target: Path) -> bool:
    """Whether ``target`` already holds the data set, every checksum matching."""
    if dataset.tree_sha256 is not None:
        return _tree_ok(dataset, target)
    return all((target / f.name).is_file() and sha256_file(target / f.name) == f.sha256 for f in dataset.files)


# ---------------------------------------------------------------- downloading
def _offline(name: str, url: str, err: BaseException) -> DataError:
    host = urllib.parse.urlparse(url).netloc or url
    reason = getattr(err, "reason", None) or err
    return DataError(f"cannot download {name} from {host} ({reason}); check the internet connection, "
                     "or fetch the files on a machine that has one and pass --from DIR")


def _read_from(url: str, offset: int) -> tuple[object, bool]:
    """An open stream of ``url`` from byte ``offset`` and whether it starts there (else at 0)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        fh = open(urllib.request.url2pathname(parsed.path), "rb")  # noqa: SIM115 (closed by the caller)
        size = os.fstat(fh.fileno()).st_size
        if 0 < offset <= size:
            fh.seek(offset)
            return fh, True
        return fh, False
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    response = urllib.request.urlopen(request, timeout=60)  # noqa: S310 (https URLs of the table, or a mirror)
    return response, getattr(response, "status", 200) == 206


def _download_to_part(url: str, part: Path) -> bool:
    """Append the rest of ``url`` to ``part`` (start over where the server ignores Range); True if resumed."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        stream, resumed = _read_from(url, offset)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left: the part file is whole
            return True
        raise
    with stream, open(part, "ab" if resumed else "wb") as out:  # type: ignore[attr-defined]
        if resumed:
            logger.info("resuming %s at %d bytes", part.name[:-5], offset)
        for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):  # type: ignore[attr-defined]
            out.write(chunk)
    return resumed


def download(remote: Remote, dest: Path, urls: tuple[str, ...]) -> None:
    """Download ``remote`` to ``dest`` through ``dest.part``, checking its SHA-256 before the rename.

    Raises:
        DataError: no URL answered (offline), or the bytes do not match the checksum.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(2):
        error: BaseException | None = None
        for url in urls:
            try:
                resumed = _download_to_part(url, part)
                break
            except (urllib.error.URLError, OSError, TimeoutError) as err:
                error = err
                logger.debug("%s: %s failed (%s)", remote.name, url, err)
        else:
            raise _offline(remote.name, urls[-1], error or OSError("no URL"))
        if remote.sha256 is None or sha256_file(part) == remote.sha256:
            os.replace(part, dest)
            return
        part.unlink()
        if not resumed or attempt:
            raise DataError(f"{remote.name} from {url}: SHA-256 does not match the published file "
                            f"({remote.sha256[:12]}...); the source changed or the transfer was corrupted")
        logger.warning("%s: the resumed download does not match its checksum; downloading it again", remote.name)


# ---------------------------------------------------------------- unpacking and copying
def _archive_members(archive: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, str]]:
    """(member, path under the data set) for the class folders' .ogg files and the README files."""
    out = []
    for info in archive.infolist():
        parts = [p for p in info.filename.split("/") if p]
        if info.is_dir() or not parts or ".." in parts:
            continue
        at = next((i for i, p in enumerate(parts) if _CLASS_DIR.match(p)), None)
        if at is not None and len(parts) == at + 2 and parts[-1].endswith(".ogg"):
            out.append((info, "/".join(parts[at:])))
        elif parts[-1] in _READMES and len(parts) <= 2:
            out.append((info, parts[-1]))
    return out


def _install_tree(dataset: Dataset, staged: Path, target: Path) -> None:
    """Check a staged unpacked tree and move it to ``target`` (an unfinished target is replaced)."""
    count, digest = tree_digest(staged)
    if (count, digest) != (dataset.tree_files, dataset.tree_sha256):
        shutil.rmtree(staged)
        raise DataError(f"{dataset.name}: the {count} recordings found do not match the published release "
                        f"({dataset.tree_files} files, digest {dataset.tree_sha256[:12]}...); use the original archive")
    if target.exists():
        shutil.rmtree(target)
    os.replace(staged, target)


def _unpack(dataset: Dataset, archive_path: Path, target: Path) -> None:
    staged = target.with_name(f".{target.name}.unpacking")
    shutil.rmtree(staged, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive_path) as archive:
            for info, rel in _archive_members(archive):
                dest = staged / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK_BYTES)
    except zipfile.BadZipFile as err:
        shutil.rmtree(staged, ignore_errors=True)
        raise DataError(f"{archive_path}: not a readable zip archive ({err}); delete it and fetch again") from None
    _install_tree(dataset, staged, target)


def _copy_file(src: Path, dest: Path, sha256: str | None) -> None:
    if sha256 is not None and sha256_file(src) != sha256:
        raise DataError(f"{src}: SHA-256 does not match the published file ({sha256[:12]}...); "
                        "use an unmodified copy")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    shutil.copyfile(src, part)
    os.replace(part, dest)


def copy_from(dataset: Dataset, source: Path, target: Path) -> None:
    """Install ``dataset`` from a local folder (``FUSION_DATA_DIR``-style, or holding the files)."""
    places = [source / dataset.subdir, source]
    if dataset.tree_sha256 is not None:
        for place in places:
            archive = place / dataset.files[0].name
            if archive.is_file():
                _unpack(dataset, archive, target)
                return
            if place.is_dir() and any(_CLASS_DIR.match(p.name) for p in place.iterdir() if p.is_dir()):
                staged = target.with_name(f".{target.name}.unpacking")
                shutil.rmtree(staged, ignore_errors=True)
                for src in sorted(place.rglob("*")):  # contents only: a read-only source stays writable here
                    rel = src.relative_to(place)
                    if src.is_file() and (src.suffix == ".ogg" and _CLASS_DIR.match(rel.parts[0]) or
                                          rel.as_posix() in _READMES):
                        (staged / rel).parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(src, staged / rel)
                _install_tree(dataset, staged, target)
                return
        raise DataError(f"{source}: no {dataset.name} here (looked for {dataset.subdir}/ with its class folders "
                        f"or {dataset.files[0].name}); pass the folder that holds it")
    for remote in dataset.files:
        found = next((p / remote.name for p in places if (p / remote.name).is_file()), None)
        if found is None:
            raise DataError(f"{source}: {remote.name} not found (looked in {dataset.subdir}/ and the folder itself); "
                            "pass the folder that holds it")
        _copy_file(found, target / remote.name, remote.sha256)


def fetch(dataset: Dataset, out: str | Path, mirror: str | None = None, source: str | Path | None = None) -> str:
    """Put ``dataset`` under ``out/dataset.subdir``, checked; returns what was done.

    Args:
        dataset: one of :data:`DATASETS` (or a custom one).
        out: the data folder (use it as ``FUSION_DATA_DIR``).
        mirror: base URL holding ``NAME/FILE`` to use instead of the original sources.
        source: a local folder to copy from instead of downloading.

    Returns:
        ``"already there"``, ``"copied"`` or ``"downloaded"``.
    """
    target = Path(out) / dataset.subdir
    if is_complete(dataset, target):
        return "already there"
    if source is not None:
        copy_from(dataset, Path(source), target)
        return "copied"
    if dataset.tree_sha256 is None:
        for remote in dataset.files:
            dest = target / remote.name
            if dest.is_file() and sha256_file(dest) == remote.sha256:
                continue
            if dest.is_file():
                raise DataError(f"{dest}: SHA-256 does not match the published file; delete it and fetch again")
            download(remote, dest, _urls(dataset, remote, mirror))
        return "downloaded"
    remote = dataset.files[0]
    archive = Path(out) / ".downloads" / remote.name
    if not archive.is_file():  # else downloaded by a run that stopped before unpacking
        download(remote, archive, _urls(dataset, remote, mirror))
    _unpack(dataset, archive, target)
    archive.unlink()
    return "downloaded"


def _urls(dataset: Dataset, remote: Remote, mirror: str | None) -> tuple[str, ...]:
    return (f"{mirror.rstrip('/')}/{dataset.name}/{remote.name}",) if mirror else remote.urls


@script_main("data_prep.fetch")
def main(argv: list[str] | None = None) -> int:
    """``python -m data_prep.fetch NAME [NAME ...] --out DIR [--from DIR] [--mirror URL] [--json]``."""
    p = argparse.ArgumentParser(
        prog="python -m data_prep.fetch",
        description="Fetch ESC-10, the MSVD captions, the MSR-VTT annotations or YAMNet's weights from their "
        "original public sources, checked by SHA-256, into a folder to use as FUSION_DATA_DIR.")
    p.add_argument("names", nargs="+", choices=[*DATASETS, "all"], metavar="NAME",
                   help=f"{', '.join(DATASETS)} or all")
    p.add_argument("--out", required=True, help="data folder to fill (then export FUSION_DATA_DIR=DIR)")
    p.add_argument("--from", dest="source", metavar="DIR", help="copy from this local folder instead of downloading")
    p.add_argument("--mirror", metavar="URL", help="base URL holding NAME/FILE, used instead of the original sources")
    p.add_argument("--json", action="store_true", help="print {NAME: {path, action}} as JSON")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    names = list(DATASETS) if "all" in args.names else list(dict.fromkeys(args.names))
    done: dict[str, dict[str, str]] = {}
    for name in names:
        action = fetch(DATASETS[name], args.out, mirror=args.mirror, source=args.source)
        path = str(Path(args.out) / DATASETS[name].subdir)
        done[name] = {"path": path, "action": action}
        if not args.json:
            print(f"{name}: {action}, checksums match: {path}")
    if args.json:
        print(json.dumps(done, indent=2))
    else:
        print(f"use it: export FUSION_DATA_DIR={Path(args.out).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
