"""The studio's job queue: one worker thread per device runs one job at a time, in order.

A job goes `queued` → `running` → `done`, `failed` or `cancelled`. While it runs, its step, loss
terms and time left are kept for the page and the API, and every few steps a preview (a PNG
held in memory, never a file). Cancelling a running job stops it after the step in progress
and keeps its latest image as `<name>.partial.png`; so does stopping the server. Results go to
the output folder under generated names (`<upload>-<prompt>.png` with its sidecar), claimed
without ever replacing a file.

Example (with a stand-in runner; see tests/test_studio_api.py for real runs):
    >>> queue = JobQueue(lambda job: job.finish("done"))
    >>> job = queue.submit(Job.create(prompt="oil", settings={}, config=None, image=Path("a.png"), stem="a"))
    >>> queue.wait(job.id, timeout=5).status
    'done'
    >>> queue.shutdown()
"""

from __future__ import annotations

import io
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipstyler_opt.core.errors import ClipoptError

if TYPE_CHECKING:
    from PIL import Image

    from clipstyler_opt.core.config import StyleConfig
    from clipstyler_opt.run.results import Progress

__all__ = ["FINISHED", "STATUSES", "Job", "JobQueue", "Runner"]

log = logging.getLogger(__name__)
STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = frozenset({"done", "failed", "cancelled"})
PREVIEW_LONG_SIDE = 512


@dataclass
class Job:
    """One studio job and what is known of it so far (updated by the worker, read by requests)."""

    id: str
    prompt: str
    settings: dict[str, Any]  # as given (the settings JSON, checked), for the history and "run again"
    config: StyleConfig | None
    image: Path  # the kept upload
    stem: str  # the slug of the upload's name, the start of the output's name
    backbone: str = ""
    style_images: tuple[Path, ...] = ()
    preview_every: int = 0
    status: str = "queued"
    step: int = 0
    total: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    eta: float | None = None
    preview: bytes | None = None
    preview_step: int = 0
    output: Path | None = None
    partial: bool = False
    error: str | None = None
    created: float = field(default_factory=time.time)
    kind: str = "stylise"  # or "score": scores the result of job `target`
    target: str | None = None
    scores: dict[str, Any] | None = None  # a stylise job's "score it" metrics, once scored
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def create(cls, **values: Any) -> Job:
        """A new queued job with a fresh id."""
        return cls(id=uuid.uuid4().hex[:16], **values)

    def finish(self, status: str, *, error: str | None = None, output: Path | None = None,
               partial: bool = False) -> None:
        """End the job as `status` (one of FINISHED)."""
        assert status in FINISHED, status
        self.status, self.error, self.output, self.partial = status, error, output, partial
        self.eta = 0.0 if status == "done" else None
        self.finished.set()

    def on_progress(self, event: Progress) -> None:
        """The worker's progress callback: records the step; raises KeyboardInterrupt once a cancel
        was asked for, which ends the optimisation and keeps the latest image."""
        self.step, self.total, self.elapsed = event.step, event.total, event.elapsed
        self.losses = dict(event.losses)
        self.eta = event.elapsed / event.step * (event.total - event.step) if event.step else None
        if self.cancel_requested.is_set():
            raise KeyboardInterrupt

    def on_frame(self, step: int, image: Image.Image) -> None:
        """The worker's frame callback: the image as a preview PNG held in memory."""
        preview = image.copy()
        preview.thumbnail((PREVIEW_LONG_SIDE, PREVIEW_LONG_SIDE))
        buffer = io.BytesIO()
        preview.save(buffer, format="PNG")
        self.preview, self.preview_step = buffer.getvalue(), step

    def describe(self, position: int | None = None) -> dict[str, Any]:
        """The job as the API reports it."""
        preview = f"/api/jobs/{self.id}/preview?step={self.preview_step}" if self.preview is not None else None
        return {"id": self.id, "status": self.status, "step": self.step, "total": self.total,
                "losses": self.losses, "elapsed_s": round(self.elapsed, 3),
                "eta_s": None if self.eta is None else round(self.eta, 3), "preview": preview,
                "preview_step": self.preview_step, "queue_position": position, "prompt": self.prompt,
                "backbone": self.backbone, "settings": self.settings, "error": self.error,
                "partial": self.partial, "result": f"/api/jobs/{self.id}/result" if self.output else None,
                "output": self.output.name if self.output else None, "kind": self.kind, "target": self.target,
                "scores": self.scores}


Runner = Callable[[Job], None]


class JobQueue:
    """Jobs of one device, run one at a time by one worker thread, in the order submitted.

    `runner(job)` runs a job and ends it with `job.finish(...)`; it raises nothing the
    queue must handle (a `ClipoptError` or any other exception still fails the job, with its
    one-line message).
    """

    def __init__(self, runner: Runner, device: str = "cpu") -> None:
        self.runner, self.device = runner, device
        self._jobs: dict[str, Job] = {}
        self._waiting: deque[Job] = deque()
        self._condition = threading.Condition()
        self._stopping = False
        self.running: Job | None = None
        self._worker = threading.Thread(target=self._work, name=f"studio-{device}", daemon=True)
        self._worker.start()

    def submit(self, job: Job) -> Job:
        """Queue `job`; ClipoptError once the queue is stopping."""
        with self._condition:
            if self._stopping:
                raise ClipoptError("the studio is stopping; no new jobs")
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._condition.notify_all()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._condition:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """Every job of this session, oldest first."""
        with self._condition:
            return list(self._jobs.values())

    def position(self, job: Job) -> int | None:
        """0 for the running job, 1.. for the waiting ones in order, None once finished."""
        with self._condition:
            if job is self.running:
                return 0
            return next((n for n, waiting in enumerate(self._waiting, start=1) if waiting is job), None)

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a job: a waiting one ends now, a running one after the step in progress (keeping
        its latest image); a finished one is left as it is."""
        with self._condition:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job in self._waiting:
                self._waiting.remove(job)
                job.finish("cancelled", error="cancelled before it started")
            elif job is self.running:
                job.cancel_requested.set()
        return job

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once finished (or as it is after `timeout` seconds)."""
        job = self.get(job_id)
        if job is None:
            raise KeyError(job_id)
        job.finished.wait(timeout)
        return job

    def stop(self) -> None:
        """Stop taking jobs: waiting ones are cancelled, the running one is asked to stop (its
        latest image is kept). Safe to call from a signal handler."""
        with self._condition:
            self._stopping = True
            while self._waiting:
                self._waiting.popleft().finish("cancelled", error="the studio stopped before it started")
            if self.running is not None:
                self.running.cancel_requested.set()
            self._condition.notify_all()

    def shutdown(self, timeout: float | None = None) -> None:
        """`stop`, then wait for the worker to end (the running job saves its partial image)."""
        self.stop()
        self._worker.join(timeout)

    def _next(self) -> Job | None:
        with self._condition:
            while not self._waiting and not self._stopping:
                self._condition.wait()
            if self._stopping:
                return None
            self.running = self._waiting.popleft()
            self.running.status = "running"
            return self.running

    def _work(self) -> None:
        while (job := self._next()) is not None:
            try:
                self.runner(job)
            except ClipoptError as exc:
                job.finish("failed", error=str(exc))
            except BaseException as exc:  # a bug: the job fails with one line, the worker goes on
                log.debug("studio job %s failed", job.id, exc_info=True)
                first = (str(exc).splitlines() or [""])[0]
                job.finish("failed", error=f"internal error: {type(exc).__name__}: {first}")
            finally:
                if not job.finished.is_set():
                    job.finish("failed", error="internal error: the job ended without a result")
                with self._condition:
                    self.running = None
