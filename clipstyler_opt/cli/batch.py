"""`clipopt batch INPUT... -p PROMPT -o DIR`: stylise every image with every prompt.

The options and the run of a batch are shared with `clipopt sweep` (`batch_options`,
`run_batch_command`)."""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from clipstyler_opt.cli.options import config_file_option, split_config, style_options, verbosity, verbosity_options
from clipstyler_opt.cli.progress import StepBar, job_label
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import BatchFailures
from clipstyler_opt.core.naming import printable

if TYPE_CHECKING:
    from clipstyler_opt.batch import BatchSettings, Job, Summary, SweepCell
    from clipstyler_opt.run.engine import ProgressCallback

__all__ = ["BarObserver", "LineObserver", "batch", "batch_options", "batch_request", "run_batch_command"]

OUTPUT_CHOICES = ("png", "jpg", "webp")
Record = dict[str, Any]
F = Callable[..., Any]


class BarObserver:
    """An overall bar (jobs, ETA) above the current job's step bar."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.overall: Any = None
        self.step_bar: StepBar | None = None
        self.counts: Counter[str] = Counter()

    def started(self, total: int, skipped: int) -> None:
        from tqdm.auto import tqdm

        self.counts["skipped"] = skipped
        self.overall = tqdm(total=total, initial=skipped, desc="batch", unit="job", position=0, dynamic_ncols=True)
        self._postfix()

    def job_started(self, job: Job) -> ProgressCallback | None:
        self._close_step()
        label = job_label(printable(job.relative), printable(job.prompt), job.cell.id if job.cell else None)
        self.step_bar = StepBar(self.steps, label, disable=False, position=1, leave=False)
        return self.step_bar

    def job_finished(self, job: Job, record: Record) -> None:
        self._close_step()
        self.counts[record["status"]] += 1
        if record["status"] == "failed":
            from tqdm.auto import tqdm

            tqdm.write(f"failed: {printable(job.label)}: {printable(record['error'])}", file=sys.stderr)
        if self.overall is not None:
            self._postfix()
            self.overall.update(1)

    def finished(self, summary: Summary) -> None:
        self._close_step()
        if self.overall is not None:
            self.overall.close()
        _print_summary(summary)

    def _postfix(self) -> None:
        self.overall.set_postfix_str(", ".join(f"{self.counts[k]} {k}" for k in ("done", "skipped", "failed")),
                                     refresh=False)

    def _close_step(self) -> None:
        if self.step_bar is not None:
            self.step_bar.close()
            self.step_bar = None


class LineObserver:
    """One plain line per job: for --quiet, logs, and torchrun's interleaved ranks."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.total = self.position = 0

    def started(self, total: int, skipped: int) -> None:
        self.total, self.position = total, skipped
        if skipped:
            click.echo(f"{self.prefix}{skipped} of {total} jobs already done: skipped")

    def job_started(self, job: Job) -> ProgressCallback | None:
        return None

    def job_finished(self, job: Job, record: Record) -> None:
        self.position += 1
        seconds = (record.get("timings") or {}).get("job_s", 0.0)
        line = f"{self.prefix}[{self.position}/{self.total}] {record['status']} {printable(job.label)} ({seconds:.1f}s)"
        if record["status"] == "failed":
            line += f": {printable(record['error'])}"
        elif record["status"] == "done":  # the file written, for scripts reading -q output
            line += f" -> {printable(str(job.output))}"
        click.echo(line, err=record["status"] == "failed")

    def finished(self, summary: Summary) -> None:
        _print_summary(summary, self.prefix if not summary.final else "")


def _print_summary(summary: Summary, prefix: str = "") -> None:
    for line in summary.lines():
        click.echo(prefix + line)


def batch_options(layout: str) -> Callable[[F], F]:
    """The options of `batch` and `sweep`; `layout` describes the output folder in --help."""
    def decorate(func: F) -> F:
        for option in reversed((
            click.argument("inputs", nargs=-1, metavar="INPUT...", type=click.Path()),
            click.option("-p", "--prompt", "prompt", multiple=True, metavar="TEXT",
                         help="Style prompt; repeat for several. Every image is stylised with every prompt."),
            click.option("--prompts-file", type=click.Path(path_type=Path, dir_okay=False),
                         help="Text file with one prompt per line (blank lines and #-comments ignored)."),
            click.option("-o", "--output", type=click.Path(path_type=Path, file_okay=False), required=True,
                         help=f"Output folder: {layout}, plus DIR/manifest.jsonl."),
            click.option("-r", "--recursive/--no-recursive", default=False,
                         help="Search INPUT folders' subfolders too."),
            click.option("--format", "format", type=click.Choice(OUTPUT_CHOICES), default="png", show_default=True,
                         help="Output image format."),
            click.option("--overwrite/--no-overwrite", default=False,
                         help="Redo jobs whose output already exists with the same settings."),
            click.option("--shard", metavar="I/N",
                         help="Do only shard I of N (0 <= I < N) of the job list, e.g. one per SLURM array task. "
                              "Under torchrun the shard is split again between the ranks."),
            click.option("--workers-per-device", type=click.IntRange(1, 64), default=1, show_default=True,
                         metavar="K", help="Run K jobs at once on the device, in K worker processes with their "
                                           "own backbones (K times the memory; CPU threads are split)."),
            config_file_option,
            style_options,
            verbosity_options,
        )):
            func = option(func)
        return func

    return decorate


def batch_request(params: dict[str, Any], cells: Callable[[StyleConfig], tuple[SweepCell, ...]] | None = None
                  ) -> tuple[BatchSettings, StyleConfig, int]:
    """The batch that the parameters of `batch_options` ask for: its settings, its base
    configuration and the verbosity (0 quiet, 1 normal, 2 verbose); `cells` makes it a sweep.
    Checks the options (a usage error or ConfigError, before any work) and runs nothing."""
    from clipstyler_opt.batch import BatchSettings, Shard, read_prompts_file
    from clipstyler_opt.batch.jobs import unique_prompts

    level = verbosity(params.pop("quiet"), params.pop("verbose"))
    inputs, prompt_file = params.pop("inputs"), params.pop("prompts_file")
    config, extra = split_config(params)
    if not inputs:
        raise click.UsageError("missing INPUT: a folder, an image file or a glob pattern")
    prompts = unique_prompts(list(extra["prompt"]) + (read_prompts_file(prompt_file) if prompt_file else []))
    if not prompts:
        raise click.UsageError("no prompt: give -p TEXT (repeatable) or --prompts-file FILE")
    shard = Shard.parse(extra["shard"]) if extra["shard"] else None
    settings = BatchSettings(inputs=tuple(inputs), prompts=tuple(prompts), output_dir=extra["output"],
                             recursive=extra["recursive"], output_format=extra["format"], overwrite=extra["overwrite"],
                             shard=shard, cells=cells(config) if cells else (),
                             workers_per_device=extra["workers_per_device"])
    return settings, config, level


def run_batch_command(params: dict[str, Any], cells: Callable[[StyleConfig], tuple[SweepCell, ...]] | None = None
                      ) -> None:
    """Run a batch from the parameters of `batch_options`; `cells` makes it a sweep."""
    from clipstyler_opt.batch import launched_by_torchrun, run_batch

    settings, config, level = batch_request(params, cells)
    observer: BarObserver | LineObserver
    if launched_by_torchrun():
        observer = LineObserver(prefix=f"[rank {os.environ.get('RANK', '0')}] ")
    elif level == 0:
        observer = LineObserver()
    else:
        observer = BarObserver(config.steps)
    summary = run_batch(settings, config, observer)
    if summary.final and summary.failed:
        raise BatchFailures(f"{summary.failed} of {summary.jobs} jobs failed (listed in {summary.manifest})")


@click.command()
@batch_options("DIR/<prompt-slug>/<input path below its INPUT>.<format>")
def batch(**params: Any) -> None:
    """Stylise every image in INPUT (folders, files or globs) with every prompt, into DIR.

    A rerun skips jobs already done with the same settings and continues where a stopped
    run ended. Failed jobs are recorded in DIR/manifest.jsonl and the batch goes on; the exit
    code is 8 if any failed. A job never writes over one of its inputs. One batch uses DIR at
    a time (another exits with code 10), except the --shard processes of one batch. Under
    torchrun each rank takes its share of the jobs.
    """
    run_batch_command(params)
