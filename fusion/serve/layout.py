"""The components of the page and the events that tie them to :class:`fusion.serve.app.Page`.

Every component a test or a user refers to has an ``elem_id`` (``fusion-...``).
"""

from __future__ import annotations

import logging
from typing import Any

from fusion.serve.app import BEAM_LABEL, CAPTION_OUTPUTS, LISTED_LABEL, MAX_BEAM, MAX_NEIGHBOURS, REDECODE_OUTPUTS, Page, guarded
from fusion.serve.runs import discover_ablations, discover_runs
from fusion.serve.views import NBEST_HEADERS, nbest_widths

logger = logging.getLogger(__name__)

INTRO = ("Upload a video or audio file (or pick an example) to caption it with a trained run or a zero-shot "
         "model, and see why the caption won: what SoundNet hears, what the frame CNN sees, each scorer's share "
         "of every n-best caption and the evidence word by word (a zero-shot model in its consensus mode: the "
         "nearest corpus clips that voted). The sliders re-decode from the cached features.")


def _caption_tab(page: Page, default_run: str) -> None:
    """The caption tab: inputs on the left, what the run made of the clip on the right."""
    import gradio as gr

    service = page.service
    settings = service.defaults(default_run)
    voting = settings.neighbours is not None
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            run = gr.Dropdown(service.run_names(), value=default_run, label="run", elem_id="fusion-run")
            upload = gr.File(label="upload a video or audio file", type="filepath", elem_id="fusion-upload")
            example = gr.Dropdown(list(page.examples(default_run)), value=None, label="or pick an example clip",
                                  elem_id="fusion-example")
            beam = gr.Slider(1, MAX_BEAM, value=settings.beam_size, step=1, label=LISTED_LABEL if voting else BEAM_LABEL,
                             elem_id="fusion-beam")
            neighbours = gr.Slider(2, max(MAX_NEIGHBOURS, settings.neighbours or 0), value=settings.neighbours or 2, step=1,
                                   label="neighbours", info="corpus clips that vote on the caption (consensus mode)",
                                   visible=voting, elem_id="fusion-neighbours")
            weights = [gr.Slider(s.minimum, s.maximum, value=s.value, step=s.step, label=s.label, interactive=s.available,
                                 info=s.info, elem_id=f"fusion-{s.scorer}-weight") for s in service.sliders(default_run)]
            info = gr.Markdown(page.run_info(default_run), elem_id="fusion-model-info")
        with gr.Column(scale=2):
            status = gr.HTML("", elem_id="fusion-status")
            caption = gr.Textbox(label="caption", interactive=False, elem_id="fusion-caption")
            familiarity = gr.Markdown("", elem_id="fusion-familiarity")
            concepts = gr.HTML("", elem_id="fusion-concepts")
            with gr.Row():
                video = gr.Video(label="video", interactive=False, elem_id="fusion-video", height=240)
                audio = gr.Audio(label="audio", interactive=False, visible=False, elem_id="fusion-audio")
            strip = gr.Image(label="sampled frames", interactive=False, elem_id="fusion-strip", height=120,
                             format="png")
            audio_state = gr.Markdown("", elem_id="fusion-audio-status")
            audio_tags = gr.HTML("", elem_id="fusion-audio-tags")
            frame_tags = gr.HTML("", elem_id="fusion-frame-tags")
            nbest = gr.Dataframe(headers=NBEST_HEADERS, label="n-best captions: ranking score (total per word), total, and each "
                                 "scorer's weighted share of the total (S2VT: the captioner; consensus: a zero-shot caption's agreement "
                                 "with the nearest corpus clips' captions; empty = scorer off)", interactive=False, elem_id="fusion-nbest",
                                 column_widths=nbest_widths(len(NBEST_HEADERS)), wrap=True)
            explain = gr.Markdown("", elem_id="fusion-explain")
    key = gr.State(None)
    sliders = [beam, neighbours, *weights]
    outputs = [status, caption, concepts, video, audio, strip, audio_state, audio_tags, frame_tags, nbest, explain,
               familiarity, key]
    redecoded = [status, caption, concepts, nbest, explain]
    assert len(outputs) == CAPTION_OUTPUTS and len(redecoded) == REDECODE_OUTPUTS
    upload.upload(guarded(page.caption_upload, len(outputs), 0, page.cleared), [upload, run, *sliders], outputs,
                  concurrency_id="model", show_progress="minimal")
    example.input(guarded(page.caption_example, len(outputs), 0, page.cleared), [example, run, *sliders], outputs,
                  concurrency_id="model", show_progress="minimal")
    redecode = guarded(page.redecode, len(redecoded), 0)
    for slider in sliders:
        slider.change(redecode, [key, run, *sliders], redecoded, concurrency_id="model",
                       trigger_mode="always_last", show_progress="hidden")
    run.input(guarded(page.pick_run, len(sliders) + 3, len(sliders) + 1), [run], [*sliders, example, info, key],
              concurrency_id="model")


def _runs_tab(page: Page, app: Any) -> None:
    """The runs tab; filled when the page loads (``app.load``) and on every change of choice."""
    import gradio as gr

    names = list(discover_runs(page.runs_dir))
    ablations = list(discover_ablations(page.runs_dir))
    with gr.Row():
        chosen = gr.Dropdown(names, value=names[:3], multiselect=True, label="runs to compare", elem_id="fusion-runs")
        split = gr.Dropdown(["test", "val", "train"], value="test", label="evaluation split", elem_id="fusion-split")
    status = gr.Markdown("", elem_id="fusion-runs-status")
    table = gr.Dataframe(label="metrics side by side (from eval/<split>/metrics.json and the best checkpoint)",
                         interactive=False, elem_id="fusion-metrics")
    with gr.Row():
        loss = gr.LinePlot(x="step", y="loss", color="run", title="training loss", elem_id="fusion-loss")
        val_loss = gr.LinePlot(x="step", y="loss", color="run", title="validation loss", elem_id="fusion-val-loss")
    # full width: the legend names run and metric, and keeps its room
    val = gr.LinePlot(x="step", y="value", color="series", title="validation metrics", elem_id="fusion-val")
    decode = gr.JSON(label="decode configuration of each run (config.yaml)", elem_id="fusion-decode")
    gr.Markdown("### Ablations")
    ablation = gr.Dropdown(ablations, value=ablations[0] if ablations else None, label="ablation folder",
                           elem_id="fusion-ablation")
    ablation_info = gr.Markdown("", elem_id="fusion-ablation-info")
    ablation_table = gr.Dataframe(interactive=False, label="conditions (deltas vs full, paired bootstrap 95% CI)",
                                  elem_id="fusion-ablation-table")
    ablation_plot = gr.Image(label="ablation plot", interactive=False, elem_id="fusion-ablation-plot")
    outputs = [status, table, loss, val_loss, val, decode]
    compare = guarded(page.compare, len(outputs), 0)
    chosen.input(compare, [chosen, split], outputs)
    split.input(compare, [chosen, split], outputs)
    show = guarded(page.show_ablation, 3, 0)
    ablation.input(show, [ablation], [ablation_info, ablation_table, ablation_plot])
    # each page load lists the folders as they are now (runs trained since the server started too)
    app.load(page.refresh_lists, None, [chosen, ablation]).then(compare, [chosen, split], outputs).then(
        show, [ablation], [ablation_info, ablation_table, ablation_plot])


def build_app(page: Page, default_run: str) -> Any:
    """The whole page as a ``gradio.Blocks`` (not launched)."""
    import gradio as gr

    with gr.Blocks(title="fusion: caption a video and see why", analytics_enabled=False) as app:
        gr.Markdown("## fusion: caption a video and see why\n" + INTRO)
        with gr.Tabs():
            with gr.Tab("Caption", id="caption"):
                _caption_tab(page, default_run)
            with gr.Tab("Runs", id="runs"):
                _runs_tab(page, app)
    return app
