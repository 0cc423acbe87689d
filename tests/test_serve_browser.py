"""``fusion serve`` driven in headless Chromium with Playwright: one server for the module.

The server is started as a new user would (``python -m fusion serve``) on a free loopback
port with a tiny random run and a tiny zero-shot model in its consensus mode. Screenshots go
to the test's temporary folder.
Needs Debian's ``chromium`` (Playwright cannot download its own browser here) and the
``serve`` extra (gradio, playwright); skipped with the install command where absent.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fusion.decoding.guards import SOUND_CLAIM_WORDS
from fusion.paths import data_dir
from tests.builders import ZEROSHOT_SOUND_CAPTION, ablation_interval, make_serve_run, make_serve_zeroshot
from tests.mediafactory import make_video

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
INSTALL = "apt-get update && apt-get install -y chromium; pip install -e '.[serve]'"
if not Path(CHROMIUM).is_file():
    pytest.skip(f"chromium not found; install it: {INSTALL}", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason=f"playwright not installed: {INSTALL}")
pytest.importorskip("gradio", reason=f"gradio not installed: {INSTALL}")

MAX_UPLOAD_MB = 3
START_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """``fusion serve`` on a free port with a tiny run and a tiny zero-shot model; yields its URL, folders and log."""
    root = tmp_path_factory.mktemp("serve_browser")
    tiny = make_serve_run(root)
    tiny["zeroshot"] = make_serve_zeroshot(tiny["runs"] / "zeroshot")
    port = _free_port()
    log = open(root / "server.log", "w")  # noqa: SIM115 - closed below
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "-m", "fusion", "serve", "--runs", str(tiny["runs"]), "--port", str(port),
                             "--max-upload-mb", str(MAX_UPLOAD_MB), "--threads", "1"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if _status(url) == 200:
                break
        except OSError:
            time.sleep(1)
    else:
        proc.kill()
        log.close()
        pytest.fail(f"fusion serve did not start: {(root / 'server.log').read_text()[-2000:]}")
    yield {"url": url, "root": root, **tiny}
    proc.terminate()
    proc.wait(timeout=30)
    log.close()
    assert "Traceback" not in (root / "server.log").read_text()


@pytest.fixture(scope="module")
def page(server: dict) -> Iterator[Page]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        tab = browser.new_page(viewport={"width": 1400, "height": 1700})
        tab.set_default_timeout(60_000)
        tab.goto(server["url"])
        tab.wait_for_selector("#fusion-upload input[type=file]", state="attached")
        yield tab
        browser.close()


def _clip_with_sound(folder: Path) -> Path:
    real = data_dir() / "msrvtt" / "clips" / "video0.mp4"
    return real if real.is_file() else make_video(folder / "clip.mp4", seconds=4, fps=10, audio="noise")


def _upload(page: Page, path: Path) -> None:
    """Upload ``path``; a previous upload is cleared first (the box then shows its drop zone again)."""
    box = page.locator("#fusion-upload input[type=file]")
    if box.count() == 0:
        page.locator("#fusion-upload button[aria-label*='clear' i]").first.click()
        box.wait_for(state="attached")
    box.set_input_files(str(path))


def _nbest(page: Page) -> str:
    return page.locator("#fusion-nbest").inner_text()


def test_caption_a_clip_then_move_the_audio_weight(server: dict, page: Page, tmp_path: Path) -> None:
    clip = _clip_with_sound(tmp_path)
    _upload(page, clip)
    page.wait_for_function(
        "document.querySelector('#fusion-caption textarea').value.length > 0")
    caption = page.locator("#fusion-caption textarea").input_value()
    assert caption and clip.name in page.locator("#fusion-status").inner_text()
    table = _nbest(page)
    assert caption in table and "audio" in table and "total" in table
    assert page.locator("#fusion-nbest [role=row]").count() == 1 + 3  # header + beam 3
    assert page.locator("#fusion-audio-tags .fusion-bar").count() == 10  # places + objects
    assert page.locator("#fusion-frame-tags .fusion-bar").count() == 5
    assert "present" in page.locator("#fusion-audio-status").inner_text()
    assert page.locator("#fusion-strip img").count() == 1
    # the upload is stored and served from the server's own temp folder
    assert "fusion-serve-" in (page.locator("#fusion-video video").first.get_attribute("src") or "")
    page.screenshot(path=str(tmp_path / "caption.png"), full_page=True)
    # the audio-weight slider re-decodes from the cached features: the scores change
    weight = page.locator("#fusion-audio-weight input[type=number]")
    weight.fill("4")
    weight.press("Enter")
    page.wait_for_function("(before) => document.querySelector('#fusion-nbest').innerText !== before",
                           arg=table)
    page.wait_for_function("document.querySelector('#fusion-status').innerText.includes('audio weight 4')")
    assert "cached features" in page.locator("#fusion-status").inner_text()
    assert page.locator("#fusion-explain").inner_text().startswith("Why these captions")
    page.screenshot(path=str(tmp_path / "audio_weight_4.png"), full_page=True)


def test_broken_and_oversized_uploads_get_one_message_then_an_example_works(server: dict, page: Page, tmp_path: Path) -> None:
    _upload(page, server["broken"])
    error = page.locator("#fusion-error")
    error.wait_for()
    text = error.inner_text()
    assert "broken.mp4:" in text and "\n" not in text.strip() and "Traceback" not in page.content()
    # the previous clip's results are gone: only the error stands beside the broken file's name
    page.wait_for_function("document.querySelector('#fusion-caption textarea').value === ''")
    assert page.locator("#fusion-strip img").count() == 0 and page.locator("#fusion-explain").inner_text().strip() == ""
    assert page.locator("#fusion-nbest [role=row]").count() <= 1  # the header alone
    assert page.locator("#fusion-audio-tags .fusion-bar").count() == 0
    page.screenshot(path=str(tmp_path / "broken.png"))
    big = tmp_path / "huge.mp4"
    big.write_bytes(os.urandom((MAX_UPLOAD_MB + 1) * 2**20))
    _upload(page, big)
    toast = page.get_by_text("exceed the maximum allowed size").first
    toast.wait_for()
    assert "huge.mp4" in toast.inner_text()
    page.screenshot(path=str(tmp_path / "too_large.png"))
    # the page goes on: an example of the run's test split is captioned after the errors
    page.locator("#fusion-example input").click()
    page.get_by_role("option", name="test: c3").click()
    page.wait_for_function("document.querySelector('#fusion-status').innerText.includes('c3.mp4')")
    assert page.locator("#fusion-error").count() == 0


def test_runs_tab_compares_runs_and_shows_the_ablation(server: dict, page: Page, tmp_path: Path) -> None:
    page.get_by_role("tab", name="Runs").click()
    metrics = page.locator("#fusion-metrics")
    page.wait_for_function("document.querySelector('#fusion-metrics').innerText.includes('METEOR')")
    assert "tiny" in metrics.inner_text() and "0.25" in metrics.inner_text()
    page.wait_for_function(
        "document.querySelector('#fusion-ablation-table').innerText.includes('audio_zero')")
    assert ablation_interval(server["ablation"], "METEOR") in page.locator("#fusion-ablation-table").inner_text()
    assert "beam_size" in page.locator("#fusion-decode").inner_text()
    page.locator("#fusion-ablation-plot img").wait_for()
    page.screenshot(path=str(tmp_path / "runs.png"), full_page=True)


def test_serves_no_file_outside_its_folders(server: dict) -> None:
    outside = [server["root"] / "manifest.jsonl", Path("/etc/passwd"), Path(__file__).resolve()]
    for path in outside:
        assert _status(f"{server['url']}gradio_api/file={path}") in (403, 404), path
    assert _status(f"{server['url']}gradio_api/file={server['ablation'] / 'ablation.json'}") == 200


def _wait_status(page: Page, text: str) -> None:
    page.wait_for_function("(t) => document.querySelector('#fusion-status').innerText.includes(t)", arg=text)


def _concept_rows(page: Page) -> list[tuple[str, str]]:
    rows = page.locator("#fusion-concepts .fusion-concept-row")
    return [(rows.nth(i).get_attribute("data-word") or "", rows.nth(i).get_attribute("data-source") or "")
            for i in range(rows.count())]


def test_zeroshot_consensus_caption_bars_and_sliders(server: dict, page: Page, tmp_path: Path) -> None:
    """Last in the module: it leaves the zero-shot model picked."""
    from fusion.zeroshot.explain import explain_caption
    from fusion.zeroshot.pipeline import ZeroShotPipeline

    pipe = ZeroShotPipeline(server["zeroshot"])  # what `fusion caption CLIP --model FOLDER` runs
    page.get_by_role("tab", name="Caption").click()
    page.locator("#fusion-run input").click()
    page.get_by_role("option", name="zeroshot").click()
    page.locator("#fusion-neighbours").wait_for(state="visible")
    assert "captions listed" in page.locator("#fusion-beam").inner_text()
    assert page.locator("#fusion-neighbours input[type=number]").input_value() == "4"

    # a clip with sound: the consensus caption, its linked words' seen and heard bars, the neighbours
    sound = _clip_with_sound(tmp_path)
    _upload(page, sound)
    _wait_status(page, sound.name)
    assert "consensus of 4 corpus clips" in page.locator("#fusion-status").inner_text()
    expected = pipe.caption([sound])[0]
    caption = page.locator("#fusion-caption textarea").input_value()
    assert caption == expected.hypotheses[0].words == ZEROSHOT_SOUND_CAPTION  # the shared caption: sound allowed
    linked = {w["word"] for w in explain_caption(pipe.model, expected.record, expected.hypotheses[0])["words"]}
    rows = _concept_rows(page)
    assert linked and {w for w, _ in rows} == linked and {src for _, src in rows} == {"seen", "heard"}
    values = page.locator("#fusion-concepts .fusion-concept-row .fusion-bar-value").all_inner_texts()
    measured = [v for v in values if v != "n/a"]  # n/a: a word the frames (or the sound) have no class for
    assert measured and page.locator("#fusion-concepts .fusion-concept-bar").count() == len(measured) == len(
        [v for v in values if v[:1] in "+-"])
    explain = page.locator("#fusion-explain").inner_text()
    assert "consensus of the nearest corpus clips" in explain and "of the 4 corpus clips" in explain
    assert "consensus" in page.locator("#fusion-nbest").inner_text()
    assert page.locator("#fusion-nbest [role=row]").count() == 1 + 3  # header + the 3 captions listed
    page.screenshot(path=str(tmp_path / "zeroshot_sound.png"), full_page=True)

    # no audio stream: never a sound claim, no heard bars
    silent = server["root"] / "c4.mp4"
    _upload(page, silent)
    _wait_status(page, silent.name)
    expected = pipe.caption([silent])[0]
    assert page.locator("#fusion-caption textarea").input_value() == expected.hypotheses[0].words
    assert not set(page.locator("#fusion-nbest").inner_text().split()) & SOUND_CLAIM_WORDS
    assert "absent" in page.locator("#fusion-audio-status").inner_text()
    assert all(src == "seen" for _, src in _concept_rows(page))
    assert "no audio stream" in page.locator("#fusion-concepts").inner_text()

    # the neighbours and captions-listed sliders re-decode from the cached features
    neighbours = page.locator("#fusion-neighbours input[type=number]")
    neighbours.fill("2")
    neighbours.press("Enter")
    _wait_status(page, "2 neighbours")
    page.wait_for_function("document.querySelector('#fusion-explain').innerText.includes('of the 2 corpus clips')")
    two = pipe.decode([expected.record], pipe.options.replace(neighbours=2))[0][0].words
    assert page.locator("#fusion-caption textarea").input_value() == two
    listed = page.locator("#fusion-beam input[type=number]")
    listed.fill("1")
    listed.press("Enter")
    _wait_status(page, "1 caption listed")
    assert page.locator("#fusion-nbest [role=row]").count() == 1 + 1
    assert page.locator("#fusion-error").count() == 0
    page.screenshot(path=str(tmp_path / "zeroshot_silent.png"), full_page=True)
