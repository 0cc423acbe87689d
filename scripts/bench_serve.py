"""Benchmark: the web page's two requests, through the page's own request functions.

* a warm caption request for a 10-s clip (run loaded, clip not yet seen: decode, both
  encoders, tags, frame strip, beam search, rendering), goal < 1.5 s on 2 cores;
* a slider change (re-decode from the cached features and re-render), goal < 0.3 s;
* the same clip uploaded again (content-hash cache hit).

The baseline, measured in the same run, is ``CaptionPipeline.caption`` (what ``fusion
caption`` does per file, warm), and for the slider the beam search alone: the ratios show what
the page adds. The requests are timed round by round, interleaved, so that the shared
machine's changing load hits each alike. The clip and the
model are those of ``scripts/bench_caption.py`` (``--model RUN``, default ``runs/demo``
when it exists, else a benchmark-sized S2VT with random decoder weights and the real
pretrained encoders).

    python -m scripts.bench_serve [--model RUN] [--repeat 5] [--threads 1 2] [--out results]

Writes ``results/bench_serve.json`` and ``.md``.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from fusion.io import atomic_write_json, atomic_write_text
from scripts.bench_caption import bench_args, rows_per_thread_count

GOAL_CAPTION_S, GOAL_SLIDER_S = 1.5, 0.3


def _medians(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds of each callable, the callables interleaved round by round so that a change
    of the machine's load hits each of them alike (this machine is shared)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def measure(model: Path, clip: Path, repeat: int, workdir: Path) -> dict:
    """Median seconds of each request, the run loaded once (as the server does at start)."""
    from fusion.pipeline import CaptionPipeline
    from fusion.serve import CaptionService
    from fusion.serve.app import Page

    service = CaptionService({"run": model})
    page = Page(service, model.parent, workdir)
    settings = service.defaults("run")
    beam, lm_w, audio_w = settings.beam_size, settings.weight("lm"), settings.weight("audio")
    out = page.caption_upload(str(clip), "run", beam, lm_w, audio_w)  # warm-up: allocator, kernels, first decoder
    if str(out[0]).startswith('<div id="fusion-error"') or not out[1]:
        raise SystemExit(f"the caption request failed: {out[0]}")
    key = out[-1]

    def fresh_upload() -> None:
        service.clear_cache()  # as if the clip had never been seen
        page.caption_upload(str(clip), "run", beam, lm_w, audio_w)

    weights = iter([audio_w + 1.0, audio_w] * repeat)
    unseen = iter([audio_w + 2.0 + 0.01 * i for i in range(repeat)])
    page.redecode(key, "run", beam, lm_w, audio_w + 1.0)  # the new setting's decoder, built once
    decoder, record = service.load("run").decoder(settings), service.cached(key).record
    pipeline = CaptionPipeline(model)
    pipeline.caption([clip])
    t = _medians({
        "caption": fresh_upload,
        "baseline": lambda: pipeline.caption([clip]),
        "cached": lambda: page.caption_upload(str(clip), "run", beam, lm_w, audio_w),
        "slider": lambda: page.redecode(key, "run", beam, lm_w, next(weights)),
        "search": lambda: decoder.decode([record]),  # the beam search alone: the slider's floor
        "new_setting": lambda: page.redecode(key, "run", beam, lm_w, next(unseen)),  # a decoder built first
    }, repeat)
    caption_s, baseline_s, cached_s = t["caption"], t["baseline"], t["cached"]
    slider_s, search_s, new_setting_s = t["slider"], t["search"], t["new_setting"]
    return {"caption_request_s": round(caption_s, 3), "same_clip_again_s": round(cached_s, 3),
            "slider_change_s": round(slider_s, 4), "slider_new_setting_s": round(new_setting_s, 4),
            "beam_search_alone_s": round(search_s, 4), "slider_vs_beam_search": round(slider_s / search_s, 3),
            "baseline_fusion_caption_s": round(baseline_s, 3),
            "caption_request_vs_baseline": round(caption_s / baseline_s, 3),
            "beam_size": beam, "frames_per_clip": pipeline.run.extract_config.frames_per_clip,
            "caption": out[1]}


def main(argv: list[str] | None = None) -> int:
    args = bench_args(__doc__, argv)
    rows = rows_per_thread_count(args, lambda model, clip, threads, tmp: measure(model, clip, args.repeat, tmp))
    load = os.getloadavg()[0]
    out = Path(args.out)
    atomic_write_json(out / "bench_serve.json", {"load_avg_1min_at_end": round(load, 2), "cpu_count": os.cpu_count(),
                                                 "goals_s": {"caption_request": GOAL_CAPTION_S,
                                                             "slider_change": GOAL_SLIDER_S},
                                                 "results": rows})
    lines = ["# fusion serve: request times on a 10-s clip", "",
             f"Model: {rows[0]['model']}; beam {rows[0]['beam_size']}; {rows[0]['frames_per_clip']} frames per clip; "
             f"{os.cpu_count()} CPUs, 1-min load average {load:.1f} at the end; median of {args.repeat}. Measured "
             "through the page's request functions (fusion.serve.app.Page); baseline: CaptionPipeline.caption "
             "(fusion caption, warm) in the same process; for the slider, the beam search alone.", "",
             f"| threads | caption request (s; goal < {GOAL_CAPTION_S}) | baseline fusion caption (s) | ratio "
             f"| slider change (s; goal < {GOAL_SLIDER_S}) | beam search alone (s) | ratio | slider, new setting (s) "
             "| same clip again (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['threads']} | {r['caption_request_s']:.2f} | {r['baseline_fusion_caption_s']:.2f} "
              f"| {r['caption_request_vs_baseline']:.2f} | {r['slider_change_s']:.3f} | {r['beam_search_alone_s']:.3f} "
              f"| {r['slider_vs_beam_search']:.2f} | {r['slider_new_setting_s']:.3f} "
              f"| {r['same_clip_again_s']:.3f} |" for r in rows]
    atomic_write_text(out / "bench_serve.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
