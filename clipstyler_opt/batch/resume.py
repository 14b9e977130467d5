"""The resume scan: which jobs are already done with exactly these settings.

A job is skipped when its output and sidecar exist and the sidecar's `settings_hash` (read by
`run.record.recorded_settings_hash`: any unreadable or invalid sidecar means "redo") equals
the hash the engine would record now: `config.settings_hash(prompt, input sha256)` (the prompt
the job runs, reweighted in a mix sweep) with the
job's own seed (and its sweep cell's settings). Input digests are reused from earlier manifest records while the file's
size and modification time are unchanged, so a rescan reads sidecars but no images.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clipstyler_opt.batch.jobs import Job
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.files import open_regular
from clipstyler_opt.run.record import recorded_settings_hash

__all__ = ["DigestCache", "InputDigest", "ScanResult", "expected_settings_hash", "file_sha256", "scan_jobs"]

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """sha256 of a regular file's bytes; OSError for anything else (a FIFO is never read)."""
    digest = hashlib.sha256()
    with os.fdopen(open_regular(path), "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class InputDigest:
    sha256: str
    size: int
    mtime_ns: int


class DigestCache:
    """sha256 of input files, keyed by absolute path and trusted while size and mtime match."""

    def __init__(self) -> None:
        self._known: dict[str, InputDigest] = {}

    @classmethod
    def from_records(cls, records: Iterable[dict[str, object]]) -> DigestCache:
        cache = cls()
        for record in records:
            sha, size, mtime = record.get("input_sha256"), record.get("input_size"), record.get("input_mtime_ns")
            if isinstance(sha, str) and isinstance(size, int) and isinstance(mtime, int):
                cache._known[str(record.get("input"))] = InputDigest(sha, size, mtime)
        return cache

    def get(self, path: Path) -> InputDigest | None:
        """The file's digest now, or None when it cannot be read."""
        key = os.path.abspath(path)
        try:
            stat = os.stat(key)
        except OSError:
            return None
        known = self._known.get(key)
        if known is not None and (known.size, known.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            return known
        try:
            digest = InputDigest(file_sha256(Path(key)), stat.st_size, stat.st_mtime_ns)
        except OSError:
            return None
        self._known[key] = digest
        return digest

    def remember(self, path: Path, digest: InputDigest) -> None:
        self._known[os.path.abspath(path)] = digest


def expected_settings_hash(config: StyleConfig, job: Job, input_sha256: str) -> str:
    """The `settings_hash` the engine records for this job (see provenance); `config` is the
    batch's, to which the job's sweep cell, if any, is applied."""
    return job.config(config).replace(seed=job.seed).settings_hash(job.run_prompt, input_sha256)


@dataclass
class ScanResult:
    todo: list[Job] = field(default_factory=list)
    skipped: list[tuple[Job, str, InputDigest]] = field(default_factory=list)  # (job, settings hash, digest)


def scan_jobs(jobs: Sequence[Job], config: StyleConfig, digests: DigestCache, *,
              overwrite: bool = False) -> ScanResult:
    result = ScanResult()
    for job in jobs:
        recorded = None if overwrite else recorded_settings_hash(job.output)
        digest = digests.get(job.input) if recorded is not None else None
        if digest is not None and recorded == expected_settings_hash(config, job, digest.sha256):
            result.skipped.append((job, recorded, digest))
        else:
            result.todo.append(job)
    return result
