"""What the page's controls do: each handler takes the controls' values and returns their updates.

Uploads reach the handlers as files Gradio keeps in its own upload folder (the studio's scratch
folder, removed when it stops); a path outside that folder is refused, and the file is read
through the file gate with the upload limit. The examples are named, never given by path.
Every message shown is the one-line message of the error the CLI would print.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipstyler_opt.core.errors import ClipoptError, ConfigError, InputImageError
from clipstyler_opt.core.files import read_bytes
from clipstyler_opt.studio.jobs import FINISHED, Job
from clipstyler_opt.studio.plan import IMAGES, PROMPTS, SEEDS
from clipstyler_opt.studio.service import Studio, Upload
from clipstyler_opt.studio.settings import build_prompt
from clipstyler_opt.studio.uploads import check_upload

__all__ = ["EXAMPLES", "PageActions", "example_names", "status_text"]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"  # present in a source checkout
EXAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def example_names(folder: Path = EXAMPLES) -> list[str]:
    """The example photos offered by name (none outside a source checkout)."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in EXAMPLE_SUFFIXES and p.is_file())


def status_text(job: Job, position: int | None) -> str:
    """One line: the state, the step, the loss terms and the time left.

    Example:
        >>> from pathlib import Path
        >>> job = Job.create(prompt="oil", settings={}, config=None, image=Path("a.png"), stem="a")
        >>> job.status, job.step, job.total, job.losses, job.eta = "running", 3, 10, {"total": 2.5, "tv": 0.25}, 4.0
        >>> status_text(job, 0)
        'running · step 3/10 · total 2.5 · tv 0.25 · 4 s left'
    """
    if job.status == "queued":
        return f"queued · {position - 1 if position else 0} job(s) ahead"
    parts = [job.status, f"step {job.step}/{job.total}"]
    parts += [f"{name} {value:.4g}" for name, value in job.losses.items()]
    if job.status == "running" and job.eta is not None:
        parts.append(f"{job.eta:.0f} s left")
    if job.error and job.status in FINISHED:
        parts.append(job.error)
    return " · ".join(parts)


@dataclass(frozen=True)
class Source:
    """The content image chosen on the page: an upload (Gradio's file) or an example (by name)."""

    upload: str | None = None
    example: str | None = None


class PageActions:
    """The page's handlers over one `Studio` (the queue the API drives too)."""

    def __init__(self, studio: Studio, upload_folder: Path | None = None) -> None:
        self.studio = studio
        folder = upload_folder or os.environ.get("GRADIO_TEMP_DIR")
        self.upload_folder = Path(folder).resolve() if folder else None

    def read_upload(self, path: str, what: str = "image") -> Upload:
        """An uploaded file Gradio holds, read through the gate; refused outside its upload folder."""
        resolved = Path(path).resolve()
        if self.upload_folder is None or self.upload_folder not in resolved.parents:
            raise InputImageError(f"{what}: not an upload of this page")
        data = read_bytes(resolved, limit=self.studio.max_upload_bytes, error=InputImageError, what=what)
        return Upload(resolved.name, data)

    def read_example(self, name: str) -> Upload:
        """An example photo, by one of the offered names."""
        if name not in example_names():
            raise InputImageError(f"no example named {name!r}")
        return Upload(name, read_bytes(EXAMPLES / name, limit=self.studio.max_upload_bytes, error=InputImageError))

    def content(self, source: Source) -> Upload:
        if source.upload:
            return self.read_upload(source.upload)
        if source.example:
            return self.read_example(source.example)
        raise InputImageError("choose an image first (upload one, or pick an example)")

    def show_image(self, upload: str | None, example: str | None) -> tuple[Any, str]:
        """The chosen image decoded through the allow-list for display, or the reason it is refused."""
        from clipstyler_opt.run.images import decode_image_bytes

        try:
            chosen = self.content(Source(upload, example if not upload else None))
            check_upload(chosen.data, chosen.filename, limit=self.studio.max_upload_bytes)
            return decode_image_bytes(chosen.data, chosen.filename).convert("RGB"), ""
        except ClipoptError as exc:
            return None, str(exc)

    @staticmethod
    def spec_of_rows(*values: Any) -> tuple[str, str]:
        """The style spec of the builder's rows (text, weight, text, weight, ...), or its message."""
        rows = [(str(values[n] or ""), float(values[n + 1] or 0)) for n in range(0, len(values), 2)]
        try:
            return build_prompt(rows), ""
        except ConfigError as exc:
            return "", str(exc)

    def settings_of(self, prompt: str, fusion: str, backbone: str, preset: str, strength_on: bool, strength: float,
                    keep_colors: bool, output_size: str, seed: float | None, steps: float | None,
                    size: float | None, preview_every: float | None, extra: str,
                    style_weights: list[float]) -> dict[str, Any]:
        """The settings JSON the page sends, as the API takes it."""
        import json

        settings: dict[str, Any] = {"prompt": prompt, "backbone": backbone}
        if extra and extra.strip():
            try:
                more = json.loads(extra)
            except ValueError as exc:
                raise ConfigError(f"more settings: not JSON ({exc})") from None
            if not isinstance(more, dict):
                raise ConfigError("more settings: must be a JSON object")
            settings.update(more)
        if fusion != "directions":
            settings["fusion"] = fusion
        if preset != "default":
            settings["preset"] = preset
        if strength_on:
            settings["style_strength"] = float(strength)
        if keep_colors:
            settings["keep_colors"] = True
        if output_size and output_size != "working size":
            settings["output_size"] = output_size
        for name, value in (("seed", seed), ("preview_every", preview_every)):
            if value is not None:
                settings[name] = int(value)
        for name, value in (("steps", steps), ("size", size)):  # 0 or empty: the preset's value
            if value:
                settings[name] = int(value)
        if style_weights:
            settings["style_weights"] = style_weights
        return settings

    def start(self, source: Source, settings: dict[str, Any], styles: list[str]) -> tuple[str | None, str]:
        """Queue a job: (its id, "") or (None, the one-line message)."""
        try:
            self.studio.check(settings, len(styles))  # the settings' message first, before reading any image
            job = self.studio.submit(self.content(source), settings,
                                     [self.read_upload(path, "style image") for path in styles])
        except ClipoptError as exc:
            return None, str(exc)
        return job.id, ""

    def cancel(self, job_id: str | None) -> str:
        job = self.studio.queue.cancel(job_id) if job_id else None
        return "" if job is None else "cancelling…" if job.status == "running" else job.status

    def score(self, job_id: str | None) -> str:
        """Queue "score it" for the job's result; what to show."""
        job = self.job(job_id)
        if job is None:
            return "run something first"
        try:
            self.studio.request_score(job)
        except ClipoptError as exc:
            return str(exc)
        return "scoring queued (the scores appear below)"

    def plan(self, job_id: str | None) -> str:
        """Add the job to the experiment plan; what to show."""
        job = self.job(job_id)
        if job is None:
            return "run something first"
        try:
            path, plan = self.studio.add_to_plan(job)
        except ClipoptError as exc:
            return str(exc)
        sizes = ", ".join(f"{len(plan[table][key])} {word}" for (table, key), word
                          in zip((IMAGES, PROMPTS, SEEDS), ("images", "prompts", "seeds"), strict=True))
        return f"added to {path.name} ({sizes}, {len(plan.get('backbones', {}))} backbones)"

    @staticmethod
    def score_rows(job: Job) -> list[list[Any]]:
        """The job's scores as table rows: metric, value (or why not), better (↑ or ↓)."""
        if not job.scores:
            return []
        arrows = {"higher": "↑", "lower": "↓"}
        rows = []
        for name, value in job.scores["metrics"].items():
            shown = f"{value:.4g}" if value is not None else job.scores["unavailable"].get(name, "unavailable")
            rows.append([name, shown, arrows.get(str(job.scores["directions"].get(name)), "")])
        return [["scorer", str(job.scores["scorer"]), ""], *rows]

    def job(self, job_id: str | None) -> Job | None:
        return self.studio.queue.get(job_id) if job_id else None

    def preview_html(self, job: Job) -> str:
        if job.preview is None:
            return "<div class='studio-preview-empty'>the preview appears after the first steps</div>"
        src = html.escape(f"/api/jobs/{job.id}/preview?step={job.preview_step}")
        return f"<img id='studio-preview-img' alt='preview at step {job.preview_step}' src='{src}'>"

    def downloads_html(self, job: Job) -> str:
        if job.output is None:
            return ""
        name = html.escape(job.output.name)
        return (f"<a id='studio-download-png' href='/api/jobs/{job.id}/result' download='{name}'>Download {name}</a>"
                f" · <a id='studio-download-sidecar' href='/api/jobs/{job.id}/sidecar' download='{name}.json'>"
                "its sidecar (JSON)</a>")

    def queue_rows(self) -> list[list[Any]]:
        """The visible queue: every job of the session, newest first."""
        jobs = self.studio.queue.jobs()
        return [[job.id[:8], job.status, job.prompt, job.backbone, f"{job.step}/{job.total}"]
                for job in reversed(jobs)]

    def finished_jobs(self) -> list[Job]:
        """The session's runs with an image (results and kept partial images), oldest first."""
        return [job for job in self.studio.queue.jobs() if job.kind == "stylise" and job.output is not None]

    @staticmethod
    def caption(job: Job) -> str:
        """A result's line in the history: its id, prompt and the settings given."""
        shown = {k: v for k, v in job.settings.items() if k != "prompt"}
        text = f"{job.id[:8]} · {job.prompt} · " + ", ".join(f"{k}={v}" for k, v in shown.items())
        return text + (" (partial)" if job.partial else "")

    def history_html(self) -> str:
        """The session's results as thumbnails (served by the API) with their settings, newest first."""
        cells = []
        for job in reversed(self.finished_jobs()):
            caption = html.escape(self.caption(job))
            cells.append(f"<figure class='studio-thumb'><img src='/api/jobs/{job.id}/result' alt='{caption}'>"
                         f"<figcaption>{caption}</figcaption></figure>")
        return f"<div class='studio-history'>{''.join(cells)}</div>"

    def history_choices(self) -> list[tuple[str, str]]:
        """The results to pick for "run again with changes": (caption, job id), newest first."""
        return [(self.caption(job), job.id) for job in reversed(self.finished_jobs())]
