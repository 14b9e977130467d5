"""Manifest records (one per job and one summary per run) and the end-of-run summary.

Job record fields: record ("job"), run, time, status (done, failed or skipped), input
(absolute path), relative (path below its INPUT root), prompt, output (path below the
output folder), seed, settings_hash, error, timings, input_sha256, input_size,
input_mtime_ns, rank, device, and for a sweep job its `sweep` entry as in the sidecar (cell,
values, labels, and `prompt` when the cell reweights the prompt). Paths are kept exactly (see
manifest.json_line); the summary's one-line texts show them with `naming.printable`.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipstyler_opt.batch.discovery import SkippedInput
from clipstyler_opt.batch.jobs import Job
from clipstyler_opt.batch.resume import InputDigest
from clipstyler_opt.core.naming import printable

__all__ = ["DONE", "FAILED", "SKIPPED", "Summary", "job_record", "new_run_id", "skipped_input_fields"]

DONE, FAILED, SKIPPED = "done", "failed", "skipped"
_MAX_ERROR = 500


def new_run_id() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def one_line(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return first if len(first) <= _MAX_ERROR else first[: _MAX_ERROR - 3] + "..."


def job_record(job: Job, status: str, *, run: str, rank: int, device: str | None, settings_hash: str | None = None,
               digest: InputDigest | None = None, error: str | None = None,
               timings: dict[str, float] | None = None) -> dict[str, Any]:
    return {
        "record": "job", "run": run, "time": _now(), "status": status,
        "input": os.path.abspath(job.input), "relative": job.relative, "prompt": job.prompt,
        "output": job.output_name, "seed": job.seed, "settings_hash": settings_hash,
        "error": one_line(error) if error is not None else None,
        "timings": {k: round(v, 3) for k, v in timings.items()} if timings else None,
        "input_sha256": digest.sha256 if digest else None, "input_size": digest.size if digest else None,
        "input_mtime_ns": digest.mtime_ns if digest else None, "rank": rank, "device": device,
        **job.extra_metadata(),  # a sweep job's cell, values, labels and reweighted prompt
    }


def skipped_input_fields(skipped: Iterable[SkippedInput]) -> list[dict[str, str]]:
    """The summary record's `skipped_inputs`: what discovery passed over, and why."""
    return [{"input": os.path.abspath(item.path), "reason": item.reason} for item in skipped]


@dataclass
class Summary:
    jobs: int
    done: int = 0
    skipped: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False
    manifest: Path | None = None
    scope: str = ""  # e.g. "rank 1 of 4" when a single rank reports on its own
    final: bool = True  # False for one rank's part of a torchrun batch (rank 0 reports the whole)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (job label, error)

    @classmethod
    def from_records(cls, jobs: int, records: Iterable[dict[str, Any]], elapsed_s: float,
                     **extra: Any) -> Summary:
        summary = cls(jobs=jobs, elapsed_s=elapsed_s, **extra)
        for record in records:
            if record.get("record") != "job":
                continue
            status = record.get("status")
            if status == DONE:
                summary.done += 1
            elif status == SKIPPED:
                summary.skipped += 1
            elif status == FAILED:
                summary.failed += 1
                summary.failures.append((f"{record.get('relative')} | {record.get('prompt')}",
                                         str(record.get("error"))))
        return summary

    @property
    def not_run(self) -> int:
        return self.jobs - self.done - self.skipped - self.failed

    @property
    def images_per_hour(self) -> float:
        return self.done * 3600.0 / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def record(self, run: str, **extra: Any) -> dict[str, Any]:
        return {"record": "summary", "run": run, "time": _now(), "jobs": self.jobs, "done": self.done,
                "skipped": self.skipped, "failed": self.failed, "not_run": self.not_run,
                "interrupted": self.interrupted, "elapsed_s": round(self.elapsed_s, 3),
                "images_per_hour": round(self.images_per_hour, 2), **extra}

    def lines(self, max_failures: int = 20) -> list[str]:
        head = "batch interrupted" if self.interrupted else "batch finished"
        if self.scope:
            head += f" ({self.scope})"
        counts = f"{self.done} done, {self.skipped} skipped, {self.failed} failed"
        if self.not_run:
            counts += f", {self.not_run} not run"
        jobs = f"{self.jobs} job" + ("" if self.jobs == 1 else "s")
        lines = [f"{head}: {jobs}: {counts} in {_duration(self.elapsed_s)} "
                 f"({self.images_per_hour:.1f} images/hour)"]
        for label, error in self.failures[:max_failures]:
            lines.append(f"  failed: {printable(label)}: {printable(error)}")
        if len(self.failures) > max_failures:
            lines.append(f"  ... and {len(self.failures) - max_failures} more failures")
        if self.manifest is not None:
            lines.append(f"manifest: {printable(str(self.manifest))}")
        return lines


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes \
        else f"{seconds:.1f}s"
