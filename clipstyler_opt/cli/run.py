"""`clipopt run IMAGE PROMPT`: stylise one image.

Everything that can be checked is checked before any weights load: the input, the output's
name and folder, that the output is not an input, free disk space and the memory estimate.
A default output name is claimed atomically when the image is saved; an explicit -o is
replaced atomically. Ctrl-C or SIGTERM saves the latest image as `<output stem>.partial<ext>`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from click.core import ParameterSource

from clipstyler_opt.core.config import LEGACY_BACKBONE_FIELDS, StyleConfig
from clipstyler_opt.core.errors import EXIT_INTERRUPTED, OutputError
from clipstyler_opt.core.naming import default_output_path, partial_output_path, printable
from clipstyler_opt.core.styles import StyleSpec

if TYPE_CHECKING:
    from clipstyler_opt.core.files import ReadSet
    from clipstyler_opt.run.animation import FrameSink
    from clipstyler_opt.run.engine import Result, RunInterrupted
    from clipstyler_opt.run.images import LoadedImage
from clipstyler_opt.cli.options import config_file_option, split_config, style_options, verbosity, verbosity_options
from clipstyler_opt.cli.progress import StepBar

__all__ = ["input_files", "run"]

log = logging.getLogger("clipstyler_opt")


def input_files(image: Path, config: StyleConfig) -> list[Path | None]:
    """Every file a run reads, none of which an output may overwrite."""
    return [image, *config.files_read()]


def _reads(image: Path, config: StyleConfig) -> ReadSet:
    """The files this run reads: the content image, style images, weights, model configs, the
    --config file, and with --from the recorded output, its sidecar and its animation."""
    from clipstyler_opt.cli.options import CONFIG_FILE_KEY
    from clipstyler_opt.core.files import ReadSet
    from clipstyler_opt.run.images import sidecar_path

    context = click.get_current_context(silent=True)
    config_file = context.meta.get(CONFIG_FILE_KEY) if context is not None else None
    source = context.params.get("from_output") if context is not None else None
    recorded = [source, sidecar_path(source), *(source.with_suffix(s) for s in (".gif", ".webp", ".mp4"))] \
        if isinstance(source, Path) else []
    return ReadSet([*input_files(image, config), config_file, *recorded])


def _preflight(image: Path, loaded: LoadedImage, output: Path, explicit: bool, config: StyleConfig,
               sink: FrameSink) -> None:
    from clipstyler_opt.method.precision import resolve_runtime
    from clipstyler_opt.method.render import output_dimensions
    from clipstyler_opt.method.sizing import working_size
    from clipstyler_opt.run.animation import check_animation_destination
    from clipstyler_opt.run.images import check_writable, sidecar_path
    from clipstyler_opt.run.resources import check_free_space, check_memory, output_bytes_estimate

    check_writable(output)
    destinations = [output, sidecar_path(output)]
    if sink.animation is not None and not (sink.follows_output and not explicit):
        destinations.append(sink.animation.path)
    for target in destinations:  # found only after the work, a folder there would leave a half-written set
        if target.is_dir():
            raise OutputError(f"{printable(str(target))}: is a folder; cannot write the result there")
    reads = _reads(image, config)
    if explicit:  # default names are claimed without ever replacing a file, so they cannot hit an input
        for target in (output, partial_output_path(output)):
            reads.refuse(target, sidecar_path(target))
    if sink.animation is not None and not (sink.follows_output and not explicit):
        check_animation_destination(sink.animation.path, output, reads)
    width, height = working_size(*loaded.rgb.size, config.size)
    wanted = None if config.output_size is None else str(config.output_size)
    final = output_dimensions(loaded.rgb.size, (width, height), wanted)
    frames = config.steps // config.save_every if config.save_every else 0
    check_free_space(output.parent, output_bytes_estimate(*final) + output_bytes_estimate(width, height, frames))
    runtime = resolve_runtime(config.device, config.precision)
    check_memory(config, *loaded.rgb.size, runtime.device, runtime.precision)


def _save(result: Result, path: Path, explicit: bool, portable: bool,
          sink: FrameSink | None = None) -> tuple[Path, list[str]]:
    """Save image, sidecar and animation together; a signal arriving meanwhile is handled afterwards."""
    from clipstyler_opt.batch.signals import interrupts_deferred
    from clipstyler_opt.run.images import save_image, save_image_exclusive

    companion = sink.companion() if sink is not None else None
    companions = [companion] if companion is not None else []
    with interrupts_deferred():
        if explicit:
            written, notes = path, save_image(result.image, path, result.metadata, portable=portable,
                                              companions=companions)
        else:
            written, notes = save_image_exclusive(result.image, path, result.metadata, portable=portable,
                                                  companions=companions)
    return written, notes


def _animation_written(sink: FrameSink, written: Path) -> tuple[Path, int] | None:
    """Where the animation saved with the image at `written` went, and its frame count."""
    companion = sink.companion()
    if companion is None or sink.animation is None:
        return None
    return companion.name_of(written), len(sink.animation)


def _save_partial(stop: RunInterrupted, output: Path, explicit: bool, portable: bool) -> NoReturn:
    """Keep the latest image of an interrupted run, then exit 130."""
    if stop.result is None:  # interrupted before the first step finished: nothing worth keeping
        raise stop
    step = stop.result.metadata.get("interrupted_at_step")
    when = f"interrupted at step {step}"
    if stop.result.metadata.get("render_interrupted"):
        when = "interrupted while rendering at --output-size; the optimised image is kept at the working size"
    try:
        written, _ = _save(stop.result, partial_output_path(output), explicit, portable)
        message = f"{when}; the latest image is {printable(str(written))}"
    except OutputError as exc:
        message = f"{when}; the latest image could not be saved: {printable(str(exc))}"
    click.echo(message, err=True)
    click.get_current_context().exit(EXIT_INTERRUPTED)


def _from_output(ctx: click.Context, source: Path, image: Path | None, prompt: str | None,
                 params: dict[str, Any]) -> tuple[Path, str, StyleConfig]:
    """`--from OUT`: the recorded run, with every option given on the command line (or in
    --config) overriding it."""
    from clipstyler_opt.run.record import read_record
    from clipstyler_opt.run.rerun import rerun_from_record

    given = {name: value for name, value in params.items()
             if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)}
    rerun = rerun_from_record(read_record(source)[0], source, explicit=given)
    recorded_animation = rerun.values.pop("animation", None)
    if recorded_animation:  # a record supplies settings, never destinations: its format, beside the new output
        rerun.values["animation"] = Path(str(recorded_animation)).suffix[1:] or str(recorded_animation)
    for name in rerun.taken:  # e.g. --clip-checkpoint that is the recorded member's file=: in its spec now
        given.pop(name)
    if given.keys() & {"backbone", *LEGACY_BACKBONE_FIELDS}:
        rerun.values.pop("backbone")  # the user names the backbone anew
    if "preset" in given:  # a new preset may set what the recorded one had set
        for name in rerun.preset_applied - given.keys():
            rerun.values.pop(name, None)
    values = {**rerun.values, **given}
    config = StyleConfig(**values, explicit_fields=set(values))  # recorded values are not a preset's to change
    return image or rerun.image, prompt if prompt is not None else rerun.prompt, config


@click.command()
@click.argument("image", type=click.Path(path_type=Path), required=False)
@click.argument("prompt", required=False)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Output file (.png, .jpg, .webp). Default: <image>-<prompt>.png in the current folder, "
                   "numbered rather than overwriting.")
@click.option("--from", "from_output", type=click.Path(path_type=Path, dir_okay=False), metavar="OUT",
              help="Re-run with exactly the settings, prompt, seed and weights recorded in OUT (found by "
                   "sha256); IMAGE, PROMPT and any option given here override them.")
@config_file_option
@style_options
@verbosity_options
@click.pass_context
def run(ctx: click.Context, image: Path | None, prompt: str | None, output: Path | None, from_output: Path | None,
        quiet: bool, verbose: bool, **params: Any) -> None:
    """Stylise IMAGE so that it looks like PROMPT (e.g. "starry night by Vincent van Gogh").

    PROMPT may mix styles with weights: "starry night:0.7 | ukiyo-e woodblock print:0.3"."""
    level = verbosity(quiet, verbose)
    if from_output is not None:
        image, prompt, config = _from_output(ctx, from_output, image, prompt, params)
    else:
        if image is None or prompt is None:
            raise click.UsageError("give IMAGE and PROMPT (or --from OUT to re-run a recorded output)")
        config, _ = split_config(params)
    # Checked before torch is even imported: a bad option or style spec fails in a fraction of a second.
    if prompt.strip():
        StyleSpec.parse(prompt)
    from clipstyler_opt.batch.signals import terminate_as_interrupt
    from clipstyler_opt.run.animation import FrameSink
    from clipstyler_opt.run.engine import RunInterrupted, Stylizer, style_target
    from clipstyler_opt.run.images import frame_writer, load_image
    from clipstyler_opt.run.resources import out_of_memory_as_error

    style_target(prompt, config)  # style images are loaded (and checked) here, before any weights load
    explicit = output is not None
    output = output if output is not None else default_output_path(image, prompt)
    portable = config.portable_metadata
    with terminate_as_interrupt():  # SIGTERM (schedulers) behaves like Ctrl-C
        loaded = load_image(image)  # bad input fails here, before any weights are loaded
        sink = FrameSink(output, config.animation, frame_writer(output, {"prompt": prompt, "seed": config.seed},
                                                                exclusive=not explicit) if config.save_every else None)
        _preflight(image, loaded, output, explicit, config, sink)
        try:
            with out_of_memory_as_error(config):
                stylizer = Stylizer(config)
                bar = StepBar(config.steps, printable(image.name), disable=level == 0)
                try:
                    result = stylizer.stylize(loaded, prompt, progress=bar, on_frame=sink.callback)
                finally:
                    bar.close()
        except RunInterrupted as stop:
            _save_partial(stop, output, explicit, portable)
        written, notes = _save(result, output, explicit, portable, sink)
    animation = _animation_written(sink, written)
    for note in notes:  # the engine has already logged result.warnings
        log.warning(note)
    if level:
        size = f"{result.image.width}x{result.image.height}"
        click.echo(f"wrote {printable(str(written))} ({size}, {len(result.history)} "
                   f"steps in {result.timings['total_s']:.1f}s, {result.precision} on {result.device}, "
                   f"seed {result.seed})")
        if animation is not None:
            click.echo(f"wrote {printable(str(animation[0]))} (animation, {animation[1]} frames)")
    else:  # -q: only what was written, one path a line, for scripts
        click.echo(printable(str(written)))
        if animation is not None:
            click.echo(printable(str(animation[0])))
