"""The Gradio page of ``fusion serve``: a caption tab and a runs tab.

Thin: every handler calls :class:`fusion.serve.service.CaptionService` or
:mod:`fusion.serve.runs` and renders with :mod:`fusion.serve.views`. A user's mistake (a
file too large, a file that is not media) becomes one line in the page's status box; an
unexpected failure is logged on the server and the page says so in one line, never with a
traceback.
"""

from __future__ import annotations

import html
import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fusion.errors import FusionError
from fusion.serve import runs as runs_mod
from fusion.serve import views
from fusion.serve.service import CaptionService
from fusion.serve.settings import DecodeSettings

logger = logging.getLogger(__name__)

BROWSER_VIDEO = {".mp4", ".webm", ".ogg", ".ogv", ".m4v", ".mov"}  # containers a browser can play
MAX_BEAM = 10
MAX_NEIGHBOURS = 400  # the neighbours slider's top (a zero-shot model in the consensus mode; at least its own)
BEAM_LABEL = "beam size"
LISTED_LABEL = "captions listed (the consensus mode searches no beam)"
CAPTION_OUTPUTS = 13  # what caption() fills; redecode() fills REDECODE_OUTPUTS of them
REDECODE_OUTPUTS = 5


def guarded(fn: Callable[..., tuple[Any, ...]], n_outputs: int, status_index: int,
            cleared: Callable[[], tuple[Any, ...]] | None = None) -> Callable[..., tuple[Any, ...]]:
    """Turn any exception of ``fn`` into one line in the status output (index ``status_index``).

    Args:
        fn: the handler.
        n_outputs: how many outputs it fills.
        status_index: the output that shows the error line.
        cleared: the outputs' values after an error (e.g. a failed upload empties the previous
            clip's results, so nothing stays beside the broken file's name); None leaves them.
    """
    import gradio as gr

    def wrapper(*args: Any) -> tuple[Any, ...]:
        try:
            return fn(*args)
        except FusionError as err:
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
        except Exception as err:  # noqa: BLE001 - the page shows one line; the log keeps the traceback
            logger.exception("request failed")
            message = f"internal error ({type(err).__name__}); the server log has the details"
        out: list[Any] = list(cleared()) if cleared is not None else [gr.skip()] * n_outputs
        out[status_index] = f'<div id="fusion-error">⚠ {html.escape(message)}</div>'
        return tuple(out)

    return wrapper


class Page:
    """The page's handlers, bound to a service, the runs folder and the server's temp folder."""

    def __init__(self, service: CaptionService, runs_dir: Path, workdir: Path) -> None:
        self.service, self.runs_dir, self.workdir = service, runs_dir, workdir

    # -- caption tab ------------------------------------------------------------------------------
    def examples(self, run: str | None) -> dict[str, Path]:
        """Example clips for a run: its test split, then real clips of the shared data."""
        if not run or run not in self.service.runs:
            return {}
        return runs_mod.example_clips(self.service.runs[run])

    def settings(self, run: str, beam: float, neighbours: float, weights: Sequence[float]) -> DecodeSettings:
        """The controls' values as settings: the beam, the neighbours (a consensus-mode run's only), then one
        weight per slider of the run (in order)."""
        names = [slider.scorer for slider in self.service.sliders(run)]
        voting = self.service.defaults(run).neighbours is not None
        return DecodeSettings(int(beam), tuple((n, float(w)) for n, w in zip(names, weights)),
                              int(neighbours) if voting else None)

    @staticmethod
    def _decoded(view: Any, zeroshot: bool) -> tuple[Any, ...]:
        """What a decoding fills: the caption, its concept bars, the n-best table and the explanation."""
        import gradio as gr

        headers, rows = views.nbest_table(view.hypotheses)
        nbest = gr.Dataframe(value=rows, headers=headers, column_widths=views.nbest_widths(len(headers)))
        bars = views.concept_bars(view.nouns[0] if view.nouns else None, view.evidence_available, zeroshot,
                                  view.evidence_scale)
        return (view.caption, bars, nbest,
                views.explanation_markdown(view.hypotheses, view.nouns, view.evidence_available, view.consensus))

    def caption(self, path: str | None, name: str | None, run: str, beam: float, neighbours: float,
                *weights: float) -> tuple[Any, ...]:
        """Analyse a file (cached by content) and decode it: every output of the caption tab."""
        import gradio as gr

        if not path:
            return (gr.skip(),) * CAPTION_OUTPUTS
        analysis = self.service.analyse(run, path, name=name or Path(path).name)
        view = self.service.decode(run, analysis.key, self.settings(run, beam, neighbours, weights))
        suffix = Path(analysis.name).suffix.lower()
        playable = analysis.has_video and suffix in BROWSER_VIDEO
        video = gr.Video(value=path if playable else None, visible=playable)
        audio = gr.Audio(value=path if not analysis.has_video and analysis.audio != "absent" else None,
                         visible=not analysis.has_video)
        note = "" if playable or not analysis.has_video else f" (the browser cannot play {suffix} files; the strip shows the sampled frames)"
        familiarity = views.familiarity_markdown(analysis.familiarity)  # beside the caption, not the run's panel
        mode = (f" (zero-shot: the consensus of {view.settings.neighbours} corpus clips)"
                if view.settings.neighbours is not None else "")
        status = (f"Captioned <b>{html.escape(analysis.name)}</b> ({analysis.duration_s:.1f} s) with run "
                  f"<b>{html.escape(run)}</b>{html.escape(mode)}{html.escape(note)}.")
        caption, bars, nbest, explain = self._decoded(view, self.service.load(run).zeroshot)
        return (status, caption, bars, video, audio, analysis.strip, views.AUDIO_TEXT[analysis.audio],
                views.audio_charts(analysis.tags), views.frame_chart(analysis.tags), nbest, explain, familiarity,
                analysis.key)

    @staticmethod
    def cleared() -> tuple[Any, ...]:
        """The caption tab's outputs with no clip: what a failed upload leaves (then the error line)."""
        import gradio as gr

        return ("", "", "", gr.Video(value=None, visible=True), gr.Audio(value=None, visible=False), None, "", "", "",
                [], "", "", None)

    def caption_upload(self, file: str | None, run: str, beam: float, neighbours: float,
                       *weights: float) -> tuple[Any, ...]:
        """The upload box's handler."""
        name = Path(file).name if file else None
        return self.caption(file, name, run, beam, neighbours, *weights)

    def caption_example(self, example: str | None, run: str, beam: float, neighbours: float,
                        *weights: float) -> tuple[Any, ...]:
        """Caption a picked example: copied into the server's temp folder first, which alone is served."""
        import gradio as gr

        clips = self.examples(run)
        if not example or example not in clips:
            return (gr.skip(),) * CAPTION_OUTPUTS
        source = clips[example]
        target = self.workdir / "examples" / str(abs(hash(str(source)))) / source.name
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        return self.caption(str(target), source.name, run, beam, neighbours, *weights)

    def redecode(self, key: str | None, run: str, beam: float, neighbours: float, *weights: float) -> tuple[Any, ...]:
        """A slider moved: decode the cached features again (no extraction)."""
        import gradio as gr

        if not key:
            return (gr.skip(),) * REDECODE_OUTPUTS
        view = self.service.decode(run, key, self.settings(run, beam, neighbours, weights))
        what = " (the neighbour search and vote)" if view.settings.neighbours is not None else ""
        status = f"Re-decoded from cached features in {view.decode_s * 1000:.0f} ms{what}: {view.settings.describe()}."
        return (status, *self._decoded(view, self.service.load(run).zeroshot))

    def beam_and_neighbours(self, run: str) -> tuple[Any, Any]:
        """The beam slider (a consensus-mode run: the captions listed) and the neighbours slider (shown for
        such a run alone), at the run's own settings."""
        import gradio as gr

        defaults = self.service.defaults(run)
        voting = defaults.neighbours is not None
        beam = gr.Slider(value=defaults.beam_size, label=LISTED_LABEL if voting else BEAM_LABEL)
        neighbours = gr.Slider(value=defaults.neighbours or 2, maximum=max(MAX_NEIGHBOURS, defaults.neighbours or 0),
                               visible=voting)
        return beam, neighbours

    def pick_run(self, run: str) -> tuple[Any, ...]:
        """A run was chosen: its own decode settings on the sliders, its examples in the list."""
        import gradio as gr

        weights = [gr.Slider(value=s.value, minimum=s.minimum, maximum=s.maximum, step=s.step, interactive=s.available,
                             info=s.info) for s in self.service.sliders(run)]
        return (*self.beam_and_neighbours(run), *weights,
                gr.Dropdown(choices=list(self.examples(run)), value=None), self.run_info(run), None)

    def run_info(self, run: str) -> str:
        """What the run was trained on, where its folder records it."""
        return views.model_info_markdown(*self.service.trained_on(run))

    # -- runs tab ---------------------------------------------------------------------------------
    def compare(self, names: list[str] | None, split: str) -> tuple[Any, ...]:
        """Metrics side by side, training / validation loss and validation metric curves, decode configs."""
        import gradio as gr
        import pandas as pd

        found = runs_mod.discover_runs(self.runs_dir)
        chosen = {n: found[n] for n in names or [] if n in found}
        headers, rows = runs_mod.metrics_table(chosen, split or "test")
        train, val = runs_mod.training_curves(chosen)
        loss = pd.DataFrame(train or [], columns=["run", "step", "loss"])
        val_all = pd.DataFrame(val or [], columns=["run", "step", "metric", "value"])
        is_loss = val_all["metric"] == "loss"  # cross-entropy beside METEOR / CIDEr would flatten them: its own axis
        val_loss = val_all[is_loss].rename(columns={"value": "loss"})[["run", "step", "loss"]]
        val_df = val_all[~is_loss]
        val_df = val_df.assign(series=val_df["run"] + ": " + val_df["metric"])
        status = f"{len(chosen)} run(s) compared" if chosen else "pick one or more runs"
        return (status, gr.Dataframe(value=rows, headers=headers), loss, val_loss, val_df,
                runs_mod.decode_configs(chosen))

    def refresh_lists(self) -> tuple[Any, Any]:
        """The run and ablation folders under ``--runs`` as they are now (the first three runs chosen)."""
        import gradio as gr

        names = list(runs_mod.discover_runs(self.runs_dir))
        ablations = list(runs_mod.discover_ablations(self.runs_dir))
        return (gr.Dropdown(choices=names, value=names[:3]),
                gr.Dropdown(choices=ablations, value=ablations[0] if ablations else None))

    def show_ablation(self, name: str | None) -> tuple[Any, ...]:
        """The chosen ablation: its table with paired 95% intervals, and its plot."""
        found = runs_mod.discover_ablations(self.runs_dir)
        if not name or name not in found:
            return "pick an ablation folder", [], None
        report = runs_mod.ablation_report(found[name])
        if report is None:
            return f"{name}/ablation.json is unreadable; run `fusion ablate` again", [], None
        headers, rows = runs_mod.ablation_table(report)
        import gradio as gr

        plot = runs_mod.ablation_plot(found[name], report, self.workdir)
        summary = (f"`{report.get('run', name)}`, split {report.get('split', '?')}: {report.get('n_videos', '?')} videos, "
                   f"{report.get('n_audio_absent', '?')} without an audio stream")
        return summary, gr.Dataframe(value=rows, headers=headers), None if plot is None else str(plot)
