"""`manifest.jsonl`: one JSON object per line, appended and fsynced one line at a time.

A crash can at most leave the final line truncated; readers skip lines that do not parse,
and a writer that finds such a line first ends it, so the next record starts on a fresh line.
Each line goes out in one `write` on an O_APPEND descriptor, so `--shard` processes sharing
a folder can append to the same manifest.

Under torchrun every rank appends to its own journal, `manifest.<run>.rank-<R>.jsonl`,
holding an exclusive lock on it while the rank lives; rank 0 gathers the records at the
end, writes them into the manifest and the journals are removed. A journal whose lock can
be taken belongs to a run that died; the next run merges it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable

__all__ = ["MANIFEST_NAME", "ManifestWriter", "read_records", "journal_path", "merge_stale_journals",
           "record_key"]

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
_JOURNAL_GLOB = "manifest.*.rank-*.jsonl"

Record = dict[str, Any]


def journal_path(output_dir: Path, run_id: str, rank: int) -> Path:
    return output_dir / f"manifest.{run_id}.rank-{rank}.jsonl"


def record_key(record: Record) -> tuple[str, str, str, str]:
    """What identifies one job record: the run, the job and the kind of record."""
    return (str(record.get("run")), str(record.get("record")), str(record.get("prompt")),
            str(record.get("output")))


class ManifestWriter:
    """Append-only JSONL writer; every line is on disk when `append` returns."""

    def __init__(self, path: Path, *, lock: bool = False) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        if lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _ends_mid_line(path):
            self._write(b"\n")  # a previous writer died mid-line: start on a fresh one

    def append(self, record: Record) -> None:
        self.extend([record])

    def extend(self, records: Iterable[Record]) -> None:
        """Append several records with one write and one fsync (fast for a thousand skipped jobs)."""
        data = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        if data:
            self._write(data.encode("utf-8"))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "ManifestWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ends_mid_line(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except OSError:
        return False


def read_records(path: Path) -> list[Record]:
    """Every complete record of a manifest or journal; unparsable lines are skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    records, broken = [], 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            broken += 1
            continue
        if isinstance(record, dict):
            records.append(record)
    if broken:
        log.info("%s: skipped %d unreadable line(s) (an interrupted write)", path, broken)
    return records


def _claim(journal: Path) -> int | None:
    """An open descriptor holding the journal's lock, or None while its rank still runs."""
    try:
        fd = os.open(journal, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def merge_stale_journals(output_dir: Path) -> int:
    """Move the records of journals left by dead runs into the manifest; returns how many."""
    manifest = output_dir / MANIFEST_NAME
    merged = 0
    known: set[tuple[str, str, str, str]] | None = None
    for journal in sorted(output_dir.glob(_JOURNAL_GLOB)):
        fd = _claim(journal)
        if fd is None:
            continue
        try:
            if not journal.exists():
                continue  # another process merged it while we waited for the lock
            if known is None:
                known = {record_key(r) for r in read_records(manifest)}
            fresh = [r for r in read_records(journal) if record_key(r) not in known]
            with ManifestWriter(manifest) as writer:
                writer.extend(fresh)
            known.update(record_key(r) for r in fresh)
            merged += len(fresh)
            journal.unlink()
        finally:
            os.close(fd)
    if merged:
        log.warning("recovered %d record(s) of an interrupted multi-process run into %s", merged, manifest)
    return merged
