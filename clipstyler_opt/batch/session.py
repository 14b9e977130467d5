"""One batch (or sweep) from start to summary: lock, plan, shard, resume scan, run, gather."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipstyler_opt.batch.discovery import SkippedInput, scan_inputs
from clipstyler_opt.batch.distributed import Distributed
from clipstyler_opt.batch.grid import SweepCell
from clipstyler_opt.batch.jobs import Job, Shard, build_jobs, build_sweep_jobs
from clipstyler_opt.batch.lock import BatchLock
from clipstyler_opt.batch.manifest import (
    MANIFEST_NAME,
    ManifestWriteError,
    ManifestWriter,
    journal_path,
    merge_stale_journals,
    read_records,
)
from clipstyler_opt.batch.prompt_weights import check_prompts
from clipstyler_opt.batch.records import FAILED, SKIPPED, Summary, job_record, new_run_id, skipped_input_fields
from clipstyler_opt.batch.resume import DigestCache, scan_jobs
from clipstyler_opt.batch.runner import BatchObserver, JobRunner, RecordingSink, SilentObserver
from clipstyler_opt.batch.safety import InputGuard
from clipstyler_opt.batch.signals import interrupts_deferred, terminate_as_interrupt
from clipstyler_opt.batch.workers import WorkerTask, run_in_workers
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ClipoptError, ConfigError, InputImageError, OutputError
from clipstyler_opt.core.naming import printable
from clipstyler_opt.run.animation import refuse_animation_over_outputs
from clipstyler_opt.run.engine import Stylizer

__all__ = ["BatchPlan", "BatchSettings", "plan_batch", "plan_jobs", "run_batch"]

Record = dict[str, Any]


@dataclass(frozen=True)
class BatchSettings:
    inputs: tuple[str, ...]
    prompts: tuple[str, ...]
    output_dir: Path
    recursive: bool = False
    output_format: str = "png"
    overwrite: bool = False
    shard: Shard | None = None
    cells: tuple[SweepCell, ...] = ()  # a sweep's grid: every cell x every image x every prompt
    workers_per_device: int = 1  # jobs run at once by this process, each in a worker process

    def __post_init__(self) -> None:
        if self.workers_per_device < 1:
            raise ConfigError(f"--workers-per-device must be at least 1, got {self.workers_per_device}")
        check_prompts(self.prompts, [w for cell in self.cells if (w := cell.weights) is not None])


@dataclass(frozen=True)
class BatchPlan:
    jobs: list[Job]  # the whole batch's job list (before sharding), in its canonical order
    skipped_inputs: list[SkippedInput]  # what discovery passed over, and why


def plan_batch(settings: BatchSettings, config: StyleConfig) -> BatchPlan:
    """Discover the inputs and build the job list; InputImageError when there is no image, and
    ConfigError naming the cell when a sweep cell's settings are invalid."""
    for cell in settings.cells:
        cell.apply(config)  # every cell is checked before any input is read
    found = scan_inputs(settings.inputs, recursive=settings.recursive, exclude=settings.output_dir)
    if not found.inputs:
        hint = "" if settings.recursive else " (add --recursive to search subfolders)"
        raise InputImageError(f"no image files found in {printable(', '.join(settings.inputs))}{hint}")
    suffix = "." + settings.output_format.lower()
    refuse_animation_over_outputs(suffix, config.animation)
    if config.animation is not None and Path(config.animation).parent != Path("."):
        raise ConfigError(f"--animation {printable(config.animation)}: a batch writes each job's animation beside "
                          "its output as <output stem>.<format>; give the format (gif, webp, mp4), not a path")
    if settings.cells:
        jobs = build_sweep_jobs(found.inputs, settings.prompts, settings.output_dir, settings.cells, config,
                                suffix=suffix)
    else:
        jobs = build_jobs(found.inputs, settings.prompts, settings.output_dir, suffix=suffix, base_seed=config.seed)
    return BatchPlan(jobs, found.skipped)


def plan_jobs(settings: BatchSettings, config: StyleConfig) -> list[Job]:
    """The whole batch's job list (before sharding), in its canonical order."""
    return plan_batch(settings, config).jobs


def run_batch(settings: BatchSettings, config: StyleConfig, observer: BatchObserver | None = None) -> Summary:
    """Run every job of this process's shard. Returns the summary (the whole batch's on rank 0
    under torchrun, this rank's elsewhere). On Ctrl-C the summary goes to `observer.finished`
    and KeyboardInterrupt is re-raised; so it does before ManifestWriteError (exit 5). Another
    batch using the output folder raises BatchLocked (exit 10) before anything is done."""
    dist = Distributed.from_environment(config.device)
    try:
        return _Batch(settings, config.replace(device=dist.device(config.device)), dist,
                      observer or SilentObserver()).run()
    finally:
        dist.close()


class _Batch:
    def __init__(self, settings: BatchSettings, config: StyleConfig, dist: Distributed,
                 observer: BatchObserver) -> None:
        self.settings, self.config, self.dist, self.observer = settings, config, dist, observer
        self.manifest = settings.output_dir / MANIFEST_NAME
        self.started = time.perf_counter()
        self.lock: BatchLock | None = None
        self.skipped_inputs: list[dict[str, str]] = []

    def _plan_on_main(self) -> tuple[str, BatchPlan] | ClipoptError:
        try:
            self.settings.output_dir.mkdir(parents=True, exist_ok=True)
            self.lock = BatchLock(self.settings.output_dir, self.settings.shard)  # for every rank
            merge_stale_journals(self.settings.output_dir)
            return new_run_id(), plan_batch(self.settings, self.config)
        except ClipoptError as exc:
            return exc
        except OSError as exc:
            return OutputError(f"{printable(str(self.settings.output_dir))}: cannot use as output folder "
                               f"({exc.strerror or exc})")

    def run(self) -> Summary:
        try:
            plan = self.dist.broadcast(self._plan_on_main() if self.dist.is_main else None)
            if isinstance(plan, ClipoptError):
                raise plan  # every rank stops with the same error
            assert plan is not None
            return self._run(*plan)
        finally:
            if self.lock is not None:
                self.lock.release()

    def _run(self, run_id: str, plan: BatchPlan) -> Summary:
        self.skipped_inputs = skipped_input_fields(plan.skipped_inputs)
        shard = self.settings.shard or Shard(0, 1)
        group_jobs = shard.take(plan.jobs)  # this process group's share: all jobs, or one --shard
        mine = Shard(self.dist.rank, self.dist.world_size).take(group_jobs)  # split again between ranks
        guard = InputGuard(dict.fromkeys(job.input for job in plan.jobs), animation=self.config.animation)
        victim = guard.input_at(self.manifest)
        if victim is not None:
            raise OutputError(f"refusing to write {printable(str(self.manifest))}: it is the same file as the "
                              f"input {printable(str(victim))}")
        digests = DigestCache.from_records(read_records(self.manifest))
        scan = scan_jobs(mine, self.config, digests, overwrite=self.settings.overwrite)
        target = journal_path(self.settings.output_dir, run_id, self.dist.rank) if self.dist.active else self.manifest
        records: list[Record] = []
        with ManifestWriter(target, lock=self.dist.active) as writer, terminate_as_interrupt():
            try:
                refused = [(job, job_record(job, FAILED, run=run_id, rank=self.dist.rank, device=None, error=reason))
                           for job in scan.todo
                           if (reason := guard.refusal(job, frames=self.config.save_every > 0)) is not None]
                with interrupts_deferred():
                    known = [job_record(job, SKIPPED, run=run_id, rank=self.dist.rank, device=None,
                                        settings_hash=settings_hash, digest=digest)
                             for job, settings_hash, digest in scan.skipped] + [record for _, record in refused]
                    writer.extend(known)
                    records.extend(known)
                self.observer.started(len(mine), len(scan.skipped))
                for job, record in refused:  # before any weights load
                    self.observer.job_finished(job, record)
                refused_jobs = {job for job, _ in refused}
                todo = [job for job in scan.todo if job not in refused_jobs]
                workers = min(self.settings.workers_per_device, len(todo))
                if workers > 1:
                    task = WorkerTask(self.config, guard, digests, run_id, self.dist.rank)
                    run_in_workers(task, todo, workers, sink=writer, observer=self.observer, records=records)
                else:
                    runner = JobRunner(self.config, lambda config: Stylizer(config), RecordingSink(writer, records),
                                       digests, self.observer, guard, run=run_id, rank=self.dist.rank,
                                       device=self.config.device)
                    for job in todo:
                        runner.run(job)
                return self._finish(writer, run_id, group_jobs, len(mine), records, shard)
            except KeyboardInterrupt:
                self._report_stopped(writer, run_id, len(mine), records, shard)
                raise
            except ManifestWriteError:
                self._report_stopped(None, run_id, len(mine), records, shard)
                raise

    def _scope(self) -> str:
        return f"rank {self.dist.rank} of {self.dist.world_size}" if self.dist.active else ""

    def _details(self, shard: Shard) -> dict[str, Any]:
        return {"shard": str(shard), "world_size": self.dist.world_size,
                "workers_per_device": self.settings.workers_per_device, "cells": len(self.settings.cells),
                "skipped_inputs": self.skipped_inputs}

    def _report_stopped(self, writer: ManifestWriter | None, run_id: str, jobs: int, records: list[Record],
                        shard: Shard) -> None:
        """The summary of a batch stopped early: Ctrl-C, SIGTERM, or (without `writer`) a manifest
        that cannot be written."""
        summary = Summary.from_records(jobs, records, time.perf_counter() - self.started, interrupted=True,
                                       manifest=self.manifest, scope=self._scope(), final=not self.dist.active)
        if writer is not None:
            with interrupts_deferred():
                writer.append(summary.record(run_id, rank=self.dist.rank, **self._details(shard)))
        self.observer.finished(summary)

    def _finish(self, writer: ManifestWriter, run_id: str, group_jobs: list[Job], mine: int,
                records: list[Record], shard: Shard) -> Summary:
        gathered = self.dist.gather(records)
        elapsed = time.perf_counter() - self.started
        details = self._details(shard)
        if not self.dist.active:
            summary = Summary.from_records(mine, records, elapsed, manifest=self.manifest)
            with interrupts_deferred():
                writer.append(summary.record(run_id, **details))
        elif gathered is not None:  # rank 0: one manifest and one summary for every rank
            everything = _merge_in_job_order(group_jobs, gathered)
            summary = Summary.from_records(len(group_jobs), everything, elapsed, manifest=self.manifest)
            with interrupts_deferred(), ManifestWriter(self.manifest) as final:
                final.extend(everything)
                final.append(summary.record(run_id, **details))
        else:
            summary = Summary.from_records(mine, records, elapsed, manifest=self.manifest, scope=self._scope(),
                                           final=False)
        self.dist.barrier()  # rank 0 has written every record: the journals can go
        if self.dist.active:
            writer.path.unlink(missing_ok=True)  # while still holding its lock
            writer.close()
        if self.dist.is_main:
            self.observer.finished(summary)
        return summary


def _merge_in_job_order(jobs: list[Job], gathered: list[list[Record]]) -> list[Record]:
    """All ranks' records in job order, checked to cover `jobs` exactly once."""
    records = [record for rank_records in gathered for record in rank_records]
    counts = Counter((r["prompt"], r["output"]) for r in records)
    expected = {job.key for job in jobs}
    duplicated = sum(1 for count in counts.values() if count > 1)
    missing, unexpected = len(expected - counts.keys()), len(counts.keys() - expected)
    if duplicated or missing or unexpected:
        raise ClipoptError(f"internal error: the ranks returned {duplicated} duplicated, {missing} missing and "
                           f"{unexpected} unexpected jobs")
    order = {job.key: index for index, job in enumerate(jobs)}
    return sorted(records, key=lambda r: order[(r["prompt"], r["output"])])
