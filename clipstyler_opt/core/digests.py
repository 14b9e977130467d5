"""SHA-256 of files, remembered across runs so a large weights file is read once.

A digest is trusted while the file's absolute path, size, modification time (ns), inode and
device are unchanged. Digests live in memory for the process and in a small JSON file in the
user cache folder: `$CLIPOPT_CACHE_DIR`, else `$XDG_CACHE_HOME/clipstyler_opt`, else
`~/.cache/clipstyler_opt`. The file is replaced atomically (a concurrent writer may win, and
its entries are kept instead of ours; the file is never half-written), holds at most
`MAX_ENTRIES` entries (the oldest are dropped), and is ignored and rewritten when unreadable.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from clipstyler_opt.core.errors import OutputError
from clipstyler_opt.core.files import file_kind, open_for_reading, read_regular, write_atomic

__all__ = [
    "CACHE_FILE_NAME",
    "MAX_ENTRIES",
    "clear_memory_cache",
    "file_sha256",
    "hash_cache_path",
    "sha256_of_file",
    "sha256_of_stream",
    "user_cache_dir",
]

log = logging.getLogger(__name__)

MAX_ENTRIES = 10_000
CACHE_FILE_NAME = "sha256.json"
_FORMAT_VERSION = 1
_CHUNK = 1 << 20
_MAX_CACHE_BYTES = 64 << 20  # far above MAX_ENTRIES entries; a larger file is not ours
# A file modified within this window of being hashed may change again within the same mtime
# tick without its identity changing, so its digest is not stored on disk (git's "racy" rule).
_RACY_WINDOW_NS = 2_000_000_000


class _Identity(NamedTuple):
    size: int
    mtime_ns: int
    inode: int
    device: int


_memory: dict[str, tuple[_Identity, str]] = {}
_warned_unwritable = False


def user_cache_dir() -> Path:
    """The folder for clipstyler_opt's own small caches (not the weights caches)."""
    explicit = os.environ.get("CLIPOPT_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "clipstyler_opt"


def hash_cache_path() -> Path:
    return user_cache_dir() / CACHE_FILE_NAME


def clear_memory_cache() -> None:
    """Forget the in-process digests (the on-disk cache is kept)."""
    _memory.clear()


def sha256_of_stream(stream: BinaryIO) -> str:
    """Hex SHA-256 of everything left in a binary stream, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    for block in iter(lambda: stream.read(_CHUNK), b""):
        digest.update(block)
    return digest.hexdigest()


def sha256_of_file(path: Path) -> str:
    """Read the whole file (a regular file only, through the file gate) and return its hex
    SHA-256; no cache. OSError saying what the file is otherwise (e.g. "is a FIFO, not a regular
    file")."""
    with open_for_reading(path) as fh:
        return sha256_of_stream(fh)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of `path`, read only when no digest is known for its current identity.

    Raises OSError when the file cannot be read (a directory, missing, no permission).
    """
    key = os.path.abspath(Path(path).expanduser())
    before = _identity(key)
    remembered = _memory.get(key)
    if remembered is not None and remembered[0] == before:
        return remembered[1]
    stored = _read_entries().get(key)
    if stored is not None and _entry_identity(stored) == before:
        _memory[key] = (before, stored["sha256"])
        return str(stored["sha256"])
    digest = sha256_of_file(Path(key))
    after = _identity(key)
    if after != before:  # changed while being read: do not remember a digest for either state
        return digest
    _memory[key] = (before, digest)
    if time.time_ns() - before.mtime_ns > _RACY_WINDOW_NS:
        _store(key, before, digest)
    return digest


def _identity(key: str) -> _Identity:
    info = os.stat(key)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), key)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, f"is {file_kind(info.st_mode)}, not a regular file", key)
    return _Identity(info.st_size, info.st_mtime_ns, info.st_ino, info.st_dev)


def _entry_identity(entry: dict[str, Any]) -> _Identity:
    return _Identity(entry["size"], entry["mtime_ns"], entry["inode"], entry["device"])


def _valid_entry(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    numbers = ("size", "mtime_ns", "inode", "device", "stored_ns")
    if not all(isinstance(entry.get(name), int) and not isinstance(entry.get(name), bool) for name in numbers):
        return False
    sha = entry.get("sha256")
    return isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)


def _read_entries() -> dict[str, dict[str, Any]]:
    """The on-disk entries; an absent, unreadable or malformed file counts as empty."""
    try:  # never through a link, never blocking on a FIFO put there
        data = json.loads(read_regular(hash_cache_path(), _MAX_CACHE_BYTES, follow_links=False))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or data.get("version") != _FORMAT_VERSION:
        return {}
    entries = data.get("entries")
    if not isinstance(entries, dict):
        return {}
    return {key: entry for key, entry in entries.items() if _valid_entry(entry)}


def _store(key: str, identity: _Identity, digest: str) -> None:
    entries = _read_entries()
    entries[key] = {**identity._asdict(), "sha256": digest, "stored_ns": time.time_ns()}
    if len(entries) > MAX_ENTRIES:
        newest = sorted(entries.items(), key=lambda item: item[1]["stored_ns"])[-MAX_ENTRIES:]
        entries = dict(newest)
    text = json.dumps({"version": _FORMAT_VERSION, "entries": entries}, separators=(",", ":"))
    try:
        write_atomic(hash_cache_path(), lambda fh: fh.write(text.encode("utf-8", "surrogateescape")))
    except OutputError as exc:
        global _warned_unwritable
        if not _warned_unwritable:
            _warned_unwritable = True
            log.warning("cannot write the file-hash cache %s (%s); large files will be hashed again next run",
                        hash_cache_path(), exc)
