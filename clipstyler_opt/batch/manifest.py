"""`manifest.jsonl`: one JSON object per line, appended and fsynced one line at a time.

A crash can at most leave the final line truncated; readers skip lines that do not parse,
and a writer that finds such a line first ends it, so the next record starts on a fresh line.
Each line goes out in one `write` on an O_APPEND descriptor, so `--shard` processes sharing
a folder can append to the same manifest.

Under torchrun every rank appends to its own journal, `manifest.<run>.rank-<R>.jsonl`,
holding an exclusive lock on it while the rank lives; rank 0 gathers the records at the
end, writes them into the manifest and the journals are removed. A journal whose lock can
be taken belongs to a run that died; the next run merges it.

Lines are JSON with every character that is not valid Unicode escaped: a file name's
non-UTF-8 bytes (Python's surrogate escapes, e.g. `\\udce9`) survive `json.loads` and
`os.fsencode` unchanged. A line that cannot be written ends the batch with
`ManifestWriteError` (exit code 5); the outputs already saved are kept, and a rerun resumes.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from clipstyler_opt.core.errors import OutputError
from clipstyler_opt.core.files import open_regular
from clipstyler_opt.core.naming import printable

__all__ = [
    "MANIFEST_NAME",
    "ManifestWriteError",
    "ManifestWriter",
    "journal_path",
    "json_line",
    "merge_stale_journals",
    "read_records",
    "record_key",
]

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
_JOURNAL_GLOB = "manifest.*.rank-*.jsonl"
_SURROGATE = re.compile("[\ud800-\udfff]")

Record = dict[str, Any]


def journal_path(output_dir: Path, run_id: str, rank: int) -> Path:
    return output_dir / f"manifest.{run_id}.rank-{rank}.jsonl"


class ManifestWriteError(OutputError):
    """The manifest (or a rank's journal) cannot be written: the batch stops."""


def json_line(record: Record) -> str:
    """One JSON line, readable UTF-8 for any text, with lone surrogates as `\\uXXXX` escapes."""
    text = json.dumps(record, ensure_ascii=False)
    return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text) + "\n"


def record_key(record: Record) -> tuple[str, str, str, str]:
    """What identifies one job record: the run, the job and the kind of record."""
    return (str(record.get("run")), str(record.get("record")), str(record.get("prompt")),
            str(record.get("output")))


class ManifestWriter:
    """Append-only JSONL writer; every line is on disk when `append` returns."""

    def __init__(self, path: Path, *, lock: bool = False) -> None:
        self.path = path
        try:
            self._fd = open_regular(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, follow_links=False)
        except OSError as exc:
            raise ManifestWriteError(f"{printable(str(path))}: cannot write ({exc.strerror or exc})") from None
        if lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _ends_mid_line(self._fd):
            self._write(b"\n")  # a previous writer died mid-line: start on a fresh one

    def append(self, record: Record) -> None:
        self.extend([record])

    def extend(self, records: Iterable[Record]) -> None:
        """Append several records with one write and one fsync (fast for a thousand skipped jobs)."""
        data = "".join(json_line(record) for record in records)
        if data:
            self._write(data.encode("utf-8"))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except OSError as exc:
            raise ManifestWriteError(f"{printable(str(self.path))}: cannot write ({exc.strerror or exc}); the batch "
                                     "stopped: finished outputs are kept, and a rerun resumes") from None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ends_mid_line(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def read_records(path: Path) -> list[Record]:
    """Every complete record of a manifest or journal; unparsable lines are skipped."""
    try:
        fd = open_regular(path, os.O_RDONLY, follow_links=False)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ManifestWriteError(f"{printable(str(path))}: cannot read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as fh:
        data = fh.read()
    records, broken = [], 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, an endless integer, nested too deeply
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
        fd = open_regular(journal, os.O_RDONLY, follow_links=False)
    except OSError:
        return None  # gone, or not a journal at all (a link, a FIFO): left alone
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
