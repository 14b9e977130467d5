"""The studio's page: Gradio Blocks mounted at / in the FastAPI app, driving the API's queue.

Layout: the image (upload or example), the style (a prompt builder whose rows give the spec
"a:0.7 | b:0.3" shown for the command line, the fusion mode, style images with weights), the
settings (backbone, preset, strength, keep colours, output size, seed, steps, size, more
settings as JSON), then the run (live preview, step, losses, time left, cancel), the result
(before/after slider, downloads, "copy as command"), the session's history and the queue.
Nothing is loaded from the internet: Gradio serves its own scripts and fonts.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import FastAPI

from clipstyler_opt.core.presets import PRESET_NAMES
from clipstyler_opt.core.styles import FUSION_MODES
from clipstyler_opt.studio.jobs import FINISHED
from clipstyler_opt.studio.page_actions import PageActions, Source, example_names, status_text
from clipstyler_opt.studio.service import MAX_STYLE_IMAGES, Studio

__all__ = ["CSS", "POLL_SECONDS", "STYLE_ROWS", "build_page", "mount_page"]

STYLE_ROWS = 4
POLL_SECONDS = 0.4
UPLOAD_TYPES = [".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".ppm", ".tga", ".qoi", ".jp2",
                ".avif"]
CSS = """
#studio-preview img, #studio-preview-img { max-width: 100%; height: auto; image-rendering: auto; }
.studio-message { color: #b3261e; min-height: 1.2em; }
.studio-preview-empty { color: #666; padding: 2em 0; }
.studio-history { display: flex; flex-wrap: wrap; gap: 12px; }
.studio-thumb { margin: 0; width: 160px; }
.studio-thumb img { width: 160px; height: 160px; object-fit: contain; background: #f4f4f4; }
.studio-thumb figcaption { font-size: 12px; overflow-wrap: anywhere; }
"""


def _message(elem_id: str) -> Any:
    """A one-line message beside a field (plain text: shown as the CLI prints it)."""
    import gradio as gr

    return gr.HTML("", elem_id=elem_id, elem_classes=["studio-message"])


def _text(message: str) -> str:
    """A message as the HTML of a message field: escaped, never interpreted."""
    return html.escape(message)


def build_page(studio: Studio) -> Any:
    """The page's Blocks, wired to `studio`."""
    import gradio as gr

    actions = PageActions(studio)
    offers = [(offer.label(), offer.name) for offer in studio.offers]
    with gr.Blocks(title="clipopt studio", analytics_enabled=False) as blocks:
        job_id = gr.State(None)
        shown = gr.State({})
        gr.Markdown("## clipopt studio\nText-driven style transfer: a fresh U-Net per image, guided by CLIP.")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                upload = gr.File(label="Image (drop one here)", file_types=UPLOAD_TYPES, type="filepath",
                                 elem_id="studio-upload")
                example = gr.Dropdown(example_names(), value=None, label="…or an example", elem_id="studio-example")
                image = gr.Image(label="Content", interactive=False, type="pil", format="png", height=220,
                                 elem_id="studio-content")
                image_message = _message("studio-image-message")
                with gr.Group():
                    texts, weights = [], []
                    for row in range(STYLE_ROWS):
                        with gr.Row(visible=row < 2) as line:
                            texts.append(gr.Textbox(label=f"Style {row + 1}", scale=3,
                                                    elem_id=f"studio-style-text-{row}",
                                                    value="starry night by Vincent van Gogh" if row == 0 else ""))
                            weights.append(gr.Slider(-2, 2, value=1.0, step=0.05, label="weight", scale=2,
                                                     elem_id=f"studio-style-weight-{row}"))
                        if row == 2:
                            more_rows = line
                        if row == 3:
                            last_row = line
                    add_row = gr.Button("+ style", size="sm", elem_id="studio-add-style")
                spec = gr.Textbox(label="Style spec (as the command line takes it; editable)", buttons=["copy"],
                                  value="starry night by Vincent van Gogh", elem_id="studio-spec")
                spec_message = _message("studio-spec-message")
                fusion = gr.Radio(list(FUSION_MODES), value="directions", label="Fusion", elem_id="studio-fusion")
                with gr.Accordion("Style images", open=False):
                    style_files = [gr.File(label=f"Style image {n + 1}", file_types=UPLOAD_TYPES, type="filepath",
                                           elem_id=f"studio-style-image-{n}") for n in range(2)]
                    style_weights = [gr.Slider(-2, 2, value=1.0, step=0.05, label=f"weight {n + 1}")
                                     for n in range(2)]
            with gr.Column(scale=1, min_width=300):
                backbone = gr.Dropdown(offers, value=offers[0][1], label="Backbone", elem_id="studio-backbone")
                preset = gr.Dropdown(list(PRESET_NAMES), value="default", label="Preset", elem_id="studio-preset")
                with gr.Row():
                    strength_on = gr.Checkbox(label="set style strength", value=False)
                    strength = gr.Slider(0, 1, value=0.5, step=0.05, label="style strength")
                with gr.Row():
                    keep_colors = gr.Checkbox(label="keep colours", value=False, elem_id="studio-keep-colors")
                    output_size = gr.Dropdown(["working size", "full", "1024", "2048"], value="working size",
                                              allow_custom_value=True, label="output size")
                with gr.Row():
                    seed = gr.Number(0, precision=0, label="seed", elem_id="studio-seed")
                    steps = gr.Number(None, precision=0, label="steps (0: the preset's)", elem_id="studio-steps")
                    size = gr.Number(None, precision=0, label="size (0: 512)", elem_id="studio-size")
                    preview_every = gr.Number(5, precision=0, label="preview every", elem_id="studio-preview-every")
                extra = gr.Textbox(label="More settings (JSON: any setting by its name, e.g. {\"crops\": 32})",
                                   elem_id="studio-extra")
                with gr.Row():
                    start = gr.Button("Stylise", variant="primary", elem_id="studio-start")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="studio-cancel")
                start_message = _message("studio-start-message")
                status = gr.Markdown("", elem_id="studio-status")
                preview = gr.HTML("", elem_id="studio-preview")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                slider = gr.ImageSlider(label="Before / after", type="pil", format="png", interactive=False,
                                        elem_id="studio-before-after")
                downloads = gr.HTML("", elem_id="studio-downloads")
                command = gr.Textbox(label="Copy as command", buttons=["copy"], interactive=False,
                                     elem_id="studio-command")
                with gr.Row():
                    score = gr.Button("Score it", size="sm", elem_id="studio-score")
                    plan = gr.Button("Add to experiment plan", size="sm", elem_id="studio-plan")
                result_message = gr.HTML("", elem_id="studio-result-message")
                scores = gr.Dataframe(headers=["metric", "value", "better"], value=[], interactive=False,
                                      label="Scores (clipopt eval)", elem_id="studio-scores")
            with gr.Column(scale=1):
                queue = gr.Dataframe(headers=["job", "status", "prompt", "backbone", "step"], value=[],
                                     interactive=False, label="Queue (one job at a time)", elem_id="studio-queue")
        gr.Markdown("**This session**")
        history = gr.HTML("", elem_id="studio-history")
        with gr.Row():
            selected = gr.Dropdown([], value=None, label="A result of this session", scale=3,
                                   elem_id="studio-history-pick")
            again = gr.Button("Run again with changes", size="sm", scale=1, elem_id="studio-again")

        def on_image(path: str | None, name: str | None) -> tuple[Any, str]:
            shown_image, message = actions.show_image(path, name)
            return shown_image, _text(message)

        upload.change(on_image, [upload, example], [image, image_message])
        example.change(on_image, [upload, example], [image, image_message])

        def on_rows(*values: Any) -> tuple[Any, str]:
            text, message = actions.spec_of_rows(*values)
            return (text if text else gr.skip()), _text(message)

        rows = [item for pair in zip(texts, weights, strict=True) for item in pair]
        for control in rows:
            control.change(on_rows, rows, [spec, spec_message])

        def on_spec(text: str) -> str:
            from clipstyler_opt.core.errors import ConfigError
            from clipstyler_opt.core.styles import StyleSpec

            try:
                StyleSpec.parse(text)
            except ConfigError as exc:
                return _text(str(exc))
            return ""

        spec.change(on_spec, [spec], [spec_message])
        count = gr.State(2)

        def on_add(n: int) -> tuple[int, Any, Any]:
            n = min(n + 1, STYLE_ROWS)
            return n, gr.Row(visible=n >= 3), gr.Row(visible=n >= 4)

        add_row.click(on_add, [count], [count, more_rows, last_row])

        def on_start(path: str | None, name: str | None, text: str, fusion_mode: str, backbone_name: str,
                     preset_name: str, strength_set: bool, strength_value: float, keep: bool, out_size: str,
                     seed_value: float | None, steps_value: float | None, size_value: float | None,
                     every: float | None, more: str, style_a: str | None, style_b: str | None, weight_a: float,
                     weight_b: float) -> tuple[Any, str, str]:
            from clipstyler_opt.core.errors import ClipoptError

            styles = [path for path in (style_a, style_b) if path][:MAX_STYLE_IMAGES]
            chosen = [w for path, w in ((style_a, weight_a), (style_b, weight_b)) if path]
            try:
                settings = actions.settings_of(text, fusion_mode, backbone_name, preset_name, strength_set,
                                               strength_value, keep, out_size, seed_value, steps_value, size_value,
                                               every, more, chosen)
            except ClipoptError as exc:
                return gr.skip(), _text(str(exc)), ""
            new_id, message = actions.start(Source(path, name if not path else None), settings, styles)
            if new_id is None:
                return gr.skip(), _text(message), ""
            return new_id, "", "queued"

        start.click(on_start, [upload, example, spec, fusion, backbone, preset, strength_on, strength, keep_colors,
                               output_size, seed, steps, size, preview_every, extra, *style_files, *style_weights],
                    [job_id, start_message, status])
        cancel.click(lambda current: _text(actions.cancel(current)), [job_id], [start_message])

        def on_tick(current: str | None, seen: dict[str, Any]) -> tuple[Any, ...]:
            rows_now = actions.queue_rows()
            queue_update = rows_now if rows_now != seen.get("queue") else gr.skip()
            job = actions.job(current)
            if job is None:
                return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), queue_update, gr.skip(), gr.skip(), \
                    gr.skip(), {**seen, "queue": rows_now}
            scored = actions.score_rows(job)
            scores_update = scored if scored != seen.get("scores") else gr.skip()
            line = status_text(job, actions.studio.queue.position(job))
            key = (job.id, job.preview_step, job.status)
            preview_update = actions.preview_html(job) if key != seen.get("preview") else gr.skip()
            finished_now = job.status in FINISHED and seen.get("finished") != job.id
            result = (gr.skip(),) * 3
            history_update: Any = gr.skip()
            if finished_now:
                result = (before_after(job), actions.downloads_html(job), actions.studio.command(job))
                history_update = gr.HTML(actions.history_html()), gr.Dropdown(choices=actions.history_choices())
            state = {"queue": rows_now, "preview": key, "finished": job.id if job.status in FINISHED else None,
                     "scores": scored}
            if not isinstance(history_update, tuple):
                history_update = (history_update, gr.skip())
            return (line, preview_update, *result, queue_update, *history_update, scores_update, state)

        def before_after(job: Any) -> Any:
            from clipstyler_opt.run.images import load_image

            if job.output is None:
                return None
            after = load_image(job.output).rgb
            before = load_image(job.image).rgb.resize(after.size)
            return (before, after)

        timer = gr.Timer(POLL_SECONDS)
        timer.tick(on_tick, [job_id, shown], [status, preview, slider, downloads, command, queue, history, selected,
                                              scores, shown], show_progress="hidden")
        score.click(lambda current: _text(actions.score(current)), [job_id], [result_message])
        plan.click(lambda current: _text(actions.plan(current)), [job_id], [result_message])

        def on_again(chosen: str | None) -> tuple[Any, ...]:
            job = actions.job(chosen)
            if job is None:
                return (gr.skip(),) * 9
            settings = dict(job.settings)
            import json

            values = [settings.pop(name, None) for name in ("prompt", "backbone", "preset", "seed", "steps", "size",
                                                             "keep_colors")]
            return (values[0], values[1], values[2] or "default", values[3] or 0, values[4], values[5],
                    bool(values[6]), json.dumps(settings) if settings else "", "")

        again.click(on_again, [selected], [spec, backbone, preset, seed, steps, size, keep_colors, extra,
                                           start_message])
    return blocks


def mount_page(app: FastAPI, studio: Studio) -> FastAPI:
    """Mount the page at / of `app` (Gradio's own routes, uploads limited to --max-upload-mb)."""
    import gradio as gr

    return gr.mount_gradio_app(app, build_page(studio), path="", max_file_size=studio.max_upload_bytes,
                               ssr_mode=False, footer_links=[], css=CSS, theme=gr.themes.Default())
