"""Running jobs one by one: a failure is recorded and the batch goes on; Ctrl-C is not a failure.

A runner keeps one `Stylizer` at a time: jobs whose settings need other backbones (the cells
of a sweep) get a new one, and the previous one is released first.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

import torch

from clipstyler_opt.batch.jobs import Job, backbone_key
from clipstyler_opt.batch.records import DONE, FAILED, Summary, job_record
from clipstyler_opt.batch.resume import DigestCache, InputDigest
from clipstyler_opt.batch.safety import InputGuard
from clipstyler_opt.batch.signals import interrupts_deferred
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ClipoptError, OutputError
from clipstyler_opt.core.naming import printable
from clipstyler_opt.run.animation import FrameSink
from clipstyler_opt.run.engine import ProgressCallback, Result, Stylizer
from clipstyler_opt.run.images import frame_writer, load_image, sidecar_path
from clipstyler_opt.run.resources import is_out_of_memory

__all__ = ["BatchObserver", "JobRunner", "RecordSink", "RecordingSink", "SilentObserver"]

log = logging.getLogger(__name__)

Record = dict[str, Any]


class BatchObserver(Protocol):
    """What the batch reports as it goes (the CLI draws bars or prints lines from this)."""

    def started(self, total: int, skipped: int) -> None: ...

    def job_started(self, job: Job) -> ProgressCallback | None: ...

    def job_finished(self, job: Job, record: Record) -> None: ...

    def finished(self, summary: Summary) -> None: ...


class RecordSink(Protocol):
    """Where job records go: the manifest, a rank's journal, or a worker's pipe to its parent."""

    def append(self, record: Record) -> None: ...


class RecordingSink:
    """Appends to `sink` and keeps each record in `records` in the same step, so that a Ctrl-C
    raised just after a job's record is written cannot leave that job out of the summary."""

    def __init__(self, sink: RecordSink, records: list[Record]) -> None:
        self.sink, self.records = sink, records

    def append(self, record: Record) -> None:
        self.sink.append(record)
        self.records.append(record)


class SilentObserver:
    def started(self, total: int, skipped: int) -> None:
        pass

    def job_started(self, job: Job) -> ProgressCallback | None:
        return None

    def job_finished(self, job: Job, record: Record) -> None:
        pass

    def finished(self, summary: Summary) -> None:
        pass


def _error_message(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, ClipoptError) else f"{type(exc).__name__}: {exc}"


class JobRunner:
    """Runs jobs on a lazily created `Stylizer` and appends one record per job. `config` is the
    batch's settings; a job's sweep cell is applied on top of them."""

    def __init__(self, config: StyleConfig, make_stylizer: Callable[[StyleConfig], Stylizer], writer: RecordSink,
                 digests: DigestCache, observer: BatchObserver, guard: InputGuard, *, run: str, rank: int,
                 device: str) -> None:
        self.config = config
        self._make_stylizer = make_stylizer
        self._stylizer: Stylizer | None = None
        self._loaded_for: tuple[object, ...] | None = None  # backbone_key of the Stylizer's settings
        self._digest: InputDigest | None = None  # the current job's input, once read
        self.writer, self.digests, self.observer, self.guard = writer, digests, observer, guard
        self.run_id, self.rank, self.device = run, rank, device
        self._warned: set[str] = set()

    def stylizer_for(self, config: StyleConfig) -> Stylizer:
        """A Stylizer with the backbones `config` needs: the current one when it has them."""
        key = backbone_key(config)
        if self._stylizer is None or key != self._loaded_for:
            if self._stylizer is not None:  # one set of backbones in memory at a time
                self._stylizer = self._loaded_for = None
                gc.collect()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            self._stylizer = self._make_stylizer(config)  # backbones load here, only if a job needs them
            self._loaded_for = key
        return self._stylizer

    def run(self, job: Job) -> Record:
        """Run one job and append its record. A job counts as done exactly when its image and
        sidecar are saved; a manifest that cannot be written stops the batch (ManifestWriteError)."""
        stylizer = self.stylizer_for(job.config(self.config))  # a failure to load weights ends the batch
        started = time.perf_counter()
        self._digest = None
        notes: list[str] = []
        try:
            result = self._stylize(job, stylizer)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # isolate: unreadable input, CUDA out of memory, non-finite loss, ...
            record = self._failed(job, exc, started)
            self.writer.append(record)
        else:
            with interrupts_deferred():  # the image, its sidecar and its record go together
                try:
                    notes = self._save(job, result)
                except Exception as exc:  # disk full, folder not writable, an input in the way
                    record = self._failed(job, exc, started)
                else:
                    timings = {**result.timings, "job_s": time.perf_counter() - started}
                    record = job_record(job, DONE, run=self.run_id, rank=self.rank, device=result.device,
                                        settings_hash=result.metadata.get("settings_hash"), digest=self._digest,
                                        timings=timings)
                self.writer.append(record)
        self._warn_once(notes)  # the engine has already logged result.warnings
        self.observer.job_finished(job, record)
        return record

    def _stylize(self, job: Job, stylizer: Stylizer) -> Result:
        info = os.stat(job.input)
        loaded = load_image(job.input)  # opens nothing but a regular file
        if loaded.sha256 is not None:
            self._digest = InputDigest(loaded.sha256, info.st_size, info.st_mtime_ns)
            self.digests.remember(job.input, self._digest)
        progress = self.observer.job_started(job)
        self._frames = self._frame_sink(job, stylizer)
        # A varied seed is already in the job's own seed (derived from its cell's seed), as in resume.py.
        cell_values = {name: value for name, value in job.cell.settings if name != "seed"} if job.cell else {}
        return stylizer.stylize(loaded, job.run_prompt, seed=job.seed, progress=progress,
                                on_frame=self._frames.callback, record_extra=job.extra_metadata(), **cell_values)

    def _save(self, job: Job, result: Result) -> list[str]:
        refusal = self.guard.refusal(job)  # checked again: links can appear while a job runs
        if refusal is not None:
            raise OutputError(refusal)
        sidecar_path(job.output).unlink(missing_ok=True)  # never leave a stale sidecar beside a new image
        notes = result.save(job.output)
        animation = self._frames.finish()
        if animation:  # a file written, not a warning
            log.info("%s: wrote %s", printable(job.label), printable(animation))
        return notes

    def _failed(self, job: Job, exc: BaseException, started: float) -> Record:
        if is_out_of_memory(exc):
            torch.cuda.empty_cache()
        log.debug("job %s failed", printable(job.label), exc_info=exc)
        device = str(self._stylizer.runtime.device) if self._stylizer is not None else self.device
        return job_record(job, FAILED, run=self.run_id, rank=self.rank, device=device, digest=self._digest,
                          error=_error_message(exc), timings={"job_s": time.perf_counter() - started})

    def _frame_sink(self, job: Job, stylizer: Stylizer) -> FrameSink:
        config = stylizer.config
        frames = frame_writer(job.output, {"prompt": job.run_prompt, "seed": job.seed}) if config.save_every else None
        return FrameSink(job.output, config.animation, frames, one_output=False)

    def _warn_once(self, notes: list[str]) -> None:
        for note in notes:
            if note not in self._warned:
                self._warned.add(note)
                log.warning(note)
