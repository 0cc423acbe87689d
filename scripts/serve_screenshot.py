"""The README's picture of ``fusion serve``: start the page, caption a clip in headless Chromium, save a screenshot.

    python -m scripts.serve_screenshot [--model RUN] [--clip FILE] [--out docs/serve.png]

The README's picture: ``--model runs/demo --clip data/avsynth_demo/videos/avs_test_0011.mp4``
(a held-out clip of the demo's benchmark).

``--model`` defaults to ``runs/demo`` where it exists, else a benchmark-sized S2VT with
random decoder weights and the real pretrained encoders (``scripts/bench_caption.make_run``;
its captions then mean nothing, the tags and the page do). ``--clip`` defaults to the
shared MSR-VTT clip ``video0.mp4`` where present, else the 10-s clip of
``scripts/bench_caption``. Needs Debian's ``chromium`` and the ``serve`` extra.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from fusion.paths import REPO_ROOT, data_dir

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(url: str, proc: subprocess.Popen, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("fusion serve exited before it listened")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"fusion serve did not answer at {url} within {timeout_s:.0f} s")


def screenshot(model: Path, clip: Path, out: Path, beam: int, audio_weight: float) -> str:
    """Serve ``model``, caption ``clip`` in the page, save the caption tab to ``out``; returns the caption."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    # from the runs folder's parent, as a user starts it: paths on the page read runs/NAME
    proc = subprocess.Popen([sys.executable, "-m", "fusion", "serve", "--runs", model.parent.name, "--model",
                             f"{model.parent.name}/{model.name}", "--port", str(port)], env=env, cwd=model.parent.parent)
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_for(url, proc)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1360, "height": 1500})
            page.set_default_timeout(300_000)
            page.goto(url)
            for slider, value in (("#fusion-beam", beam), ("#fusion-audio-weight", audio_weight)):
                box = page.locator(f"{slider} input[type=number]")
                box.fill(str(value))
                box.press("Enter")
            page.locator("#fusion-upload input[type=file]").set_input_files(str(clip))
            page.wait_for_function("document.querySelector('#fusion-status').innerText.startsWith('Captioned')")
            caption = page.locator("#fusion-caption textarea").input_value()
            page.wait_for_timeout(1500)  # the video's first frame
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
            browser.close()
        return caption
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="run folder (default runs/demo, else a random benchmark-sized decoder)")
    p.add_argument("--clip", help="clip to caption (default: MSR-VTT video0.mp4 where present)")
    p.add_argument("--beam", type=int, default=4)
    p.add_argument("--audio-weight", type=float, default=1.0)
    p.add_argument("--out", default=str(REPO_ROOT / "docs" / "serve.png"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        from scripts.bench_caption import make_clip, make_run

        model = Path(args.model) if args.model else REPO_ROOT / "runs" / "demo"
        if args.model is None and not model.is_dir():
            model = make_run(Path(tmp) / "runs" / "random_benchmark_size")
            print("no runs/demo: a benchmark-sized decoder with random weights (real encoders)")
        real = data_dir() / "msrvtt" / "clips" / "video0.mp4"
        clip = Path(args.clip) if args.clip else (real if real.is_file() else make_clip(Path(tmp) / "clip10s.mp4"))
        caption = screenshot(model.resolve(), clip.resolve(), Path(args.out).resolve(), args.beam, args.audio_weight)
    print(f"{clip.name}: {caption}\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
