"""`clipopt run IMAGE PROMPT`: stylise one image."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from ..engine import Stylizer
from ..imageio import frame_writer, load_image, output_format, write_atomic
from ..naming import default_output_path
from .options import config_file_option, split_config, style_options, verbosity, verbosity_options
from .progress import StepBar

__all__ = ["run", "check_writable"]

log = logging.getLogger("clipstyler_opt")


def check_writable(path: Path) -> None:
    """Fail before hours of work, not after: the extension is known and the folder takes files."""
    output_format(path)
    write_atomic(path.parent / f".{path.name}.probe", lambda fh: None)
    (path.parent / f".{path.name}.probe").unlink()


@click.command()
@click.argument("image", type=click.Path(path_type=Path))
@click.argument("prompt")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Output file (.png, .jpg, .webp). Default: <image>-<prompt>.png in the current folder.")
@config_file_option
@style_options
@verbosity_options
def run(image: Path, prompt: str, output: Path | None, quiet: bool, verbose: bool, **params: Any) -> None:
    """Stylise IMAGE so that it looks like PROMPT (e.g. "starry night by Vincent van Gogh")."""
    level = verbosity(quiet, verbose)
    config, _ = split_config(params)
    loaded = load_image(image)  # bad input fails here, before any weights are loaded
    output = output or default_output_path(image, prompt)
    check_writable(output)
    stylizer = Stylizer(config)
    bar = StepBar(config.steps, image.name, disable=level == 0)
    frames = frame_writer(output, {"prompt": prompt, "seed": config.seed}) if config.save_every else None
    try:
        result = stylizer.stylize(loaded, prompt, progress=bar, on_frame=frames)
    finally:
        bar.close()
    for note in result.save(output):  # the engine has already logged result.warnings
        log.warning(note)
    if level:
        click.echo(f"wrote {output} ({result.image.width}x{result.image.height}, {config.steps} steps in "
                   f"{result.timings['total_s']:.1f}s, {result.precision} on {result.device}, seed {result.seed})")
