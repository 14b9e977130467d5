"""One batch at a time per output folder, with room for the shards of one batch.

A batch holds `flock` locks inside DIR from its plan to its summary:

- without `--shard`: `DIR/.clipopt.lock`, exclusively: no other batch may use DIR meanwhile;
- with `--shard I/N`: `DIR/.clipopt.lock` shared (shards run side by side, a plain batch is
  kept out) and `DIR/.clipopt.lock.shard-I-of-N` exclusively (the same shard cannot run twice).

Under torchrun only rank 0 takes them, for all ranks. A process that finds a lock taken stops
at once with `BatchLocked` (exit code 10). The kernel drops a dead process's locks, so a crash
never leaves DIR locked. On a file system without flock the batch says so and runs unlocked.
The shard lock file is removed when its shard ends; a process that locked a file just removed
checks the file is still in place and otherwise tries again.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from pathlib import Path

from clipstyler_opt.batch.jobs import Shard
from clipstyler_opt.core.errors import ClipoptError, OutputError
from clipstyler_opt.core.files import open_regular
from clipstyler_opt.core.files.identity import LOCK_NAME
from clipstyler_opt.core.naming import printable

__all__ = ["EXIT_LOCKED", "LOCK_NAME", "BatchLock", "BatchLocked"]

log = logging.getLogger(__name__)

EXIT_LOCKED = 10
_ATTEMPTS = 20
_NO_LOCKING = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP)  # e.g. Lustre mounted without -o flock


class BatchLocked(ClipoptError):
    """Another `clipopt batch` is using the output folder (or running the same shard)."""

    exit_code = EXIT_LOCKED


def _locked_fd(path: Path, operation: int) -> int | None:
    """A descriptor of `path` holding `operation` (LOCK_EX or LOCK_SH), or None when taken."""
    for _ in range(_ATTEMPTS):
        try:
            fd = open_regular(path, os.O_RDWR | os.O_CREAT, follow_links=False)
        except OSError as exc:
            raise OutputError(f"{printable(str(path))}: cannot create the lock file ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as exc:
            if exc.errno not in _NO_LOCKING:
                os.close(fd)
                raise OutputError(f"{printable(str(path))}: cannot lock ({exc.strerror or exc})") from None
            log.warning("%s: this file system has no flock (%s); nothing keeps a second batch out of this folder",
                        printable(str(path)), exc.strerror or exc)
            return fd
        try:
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        opened = os.fstat(fd)
        if current is not None and (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
            return fd
        os.close(fd)  # removed (or replaced) by its previous holder while we waited: lock the new one
    raise OutputError(f"{printable(str(path))}: the lock file keeps changing; is something deleting it?")


class BatchLock:
    """The locks of one batch process; release them with `release()` or a `with` block.

    `name` and `holder` let another kind of run keep its own lock with the same rules:
    `BatchLock(folder, name=LOCK_NAME + ".experiment", holder="clipopt experiment run")`.
    """

    def __init__(self, output_dir: Path, shard: Shard | None = None, *, name: str = LOCK_NAME,
                 holder: str = "clipopt batch") -> None:
        self.path = output_dir / name
        self.shard_path = output_dir / f"{name}.shard-{shard.index}-of-{shard.count}" if shard else None
        self._fds: list[int] = []
        where = printable(str(output_dir))
        main = _locked_fd(self.path, fcntl.LOCK_SH if shard else fcntl.LOCK_EX)
        if main is None:
            raise BatchLocked(f"{where} is in use by another {holder}"
                              + (" that is not a shard of this one" if shard else "")
                              + "; wait for it to finish or choose another -o")
        self._fds.append(main)
        if self.shard_path is not None:
            own = _locked_fd(self.shard_path, fcntl.LOCK_EX)
            if own is None:
                self.release()
                raise BatchLocked(f"shard {shard} of {where} is already being run by another process")
            self._fds.append(own)

    def release(self) -> None:
        if self.shard_path is not None and len(self._fds) == 2:
            self.shard_path.unlink(missing_ok=True)  # while still locked, see the module docstring
        for fd in reversed(self._fds):
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> BatchLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
