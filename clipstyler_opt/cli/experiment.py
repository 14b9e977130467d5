"""`clipopt experiment run|status|report`: a whole comparison from one plan file, into one folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from clipstyler_opt.cli.options import verbosity, verbosity_options

if TYPE_CHECKING:
    from clipstyler_opt.cli.experiment_steps import Experiment
    from clipstyler_opt.core.files import ReadSet

__all__ = ["experiment"]

Record = dict[str, Any]


@click.group()
def experiment() -> None:
    """Run an experiment plan (PLAN.toml): sweep, eval, analyze, the study page and the report,
    into one folder that records the plan, the command, the versions and the machine."""


def _reads(plan_files: list[Path]) -> ReadSet:
    from clipstyler_opt.core.files import ReadSet

    return ReadSet(plan_files)


class _Session:
    """One `experiment run` or `experiment report` on a folder: its record, kept up to date on disk."""

    def __init__(self, exp: Experiment, command: str, arguments: list[str], quiet: bool) -> None:
        from clipstyler_opt.cli.experiment_steps import say
        from clipstyler_opt.experiment.record import new_record, read_folder_record

        self.exp, self.folder, self.emit = exp, exp.folder, say(quiet)
        self.reads = _reads([exp.plan.path, *exp.plan.prompt_files])
        self.record: Record = read_folder_record(self.folder) or new_record(exp.plan.name)
        self.command, self.arguments = command, arguments
        self.entry: Record = {}
        self.steps_run: list[str] = []  # the steps whose record this process writes

    def check(self) -> None:
        """Refuse a folder of results that no experiment made, and a plan that would redefine a
        finished cell; before anything is written."""
        from clipstyler_opt.batch import MANIFEST_NAME, read_records
        from clipstyler_opt.core.errors import ConfigError
        from clipstyler_opt.experiment.record import RECORD_NAME, finished_cells, redefined_cell

        records = read_records(self.folder / MANIFEST_NAME)
        if records and not self.record["cells"]:
            raise ConfigError(f"{self.folder} holds results that no experiment made ({MANIFEST_NAME} without "
                              f"{RECORD_NAME}); give the plan another folder (-o)")
        reason = redefined_cell(self.record["cells"], self.exp.cell_settings(), finished_cells(records))
        if reason is not None:
            raise ConfigError(f"{self.exp.plan.path}: {reason}")

    def start(self) -> None:
        import secrets
        import sys

        from clipstyler_opt.cli.experiment_steps import command_line
        from clipstyler_opt.experiment.record import now
        from clipstyler_opt.run.record import package_versions
        from clipstyler_opt.tools.machine import machine_record

        plan = self.exp.plan
        for cell in self.exp.settings.cells:
            self.record["cells"][cell.id] = {**cell.record(), "settings": self.exp.cell_settings_of(cell)}
        self.record["name"] = plan.name
        self.record["plan"] = {"file": os.path.abspath(plan.path), "sha256": plan.sha256}
        self.entry = {"id": f"{now()}-{os.getpid()}-{secrets.token_hex(3)}",
                      "command": command_line(self.command, self.arguments), "argv": list(sys.argv),
                      "cwd": os.getcwd(), "plan_sha256": plan.sha256, "started": now(), "ended": None,
                      "status": "running", "versions": package_versions(),
                      "machine": machine_record(str(plan.settings.get("device", "auto"))), "steps": {}}
        self._copy_plan()
        self.save()

    def _copy_plan(self) -> None:
        from clipstyler_opt.core.files import read_bytes, same_file, write_bytes
        from clipstyler_opt.experiment.record import PLAN_COPY

        copy, text = self.folder / PLAN_COPY, self.exp.plan.text.encode("utf-8")
        if same_file(copy, self.exp.plan.path) or (copy.is_file() and read_bytes(copy) == text):
            return
        write_bytes(copy, text, reads=self.reads)

    def save(self) -> None:
        from clipstyler_opt.experiment.record import (
            merge_run,
            new_record,
            read_folder_record,
            record_lock,
            write_folder_record,
        )

        with record_lock(self.folder):  # the shards of one plan write it side by side
            current = read_folder_record(self.folder) or new_record(self.exp.plan.name)
            self.record = merge_run(current, self.record, self.entry, self.steps_run)
            write_folder_record(self.folder, self.record, self.reads)

    def finish(self, status: str) -> None:
        from clipstyler_opt.experiment.record import now

        self.entry.update(ended=now(), status=status)
        self.save()

    def sweep(self) -> None:
        """The sweep, unless every job of this process is already done (then nothing is touched)."""
        from clipstyler_opt.batch import MANIFEST_NAME, DigestCache, Shard, plan_jobs, read_records, scan_jobs
        from clipstyler_opt.batch.distributed import launched_by_torchrun

        exp = self.exp
        if not launched_by_torchrun():  # under torchrun every rank must take part: always run
            mine = (exp.settings.shard or Shard(0, 1)).take(plan_jobs(exp.settings, exp.config))
            digests = DigestCache.from_records(read_records(self.folder / MANIFEST_NAME))
            todo = len(scan_jobs(mine, exp.config, digests).todo)
            if not todo:
                self.step_done("sweep", f"nothing to do: all {len(mine)} jobs are done")
                return
            self.emit(f"sweep: {todo} of {len(mine)} jobs to do")
        exp.run_sweep()
        self.step_done("sweep", "ran")

    def step_done(self, name: str, what: str) -> None:
        self.entry["steps"][name] = what
        self.emit(f"{name}: {what}")
        self.save()

    def after_sweep(self) -> None:
        """eval, analyze, the study page and the report, each unless still up to date."""
        from clipstyler_opt.batch import MANIFEST_NAME, read_records
        from clipstyler_opt.experiment.record import finished_cells, now

        records = read_records(self.folder / MANIFEST_NAME)
        if not finished_cells(records):
            self.emit("no finished outputs yet: eval, analyze and the report wait for them")
            return
        for name, fingerprint, fresh in self.exp.step_states(self.record, records):
            if fresh:
                self.step_done(name, "up to date")
                continue
            step = self.exp.steps[name]
            self.emit(f"{name}: {step.shown()}")
            self.exp.run_step(name)
            self.record["steps"][name] = {"fingerprint": fingerprint, "finished": now(), "command": step.shown()}
            self.steps_run.append(name)
            self.step_done(name, "ran")


def _run_session(session: _Session, body: Any) -> None:
    from clipstyler_opt.cli.experiment_steps import failure_text

    session.start()
    try:
        body()
    except BaseException as exc:
        session.finish(failure_text(exc))
        raise
    session.finish("done")


@experiment.command("run", short_help="Run a plan: its sweep, then eval, analyze, study page and report.")
@click.argument("plan_path", metavar="PLAN.toml", type=click.Path(path_type=Path, dir_okay=False))
@click.option("-o", "--output", type=click.Path(path_type=Path, file_okay=False),
              help="The experiment folder [default: a folder named after the plan, beside it].")
@click.option("--shard", metavar="I/N",
              help="Run only shard I of N of the jobs, as `clipopt sweep --shard` (eval, analyze and the report "
                   "wait for a run without --shard).")
@click.option("--workers-per-device", type=click.IntRange(1, 64), default=1, show_default=True, metavar="K",
              help="Run K jobs at once on the device, as `clipopt sweep --workers-per-device`.")
@verbosity_options
def run(plan_path: Path, output: Path | None, shard: str | None, workers_per_device: int, quiet: bool,
        verbose: bool) -> None:
    """Run PLAN.toml: the sweep of its cells, then eval, analyze, the study page and the report.

    A rerun does only what is missing: jobs already done are skipped, and a step whose inputs
    have not changed is not run again. A plan with a new value (a backbone, a grid value, a
    seed, an image, a prompt) adds only its jobs. A plan that would give a finished cell other
    settings under the same name is refused (exit 2), and so is a plan with an error, before any
    work. One run uses the folder at a time (another exits with code 10); the --shard processes
    of one plan run side by side. Under torchrun each rank takes its share of the jobs.
    """
    from clipstyler_opt.cli.experiment_steps import default_folder, experiment_lock, prepare
    from clipstyler_opt.core.errors import BatchFailures
    from clipstyler_opt.experiment.plan import read_plan

    verbosity(quiet, verbose)
    plan = read_plan(plan_path)
    folder = output if output is not None else default_folder(plan_path)
    exp = prepare(plan, folder, shard=shard, workers_per_device=workers_per_device, quiet=quiet, verbose=verbose)
    arguments = [os.fspath(plan_path), "-o", os.fspath(folder), *(["--shard", shard] if shard else []),
                 "--workers-per-device", str(workers_per_device), *(["-q"] if quiet else ["-v"] if verbose else [])]
    main_rank = os.environ.get("RANK", "0") == "0"
    with experiment_lock(folder, shard):
        session = _Session(exp, "run", arguments, quiet)
        session.check()  # on every rank of torchrun: a refused plan stops them all before the sweep
        if not main_rank:  # another rank: only its share of the sweep; rank 0 records and reports
            exp.run_sweep()
            return
        failures: list[BatchFailures] = []

        def body() -> None:
            try:
                session.sweep()
            except BatchFailures as exc:  # the finished outputs are still evaluated and reported
                failures.append(exc)
                session.step_done("sweep", f"failed jobs: {exc}")
            if shard is not None:
                again = f"{plan_path}" + (f" -o {output}" if output is not None else "")
                session.emit(f"shard {shard} done; when every shard has finished, run `clipopt experiment run "
                             f"{again}` without --shard for eval, analyze and the report")
            else:
                session.after_sweep()
            if failures:
                raise failures[0]

        _run_session(session, body)


@experiment.command("report", short_help="Eval, analyze, study page and report of a folder's finished outputs.")
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
@verbosity_options
def report(folder: Path, quiet: bool, verbose: bool) -> None:
    """Eval, analyze, the study page and the report of FOLDER's finished outputs, with the plan
    the folder keeps; a step whose inputs have not changed is not run again. No job is run."""
    from clipstyler_opt.cli.experiment_steps import experiment_lock, folder_plan, prepare

    verbosity(quiet, verbose)
    _, plan = folder_plan(folder)
    exp = prepare(plan, folder, quiet=quiet, verbose=verbose)
    with experiment_lock(folder, None):
        session = _Session(exp, "report", [os.fspath(folder), *(["-q"] if quiet else ["-v"] if verbose else [])],
                           quiet)
        _run_session(session, session.after_sweep)


def _file_sha256(path: Path) -> str | None:
    import hashlib

    from clipstyler_opt.core.errors import ClipoptError
    from clipstyler_opt.core.files import read_bytes

    try:
        return hashlib.sha256(read_bytes(path, limit=1 << 20)).hexdigest()
    except (ClipoptError, OSError):
        return None


@experiment.command("status", short_help="Jobs done per cell, and whether each step is up to date.")
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
def status(folder: Path) -> None:
    """What FOLDER's plan has done: jobs done, failed and to do in each cell, each step up to
    date or not, and the last run. Reads only; works while a run is going."""
    from clipstyler_opt.batch import MANIFEST_NAME, DigestCache, plan_jobs, read_records, scan_jobs
    from clipstyler_opt.cli.experiment_steps import folder_plan, prepare
    from clipstyler_opt.core.naming import printable
    from clipstyler_opt.experiment.status import status_lines

    verbosity(False, False)
    record, plan = folder_plan(folder)
    exp = prepare(plan, folder, quiet=True)
    manifest = read_records(folder / MANIFEST_NAME)
    jobs = plan_jobs(exp.settings, exp.config)
    scan = scan_jobs(jobs, exp.config, DigestCache.from_records(manifest))
    done = {job.output_name for job, _, _ in scan.skipped}
    latest = {str(r.get("output")): str(r.get("status")) for r in manifest if r.get("record") == "job"}
    cells = [(cell.id, [job.output_name for job in jobs if job.cell == cell]) for cell in exp.settings.cells]
    steps = [(name, fresh, name in record["steps"]) for name, _, fresh in exp.step_states(record, manifest)]
    for line in status_lines(record, _file_sha256(Path(record["plan"]["file"])), cells, done, latest, steps):
        click.echo(printable(line))
