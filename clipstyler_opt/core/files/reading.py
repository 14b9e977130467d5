"""Reading through the gate: regular files only, never blocking on a FIFO, with a size limit.

Every file is opened with `O_NONBLOCK` (so opening a FIFO returns at once instead of waiting
for a writer) and then checked with `fstat` on the descriptor actually opened: anything but a
regular file is closed again and reported by what it is ("is a FIFO, not a regular file").
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from clipstyler_opt.core.errors import ClipoptError, ConfigError

__all__ = [
    "PathLike",
    "describe_os_error",
    "file_kind",
    "is_regular",
    "not_a_file",
    "open_for_reading",
    "open_regular",
    "read_bytes",
    "read_regular",
    "read_text",
]

PathLike = str | os.PathLike[str]
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def file_kind(mode: int) -> str:
    """What a file of this `st_mode` is, in words.

    >>> file_kind(stat.S_IFIFO | 0o644)
    'a FIFO'
    >>> file_kind(stat.S_IFREG | 0o644)
    'a regular file'
    """
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _not_regular(path: PathLike, mode: int) -> OSError:
    code = errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL
    return OSError(code, f"is {file_kind(mode)}, not a regular file", os.fspath(path))


def open_regular(path: PathLike, flags: int = os.O_RDONLY, mode: int = 0o666, *, follow_links: bool = True) -> int:
    """`os.open` that only ever returns a descriptor of a regular file and never blocks.

    A FIFO, socket, device or folder is an OSError whose `strerror` says what it is; with
    `follow_links=False` a final symbolic link is refused too ("is a symbolic link, which is
    not followed"). Creating flags (`O_CREAT`) work as usual.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> os.mkfifo(os.path.join(folder, "pipe"))
    >>> try:
    ...     open_regular(os.path.join(folder, "pipe"))
    ... except OSError as exc:
    ...     print(exc.strerror)
    is a FIFO, not a regular file
    """
    extra = os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY | (0 if follow_links else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags | extra, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_links and os.path.islink(path):
            raise OSError(errno.ELOOP, "is a symbolic link, which is not followed", os.fspath(path)) from None
        if exc.errno in (errno.ENXIO, errno.EISDIR, errno.ENODEV, errno.EOPNOTSUPP):
            try:  # a FIFO without a reader (opened for writing), a socket or a folder: say what it is
                info = os.stat(path) if follow_links else os.lstat(path)
            except OSError:
                raise exc from None
            if not stat.S_ISREG(info.st_mode):
                raise _not_regular(path, info.st_mode) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(path, info.st_mode)
        os.set_blocking(fd, True)  # a regular file: reads and writes as usual from here on
    except BaseException:
        os.close(fd)
        raise
    return fd


def describe_os_error(exc: OSError) -> str:
    """The reason part of a one-line message: "no such file", "is a FIFO, not a regular file", ...

    >>> describe_os_error(FileNotFoundError(2, "No such file or directory"))
    'no such file'
    """
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    return str(exc.strerror or exc)


def read_regular(path: PathLike, limit: int | None = None, *, follow_links: bool = True) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; OSError (EFBIG) when larger.

    For callers that treat every failure alike (caches); user files go through `read_bytes`.
    """
    fd = open_regular(path, follow_links=follow_links)
    with os.fdopen(fd, "rb") as fh:
        if limit is not None and os.fstat(fd).st_size > limit:
            raise OSError(errno.EFBIG, f"is larger than the limit of {limit} bytes", os.fspath(path))
        data = fh.read() if limit is None else fh.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise OSError(errno.EFBIG, f"grew beyond the limit of {limit} bytes while being read", os.fspath(path))
    return data


def _user_error(path: PathLike, exc: OSError, error: type[ClipoptError], what: str) -> ClipoptError:
    prefix = f"{what} " if what else ""
    return error(f"{prefix}{os.fspath(path)}: {describe_os_error(exc)}")


def read_bytes(path: PathLike, *, limit: int | None = None, error: type[ClipoptError] = ConfigError,
               what: str = "") -> bytes:
    """A user's file, read whole through the gate; any failure is `error` (exit code by type) with
    a one-line message naming `what` and the path.

    >>> read_bytes("/no/such/file", what="config file")
    Traceback (most recent call last):
    ...
    clipstyler_opt.core.errors.ConfigError: config file /no/such/file: no such file
    """
    try:
        return read_regular(path, limit)
    except OSError as exc:
        raise _user_error(path, exc, error, what) from None


def read_text(path: PathLike, *, limit: int | None = None, error: type[ClipoptError] = ConfigError,
              what: str = "", encoding: str = "utf-8", errors: str = "strict") -> str:
    """`read_bytes` decoded; undecodable bytes are `error` too (unless `errors` allows them)."""
    data = read_bytes(path, limit=limit, error=error, what=what)
    try:
        return data.decode(encoding, errors)
    except UnicodeDecodeError as exc:
        prefix = f"{what} " if what else ""
        raise error(f"{prefix}{os.fspath(path)}: not {encoding} text ({exc.reason} at byte {exc.start})") from None


@contextmanager
def open_for_reading(path: PathLike, *, error: type[ClipoptError] | None = None, what: str = "",
                     follow_links: bool = True) -> Iterator[BinaryIO]:
    """A regular file opened for reading in binary, for streaming (hashing, parsing large files).
    With `error`, a failure to open is a one-line `error`; without, the OSError propagates.

    >>> with open_for_reading(__file__) as fh:
    ...     len(fh.read(7))
    7
    """
    try:
        fd = open_regular(path, follow_links=follow_links)
    except OSError as exc:
        if error is None:
            raise
        raise _user_error(path, exc, error, what) from None
    with os.fdopen(fd, "rb") as fh:
        yield fh


def not_a_file(path: PathLike) -> str | None:
    """Why `path` cannot be read as a file ("no such file", "is a FIFO, not a regular file", ...),
    or None for a regular file (after links). Nothing is opened.

    >>> not_a_file("/no/such/file"), not_a_file("/dev/null"), not_a_file(__file__)
    ('no such file', 'is a character device, not a regular file', None)
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "is a broken symbolic link" if os.path.islink(path) else "no such file"
    except (OSError, ValueError) as exc:
        return str(getattr(exc, "strerror", None) or exc)
    return None if stat.S_ISREG(mode) else f"is {file_kind(mode)}, not a regular file"


def is_regular(path: PathLike) -> bool:
    """True for an existing regular file (after links), without opening it.

    >>> is_regular(__file__), is_regular(os.path.dirname(__file__))
    (True, False)
    """
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False

