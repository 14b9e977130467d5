"""Several jobs at once on one device: `--workers-per-device K` worker processes.

One 512-px job cannot fill a large GPU. With K > 1 the jobs this process would run (the
whole batch, its `--shard`, or its torchrun rank's share) are split between K processes
started with `spawn`, the way `--shard k/K` splits a list: worker k takes every K-th job from
the k-th. Each worker loads its own backbones on the same device (K times the memory) and
gets 1/K of this process's CPU threads; a job's image does not depend on the worker that
makes it.

The parent keeps the batch's lock and is the only writer of the manifest: a worker sends
each job's record through a pipe, and the parent appends it as it arrives. Ctrl-C reaches
every process; SIGTERM to the parent is passed on to the workers. A stopped worker saves the
job it was saving and ends; a worker whose parent died ends at its next step. When a worker
dies, its unfinished jobs are recorded as failed (exit code 8), and a rerun does them.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import signal
import time
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from typing import Any

import torch

from clipstyler_opt.batch.jobs import Job, Shard
from clipstyler_opt.batch.records import FAILED, job_record
from clipstyler_opt.batch.resume import DigestCache
from clipstyler_opt.batch.runner import BatchObserver, JobRunner, RecordSink
from clipstyler_opt.batch.safety import InputGuard
from clipstyler_opt.batch.signals import interrupts_deferred
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ClipoptError
from clipstyler_opt.run.engine import ProgressCallback, Stylizer

__all__ = ["WorkerTask", "run_in_workers", "worker_threads"]

log = logging.getLogger(__name__)

Record = dict[str, Any]
STARTED, RECORD, END, STOPPED, ERROR = "started", "record", "end", "stopped", "error"
STOP_WAIT_S = 60.0  # how long stopped workers get to finish a save and say so


@dataclass(frozen=True)
class WorkerTask:
    """Everything a worker needs; sent to it whole when it starts."""

    config: StyleConfig
    guard: InputGuard
    digests: DigestCache
    run_id: str
    rank: int
    jobs: tuple[Job, ...] = ()
    threads: int = 1
    log_level: int = logging.WARNING


def worker_threads(workers: int) -> int:
    """Each worker's share of this process's CPU threads."""
    return max(1, torch.get_num_threads() // workers)


# --- in the worker ---

def _send(conn: Connection, message: tuple[str, Any]) -> None:
    with interrupts_deferred():  # a message is sent whole, or not at all
        conn.send(message)


class _PipeSink:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def append(self, record: Record) -> None:
        _send(self.conn, (RECORD, record))


class _PipeObserver:
    """Tells the parent which job runs; stops the worker when the parent is gone."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def started(self, total: int, skipped: int) -> None:
        pass

    def job_started(self, job: Job) -> ProgressCallback | None:
        _send(self.conn, (STARTED, job.key))
        return lambda _progress: _stop_if_orphaned()

    def job_finished(self, job: Job, record: Record) -> None:
        pass

    def finished(self, summary: Any) -> None:
        pass


def _stop_if_orphaned() -> None:
    parent = multiprocessing.parent_process()
    if parent is not None and not parent.is_alive():
        raise KeyboardInterrupt


def _log_like_parent(level: int) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("clipstyler_opt")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def _work(task: WorkerTask, conn: Connection) -> None:
    runner = JobRunner(task.config, Stylizer, _PipeSink(conn), task.digests, _PipeObserver(conn), task.guard,
                       run=task.run_id, rank=task.rank, device=task.config.device)
    for job in task.jobs:
        _stop_if_orphaned()
        runner.run(job)


def worker_main(task: WorkerTask, conn: Connection) -> None:
    """A worker process: run `task.jobs`, then send one closing message (END, STOPPED or ERROR)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.default_int_handler)  # both stop the worker as Ctrl-C would
    message: tuple[str, Any] = (STOPPED, None)
    try:
        torch.set_num_threads(task.threads)
        _log_like_parent(task.log_level)
        try:
            _work(task, conn)
            message = (END, None)
        except ClipoptError as exc:
            message = (ERROR, exc)
        except Exception as exc:  # a bug: the parent reports it as an internal error
            log.debug("worker failed", exc_info=True)
            message = (ERROR, RuntimeError(f"in a worker process: {type(exc).__name__}: {exc}"))
    except KeyboardInterrupt:
        pass  # stopped (also by a second signal while handling the first)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # stopping already: another signal changes nothing
    try:
        conn.send(message)
    except (OSError, pickle.PicklingError):
        pass  # the parent is gone (it treats a silent end as a stopped or dead worker)
    finally:
        conn.close()


# --- in the parent ---

@dataclass(eq=False)
class _Worker:
    index: int
    process: Any  # multiprocessing's SpawnProcess
    conn: Connection
    pending: list[tuple[str, str]]  # keys of its jobs without a record yet
    running: tuple[str, str] | None = None  # key of the job it is running
    closing: str | None = None  # its closing message
    stopped: bool = False


@dataclass(eq=False)
class _Pool:
    workers: list[_Worker]
    jobs: dict[tuple[str, str], Job]
    sink: RecordSink
    observer: BatchObserver
    records: list[Record]
    task: WorkerTask
    error: BaseException | None = None
    live: list[_Worker] = field(default_factory=list)

    def collect(self) -> None:
        """Write the workers' records as they arrive until every worker has ended."""
        self.live = list(self.workers)
        try:
            self._pump(deadline=None)
        except KeyboardInterrupt:
            self._stop()
            self._pump(deadline=time.monotonic() + STOP_WAIT_S)  # the records of jobs saved meanwhile
            raise
        except BaseException:  # e.g. the manifest cannot be written
            self._stop()
            raise
        finally:
            self._end_all()
        if self.error is not None:
            raise self.error

    def _pump(self, deadline: float | None) -> None:
        while self.live:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = wait([worker.conn for worker in self.live], timeout)
            if not ready and deadline is not None:
                return
            for ready_conn in ready:
                worker = next(w for w in self.live if w.conn is ready_conn)
                try:
                    kind, payload = worker.conn.recv()
                except (EOFError, OSError, pickle.UnpicklingError):
                    self._ended(worker)
                else:
                    self._handle(worker, kind, payload)

    def _handle(self, worker: _Worker, kind: str, payload: Any) -> None:
        if kind == STARTED:
            worker.running = tuple(payload)
        elif kind == RECORD:
            worker.running = None
            key = (payload["prompt"], payload["output"])
            if key in worker.pending:
                worker.pending.remove(key)
            self._add(payload)
        else:
            worker.closing = kind
            if kind == ERROR:  # e.g. weights not found: the batch stops, as it would in one process
                self.error = self.error or payload
                self._stop()

    def _add(self, record: Record) -> None:
        with interrupts_deferred():  # the manifest line and the summary's count go together
            self.sink.append(record)
            self.records.append(record)
        self.observer.job_finished(self.jobs[(record["prompt"], record["output"])], record)

    def _ended(self, worker: _Worker) -> None:
        self.live.remove(worker)
        worker.conn.close()
        worker.process.join(STOP_WAIT_S)
        if worker.closing is not None or worker.stopped:  # it said goodbye, or it was told to stop
            return
        code = worker.process.exitcode
        log.error("worker %d ended unexpectedly (exit code %s); its %d unfinished job(s) are recorded as failed "
                  "(a rerun does them)", worker.index, code, len(worker.pending))
        for key in worker.pending:
            error = ("the worker process running it died" if key == worker.running
                     else "not run: its worker process died")
            self._add(job_record(self.jobs[key], FAILED, run=self.task.run_id, rank=self.task.rank,
                                 device=self.task.config.device, error=f"{error} (exit code {code})"))
        worker.pending.clear()

    def _stop(self) -> None:
        for worker in self.live:
            if not worker.stopped and worker.process.is_alive():
                worker.stopped = True
                worker.process.terminate()  # SIGTERM: the worker stops as on Ctrl-C

    def _end_all(self) -> None:
        for worker in self.workers:
            worker.conn.close()
            worker.process.join(STOP_WAIT_S if worker.stopped else 0.1)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()


def run_in_workers(task: WorkerTask, jobs: list[Job], workers: int, *, sink: RecordSink,
                   observer: BatchObserver, records: list[Record]) -> None:
    """Run `jobs` in `workers` processes; each record goes to `sink`, `records` and
    `observer.job_finished` as it arrives. Raises what stopped the batch: KeyboardInterrupt, or
    a worker's ClipoptError (after the other workers have stopped)."""
    context = multiprocessing.get_context("spawn")
    task = replace(task, threads=worker_threads(workers),
                   log_level=logging.getLogger("clipstyler_opt").getEffectiveLevel())
    pool = _Pool([], {job.key: job for job in jobs}, sink, observer, records, task)
    try:
        for index in range(workers):
            share = tuple(Shard(index, workers).take(jobs))
            if not share:
                continue
            reader, sender = context.Pipe(duplex=False)
            process = context.Process(target=worker_main, args=(replace(task, jobs=share), sender),
                                      name=f"clipopt-worker-{index}", daemon=True)
            process.start()
            sender.close()  # the worker holds the only sending end: its exit ends the pipe
            pool.workers.append(_Worker(index, process, reader, [job.key for job in share]))
    except BaseException:  # e.g. Ctrl-C while starting: stop the workers already started
        pool.live = list(pool.workers)
        pool._stop()
        pool._end_all()
        raise
    pool.collect()
