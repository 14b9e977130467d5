"""The steps of `clipopt experiment`: each one the existing command, parsed by its own parser
before any work, run in this process, and skipped when what it made is still up to date."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from clipstyler_opt.cli import COMMANDS
from clipstyler_opt.core.errors import ClipoptError, ConfigError
from clipstyler_opt.core.naming import printable

if TYPE_CHECKING:
    from clipstyler_opt.batch import BatchSettings, SweepCell
    from clipstyler_opt.core.config import StyleConfig
    from clipstyler_opt.experiment.commands import Step
    from clipstyler_opt.experiment.plan import Plan

__all__ = ["AFTER_SWEEP", "Experiment", "default_folder", "experiment_lock", "folder_plan", "prepare"]

AFTER_SWEEP = ("eval", "analyze", "study", "report")  # in this order, each reading what the last made
LOCK_SUFFIX = ".experiment"


def default_folder(plan_path: Path) -> Path:
    """A folder named after the plan, beside it: `study/plan.toml` -> `study/plan`.

    Example:
        >>> default_folder(Path("examples/experiment.toml")), default_folder(Path("plan"))
        (PosixPath('examples/experiment'), PosixPath('plan-results'))
    """
    stem = plan_path.with_suffix("")
    return stem if stem != plan_path else plan_path.with_name(plan_path.name + "-results")


def _command(step: str) -> click.Command:
    command = COMMANDS["study" if step == "study" else step].load()
    if step == "study":
        assert isinstance(command, click.Group)
        return command.commands["make"]
    return command


def _arguments(step: Step) -> list[str]:
    """The words the command's own parser reads (after `clipopt NAME`, or `clipopt study make`)."""
    return list(step.argv[2 if step.name == "study" else 1:])


def _parse(plan: Plan, step: Step, stand_in: Path | None = None) -> click.Context:
    """The command's context for `step` (its parser checks every option); a bad option is a
    PlanError at its plan key. `stand_in` replaces the result folder (for checks before it exists)."""
    words = _arguments(step)
    if stand_in is not None:  # the folder is the first argument of eval, analyze, study make and report
        words[0] = os.fspath(stand_in)
    command = _command(step.name)
    try:
        return command.make_context(f"clipopt {step.name}", words)
    except click.BadParameter as exc:
        key = step.sources.get(str(exc.param.name)) if exc.param is not None else None
        raise plan.error(key or (step.name,), exc.format_message()) from None
    except click.UsageError as exc:
        raise plan.error((step.name,), exc.format_message()) from None


@dataclass
class Experiment:
    """A plan made ready to run into `folder`: its steps' command lines, checked, and the sweep's
    batch (settings, base configuration) with every cell checked."""

    plan: Plan
    folder: Path
    steps: dict[str, Step]
    settings: BatchSettings
    config: StyleConfig
    _settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def cell_settings_of(self, cell: SweepCell) -> dict[str, Any]:
        """The settings that make the images of one cell (weights files count by their sha256)."""
        if cell.id not in self._settings:
            self._settings[cell.id] = cell.apply(self.config).output_settings()
        return self._settings[cell.id]

    def cell_settings(self) -> dict[str, dict[str, Any]]:
        """Each planned cell's id -> the settings that make its images."""
        return {cell.id: self.cell_settings_of(cell) for cell in self.settings.cells}

    def run_sweep(self) -> None:
        """`clipopt sweep` itself, in this process."""
        _invoke(self.plan, self.steps["sweep"])

    def run_step(self, name: str) -> None:
        _invoke(self.plan, self.steps[name])

    def product(self, name: str) -> Path:
        """The file a step writes (a step whose file is gone runs again)."""
        from clipstyler_opt.analysis.folder import ANALYSIS_NAME
        from clipstyler_opt.cli.eval import EVAL_NAME
        from clipstyler_opt.cli.report import REPORT_NAME

        step = self.steps[name]
        with _parse(self.plan, step, self.plan.folder) as ctx:
            given = ctx.params.get({"eval": "json_path", "study": "output", "report": "output"}.get(name, ""))
        default = {"eval": EVAL_NAME, "analyze": ANALYSIS_NAME, "report": REPORT_NAME}.get(name)
        return Path(given) if given else self.folder / str(default)


    def step_states(self, record: Mapping[str, Any], manifest: list[dict[str, Any]]
                    ) -> list[tuple[str, str, bool]]:
        """(step, fingerprint now, whether what it made is up to date) for each step after the
        sweep, in order; a step is out of date when anything before it is."""
        from clipstyler_opt.experiment.record import outputs_fingerprint, step_fingerprint

        outputs = outputs_fingerprint(manifest, self.folder)
        states: list[tuple[str, str, bool]] = []
        upstream: list[str] = []
        fresh = True
        for name in AFTER_SWEEP:
            step = self.steps.get(name)
            if step is None:
                continue
            fingerprint = step_fingerprint(outputs, step.words, self.folder, *upstream)
            upstream.append(fingerprint)
            previous = record["steps"].get(name, {})
            fresh = fresh and previous.get("fingerprint") == fingerprint and self.product(name).exists()
            states.append((name, fingerprint, fresh))
        return states


def _invoke(plan: Plan, step: Step) -> None:
    command = _command(step.name)
    with _parse(plan, step) as ctx:
        command.invoke(ctx)


def prepare(plan: Plan, folder: Path, *, shard: str | None = None, workers_per_device: int = 1,
            quiet: bool = False, verbose: bool = False) -> Experiment:
    """Every step's command line for `plan` into `folder`, each parsed by its command, and the
    sweep's cells checked: any problem is a one-line error here, before any work.

    Example (the bundled plan; no weights are loaded):
        >>> from clipstyler_opt.experiment import read_plan
        >>> plan = read_plan(Path("examples/experiment.toml"))  # doctest: +SKIP
        >>> list(prepare(plan, Path("examples/experiment")).steps)  # doctest: +SKIP
        ['sweep', 'eval', 'analyze', 'study', 'report']
    """
    from clipstyler_opt.cli.batch import batch_request
    from clipstyler_opt.cli.sweep import grid_cells
    from clipstyler_opt.experiment.commands import STUDY_FILE, step_words, sweep_words

    sweep = sweep_words(plan, folder, shard=shard, workers_per_device=workers_per_device, quiet=quiet,
                        verbose=verbose)
    steps = {"sweep": sweep}
    where = os.fspath(folder)
    heads: dict[str, tuple[str, ...]] = {"eval": ("eval", where), "analyze": ("analyze", where),
                                         "study": ("study", "make", where), "report": ("report", where)}
    for name in AFTER_SWEEP:
        if plan.step_enabled(name):
            head = heads[name]
            if name == "study" and "output" not in plan.steps[name]:
                head += ("-o", os.fspath(folder / STUDY_FILE))
            if name == "report" and "figures" not in plan.steps.get(name, {}):
                head += ("--figures",)  # every chart and table for a paper, unless the plan says no
            steps[name] = step_words(plan, name, _command(name), head, quiet=quiet, verbose=verbose)
            _parse(plan, steps[name], plan.folder).close()
    with _parse(plan, sweep) as ctx:
        params = dict(ctx.params)
        vary = params.pop("vary")
        try:
            settings, config, _ = batch_request(params, lambda base: grid_cells(vary, base))
        except click.UsageError as exc:
            raise plan.error(("content",), exc.format_message()) from None
        except ConfigError as exc:
            raise ConfigError(f"{plan.path}: {exc}") from None
    return Experiment(plan, folder, steps, settings, config)


@contextmanager
def experiment_lock(folder: Path, shard: str | None) -> Iterator[None]:
    """One `experiment run` (or the shards of one) per folder: the batch lock under its own name
    (a second run exits with the batch lock's code, 10). Under torchrun rank 0 holds it for all.

    Example:
        >>> import tempfile
        >>> with experiment_lock(Path(tempfile.mkdtemp()), None):
        ...     pass
    """
    from clipstyler_opt.batch import LOCK_NAME, BatchLock, Shard

    if os.environ.get("RANK", "0") != "0":
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    lock = BatchLock(folder, Shard.parse(shard) if shard else None, name=LOCK_NAME + LOCK_SUFFIX,
                     holder="clipopt experiment run")
    try:
        yield
    finally:
        lock.release()


def folder_plan(folder: Path) -> tuple[dict[str, Any], Plan]:
    """An experiment folder's record and the plan it keeps (relative paths starting where the
    plan was); ConfigError when the folder is no experiment's.

    Example:
        >>> import tempfile
        >>> folder_plan(Path(tempfile.mkdtemp()))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        clipstyler_opt.core.errors.ConfigError: ...: not an experiment folder (no experiment.json); ...
    """
    from clipstyler_opt.experiment.plan import read_plan
    from clipstyler_opt.experiment.record import PLAN_COPY, RECORD_NAME, read_folder_record

    record = read_folder_record(folder)
    plan_info = record.get("plan") if record is not None else None
    if record is None or not isinstance(plan_info, dict) or not isinstance(plan_info.get("file"), str):
        raise ConfigError(f"{folder}: not an experiment folder (no {RECORD_NAME}); make one with "
                          "clipopt experiment run PLAN.toml")
    return record, read_plan(folder / PLAN_COPY, relative_to=Path(plan_info["file"]).parent)


def say(quiet: bool) -> Callable[[str], None]:
    """A progress line on standard error, unless quiet.

    Example:
        >>> say(True)("eval: up to date")  # quiet: nothing is printed
    """
    def emit(message: str) -> None:
        if not quiet:
            click.echo(printable(message), err=True)
    return emit


def command_line(name: str, arguments: list[str]) -> list[str]:
    """The command as typed: `clipopt experiment NAME ...`.

    Example:
        >>> command_line("run", ["plan.toml", "-q"])
        ['clipopt', 'experiment', 'run', 'plan.toml', '-q']
    """
    return ["clipopt", "experiment", name, *arguments]


def failure_text(exc: BaseException) -> str:
    """How a run ended, for its entry in experiment.json.

    Example:
        >>> failure_text(KeyboardInterrupt()), failure_text(ConfigError("bad"))
        ('interrupted', 'failed: bad')
    """
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"failed: {exc}" if isinstance(exc, ClipoptError) else f"failed: {type(exc).__name__}: {exc}"
