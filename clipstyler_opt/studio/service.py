"""The studio itself: the offered backbones, the queue, and what the page and the API both ask of it.

`Studio.submit` checks a job's settings and uploads before any work (a bad setting, a refused
path, a bad image: a one-line `ClipoptError`), then queues it. `Studio.command` writes the
`clipopt run` line that makes the same image. The worker (`Studio.run_job`) loads the backbone
once (kept while its model fields stay the same), runs with previews, and saves the result, or
the latest image when cancelled, under a generated name in the output folder.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.files import ReadSet
from clipstyler_opt.core.naming import default_output_path, partial_output_path
from clipstyler_opt.studio.backbones import LoadedBackbones, Offer, base_values, offered_backbones
from clipstyler_opt.studio.jobs import Job, JobQueue
from clipstyler_opt.studio.plan import PLAN_NAME, add_to_plan
from clipstyler_opt.studio.scoring import ResultScorer
from clipstyler_opt.studio.settings import JobSettings, parse_settings
from clipstyler_opt.studio.uploads import check_upload, keep_upload

__all__ = ["DEFAULT_PREVIEW_EVERY", "MAX_STYLE_IMAGES", "Studio", "Upload", "command_line"]

log = logging.getLogger(__name__)
DEFAULT_PREVIEW_EVERY = 5  # steps between previews unless the settings say otherwise
MAX_STYLE_IMAGES = 4


@dataclass(frozen=True)
class Upload:
    """An uploaded file as received: the browser's file name (never used as a path) and the bytes."""

    filename: str
    data: bytes


class Studio:
    """The studio's state: `base` (the server's weights options), the offers, the output folder,
    the upload limit, the loaded backbones and the queue of the one device."""

    def __init__(self, base: StyleConfig, output_dir: Path, *, max_upload_bytes: int, catalog: bool = True,
                 backbones: LoadedBackbones | None = None, scorer: str | None = None) -> None:
        self.base, self.output_dir, self.max_upload_bytes = base, output_dir, max_upload_bytes
        self.offers: list[Offer] = offered_backbones(base, catalog=catalog)
        self.backbones = backbones or LoadedBackbones()
        self.scorer = ResultScorer(base, scorer)
        self.queue = JobQueue(self.run_job, base.device)

    def offer(self, name: str) -> Offer:
        return next(offer for offer in self.offers if offer.name == name)

    def check(self, settings: str | bytes | dict[str, Any], style_count: int = 0) -> JobSettings:
        """The settings checked (ConfigError with the CLI's message otherwise), before any upload is kept."""
        checked = parse_settings(settings, [offer.name for offer in self.offers])
        if style_count > MAX_STYLE_IMAGES:
            raise ConfigError(f"at most {MAX_STYLE_IMAGES} style images, got {style_count}")
        if checked.style_weights and len(checked.style_weights) != style_count:
            raise ConfigError(f"style_weights gives {len(checked.style_weights)} weights for {style_count} "
                              "style images")
        self.config_of(checked)  # with the server's own options too
        return checked

    def config_of(self, checked: JobSettings, style_images: Sequence[Path] = ()) -> StyleConfig:
        """The job's StyleConfig: the server's weights options, the offer, the settings, the style images."""
        weights = checked.style_weights or (1.0,) * len(style_images)
        values: dict[str, Any] = {**base_values(self.base), **self.offer(checked.backbone).fields, **checked.values}
        if style_images:
            values["style_image"] = tuple(f"{path}:{weight:g}" for path, weight in zip(style_images, weights,
                                                                                      strict=True))
        return StyleConfig(**values, explicit_fields=set(values) - {"preset"} | set(checked.values))

    def submit(self, image: Upload, settings: str | bytes | dict[str, Any], style_images: Sequence[Upload] = (),
               ) -> Job:
        """Check and queue a job; a one-line ClipoptError (nothing kept, nothing queued) when the
        settings or an upload are refused."""
        checked = self.check(settings, len(style_images))
        job = Job.create(prompt=checked.prompt, settings={"prompt": checked.prompt, "backbone": checked.backbone,
                                                          **_plain(checked.values)},
                         config=None, image=Path(), stem="", backbone=checked.backbone)
        if checked.style_weights:
            job.settings["style_weights"] = list(checked.style_weights)
        content = check_upload(image.data, image.filename, limit=self.max_upload_bytes)
        styles = [check_upload(upload.data, upload.filename, limit=self.max_upload_bytes) for upload in style_images]
        stored = keep_upload(content, self.output_dir, job.id[:8])  # only once every upload passed
        kept = [keep_upload(style, self.output_dir, f"{job.id[:8]}-style{n}") for n, style in enumerate(styles, 1)]
        job.image, job.stem, job.style_images = stored, content.stem, tuple(kept)
        job.config = self.config_of(checked, kept)
        steps = job.config.steps
        every = DEFAULT_PREVIEW_EVERY if checked.preview_every is None else checked.preview_every
        job.preview_every, job.total = min(every, steps), steps
        return self.queue.submit(job)

    def command(self, job: Job) -> str:
        """The `clipopt run` line that makes this job's image (the same settings hash)."""
        if job.config is None:
            raise ConfigError("the job has no settings yet")
        checked = parse_settings(job.settings, [offer.name for offer in self.offers])
        return command_line(job.image, job.prompt, self.config_of(checked, job.style_images),
                            set(base_values(self.base)) | set(self.offer(job.backbone).fields) | set(checked.values)
                            | ({"style_image"} if job.style_images else set()))

    def request_score(self, job: Job) -> Job:
        """Queue "score it" for a job's result (run one at a time with the runs); the score job."""
        if job.kind != "stylise" or job.output is None:
            raise ConfigError(f"job {job.id} has no result to score yet (status {job.status})")
        task = Job.create(prompt=job.prompt, settings={}, config=None, image=job.image, stem=job.stem,
                          backbone=job.backbone, kind="score", target=job.id)
        return self.queue.submit(task)

    def add_to_plan(self, job: Job) -> tuple[Path, dict[str, Any]]:
        """Add a job's image, prompt, backbone, seed and settings to the output folder's plan file."""
        if job.config is None or job.kind != "stylise":
            raise ConfigError(f"job {job.id} has no settings to add")
        offer = self.offer(job.backbone)
        spec = offer.fields["backbone"][0] if "backbone" in offer.fields else str(job.config.backbone_specs()[0])
        settings = {name: value for name, value in job.settings.items()
                    if name not in ("prompt", "backbone", "seed", "style_weights")}
        path = self.output_dir / PLAN_NAME
        reads = ReadSet([job.image, *job.style_images])
        plan = add_to_plan(path, image=job.image, prompt=job.prompt, backbone=(job.backbone, spec),
                           seed=job.config.seed, settings=settings, reads=reads)
        return path, plan

    def run_job(self, job: Job) -> None:
        """The worker's part: load (or reuse) the backbone, optimise with previews, save; or score."""
        if job.kind == "score":
            self._score(job)
            return
        from clipstyler_opt.run.engine import RunInterrupted
        from clipstyler_opt.run.images import load_image, save_image_exclusive

        assert job.config is not None
        config = job.config
        stylizer = self.backbones.stylizer(config)
        if job.cancel_requested.is_set():
            job.finish("cancelled", error="cancelled before its first step")
            return
        loaded = load_image(job.image)
        output = default_output_path(Path(job.stem), job.prompt, self.output_dir)
        portable = config.portable_metadata
        try:
            result = stylizer.stylize(loaded, job.prompt, progress=job.on_progress, on_frame=job.on_frame,
                                      config=config, frame_every=job.preview_every)
        except RunInterrupted as stop:
            if stop.result is None:
                job.finish("cancelled", error="cancelled before its first step finished")
                return
            written, _ = save_image_exclusive(stop.result.image, partial_output_path(output), stop.result.metadata,
                                              portable=portable)
            job.on_frame(job.step, stop.result.image)
            job.finish("cancelled", output=written, partial=True,
                       error=f"cancelled at step {stop.result.metadata.get('interrupted_at_step')}; "
                             "the latest image is kept")
            return
        written, notes = save_image_exclusive(result.image, output, result.metadata, portable=portable)
        for note in notes:
            log.warning(note)
        job.finish("done", output=written)


    def _score(self, task: Job) -> None:
        target = self.queue.get(task.target or "")
        if target is None or target.output is None:
            task.finish("failed", error="the result to score is gone")
            return
        target.scores = self.scorer.score(target.output)
        task.scores = target.scores
        task.finish("done")


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()}


def _option_words(name: str, value: Any) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag if value else f"--no-{flag[2:]}"]
    if isinstance(value, tuple):
        return [word for item in value for word in (flag, str(item))]
    return [] if value is None else [flag, str(value)]


def command_line(image: Path, prompt: str, config: StyleConfig, given: set[str]) -> str:
    """`clipopt run IMAGE PROMPT` with an option for each field in `given`, quoted for a POSIX shell.

    Example:
        >>> command_line(Path("in/cat.png"), "oil:0.7 | ink:0.3", StyleConfig(steps=2, keep_colors=True),
        ...              {"steps", "keep_colors"})
        "clipopt run in/cat.png 'oil:0.7 | ink:0.3' --steps 2 --keep-colors"
    """
    words = ["clipopt", "run", str(image), prompt]
    for name in StyleConfig.field_names():
        if name in given:
            words += _option_words(name, getattr(config, name))
    return shlex.join(words)
