"""`clipopt run IMAGE PROMPT`: stylise one image.

Everything that can be checked is checked before any weights load: the input, the output's
name and folder, that the output is not an input, free disk space and the memory estimate.
A default output name is claimed atomically when the image is saved; an explicit -o is
replaced atomically. Ctrl-C or SIGTERM saves the latest image as `<output stem>.partial<ext>`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NoReturn

import click

from ..batch.signals import interrupts_deferred, terminate_as_interrupt
from ..config import StyleConfig
from ..engine import Result, RunInterrupted, Stylizer, working_size
from ..errors import EXIT_INTERRUPTED, OutputError
from ..imageio import (LoadedImage, check_writable, frame_writer, load_image, refuse_overwriting_inputs,
                       save_image, save_image_exclusive)
from ..naming import default_output_path, partial_output_path, printable
from ..precision import resolve_runtime
from ..resources import check_free_space, check_memory, out_of_memory_as_error, output_bytes_estimate
from .options import config_file_option, split_config, style_options, verbosity, verbosity_options
from .progress import StepBar

__all__ = ["run", "input_files"]

log = logging.getLogger("clipstyler_opt")


def input_files(image: Path, config: StyleConfig) -> list[Path | None]:
    """Every file a run reads, none of which an output may overwrite."""
    specs = config.backbone_specs()
    return [image, config.vgg_checkpoint, *config.clip_model_config, *(spec.file for spec in specs)]


def _preflight(image: Path, loaded: LoadedImage, output: Path, explicit: bool, config: StyleConfig) -> None:
    check_writable(output)
    if explicit:  # default names are claimed without ever replacing a file, so they cannot hit an input
        for target in (output, partial_output_path(output)):
            refuse_overwriting_inputs(target, input_files(image, config))
    width, height = working_size(*loaded.rgb.size, config.size)
    frames = config.steps // config.save_every if config.save_every else 0
    check_free_space(output.parent, output_bytes_estimate(width, height, 1 + frames))
    runtime = resolve_runtime(config.device, config.precision)
    check_memory(config, *loaded.rgb.size, runtime.device, runtime.precision)


def _save(result: Result, path: Path, explicit: bool, portable: bool) -> tuple[Path, list[str]]:
    """Save image and sidecar together; a signal arriving meanwhile is handled afterwards."""
    with interrupts_deferred():
        if explicit:
            return path, save_image(result.image, path, result.metadata, portable=portable)
        return save_image_exclusive(result.image, path, result.metadata, portable=portable)


def _save_partial(stop: RunInterrupted, output: Path, explicit: bool, portable: bool) -> NoReturn:
    """Keep the latest image of an interrupted run, then exit 130."""
    if stop.result is None:  # interrupted before the first step finished: nothing worth keeping
        raise stop
    step = stop.result.metadata.get("interrupted_at_step")
    try:
        written, _ = _save(stop.result, partial_output_path(output), explicit, portable)
        message = f"interrupted at step {step}; the latest image is {printable(str(written))}"
    except OutputError as exc:
        message = f"interrupted at step {step}; the latest image could not be saved: {printable(str(exc))}"
    click.echo(message, err=True)
    click.get_current_context().exit(EXIT_INTERRUPTED)


@click.command()
@click.argument("image", type=click.Path(path_type=Path))
@click.argument("prompt")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Output file (.png, .jpg, .webp). Default: <image>-<prompt>.png in the current folder, "
                   "numbered rather than overwriting.")
@config_file_option
@style_options
@verbosity_options
def run(image: Path, prompt: str, output: Path | None, quiet: bool, verbose: bool, **params: Any) -> None:
    """Stylise IMAGE so that it looks like PROMPT (e.g. "starry night by Vincent van Gogh")."""
    level = verbosity(quiet, verbose)
    config, _ = split_config(params)
    explicit = output is not None
    output = output if output is not None else default_output_path(image, prompt)
    portable = config.portable_metadata
    with terminate_as_interrupt():  # SIGTERM (schedulers) behaves like Ctrl-C
        loaded = load_image(image)  # bad input fails here, before any weights are loaded
        _preflight(image, loaded, output, explicit, config)
        frames = (frame_writer(output, {"prompt": prompt, "seed": config.seed}, exclusive=not explicit)
                  if config.save_every else None)
        try:
            with out_of_memory_as_error(config):
                stylizer = Stylizer(config)
                bar = StepBar(config.steps, printable(image.name), disable=level == 0)
                try:
                    result = stylizer.stylize(loaded, prompt, progress=bar, on_frame=frames)
                finally:
                    bar.close()
        except RunInterrupted as stop:
            _save_partial(stop, output, explicit, portable)
        written, notes = _save(result, output, explicit, portable)
    for note in notes:  # the engine has already logged result.warnings
        log.warning(note)
    if level:
        click.echo(f"wrote {printable(str(written))} ({result.image.width}x{result.image.height}, {config.steps} "
                   f"steps in {result.timings['total_s']:.1f}s, {result.precision} on {result.device}, "
                   f"seed {result.seed})")
