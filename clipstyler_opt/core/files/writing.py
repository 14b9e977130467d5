"""Writing through the gate: atomic, never onto a file the command reads, never clobbering a
default name, and never through a link the program chose the name of.

Every file is first written in full to a short temporary name beside its target
(`.clipopt-XXXXXXXX.tmp`, whatever the target's length) and fsynced. An explicit destination is
then replaced by a rename, which replaces a symbolic link itself and never writes into what it
points at. A default name is claimed with hard links, together with its companions (sidecar,
animation): a link fails when the name exists, so concurrent runs never share a name and
nothing is checked-then-written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from clipstyler_opt.core.errors import OutputError
from clipstyler_opt.core.files.identity import ReadSet

__all__ = ["TEMP_PREFIX", "TEMP_SUFFIX", "cannot_write", "claim_together", "discard", "exclusive_lock",
           "rename_into_place", "scratch_folder", "write_atomic", "write_bytes", "write_temp"]

TEMP_PREFIX, TEMP_SUFFIX = ".clipopt-", ".tmp"
_UMASK = os.umask(0)
os.umask(_UMASK)

Writer = Callable[[Any], Any]


def cannot_write(path: os.PathLike[str] | str, exc: OSError) -> OutputError:
    """The one-line error of a failed write (exit 5)."""
    return OutputError(f"{os.fspath(path)}: cannot write ({exc.strerror or exc})")


def discard(temp: str | None) -> None:
    """Remove a temporary file; a missing one is fine."""
    if temp is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def write_temp(folder: Path, write: Writer, target: Path) -> str:
    """Write `write(file_object)` to `.clipopt-XXXXXXXX.tmp` in `folder` (created if missing),
    fsynced, with the usual permissions; removed again on any failure (OutputError, exit 5,
    naming `target`).

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> temp = write_temp(folder, lambda fh: fh.write(b"hi"), folder / "out.txt")
    >>> os.path.basename(temp).startswith(TEMP_PREFIX), open(temp, "rb").read()
    (True, b'hi')
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=folder)
    except OSError as exc:
        raise cannot_write(target, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give outputs the usual permissions
    except BaseException as exc:
        discard(temp)
        if isinstance(exc, OSError):
            raise cannot_write(target, exc) from None
        raise
    return temp


def rename_into_place(renames: Sequence[tuple[str, Path]]) -> None:
    """Rename each temporary onto its target, in order; temporaries not renamed are removed."""
    pending = [temp for temp, _ in renames]
    try:
        for temp, target in renames:
            try:
                os.replace(temp, target)
            except OSError as exc:
                raise cannot_write(target, exc) from None
            pending.remove(temp)
    finally:
        for temp in pending:
            discard(temp)


def write_atomic(path: os.PathLike[str] | str, write: Writer, *, reads: ReadSet | None = None) -> Path:
    """Write `path` atomically: `write(file_object)` fills a temporary beside it, which is fsynced
    and renamed over `path`. With `reads`, a `path` that is one of the command's inputs is refused
    first (ConfigError, exit 2). Returns the path.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "notes.txt"
    >>> write_atomic(target, lambda fh: fh.write(b"done\\n")).read_bytes()
    b'done\\n'
    >>> write_atomic(target, lambda fh: fh.write(b"again"), reads=ReadSet([target]))
    Traceback (most recent call last):
    ...
    clipstyler_opt.core.errors.ConfigError: ... is the input ...; refusing to overwrite it (choose another output)
    """
    path = Path(path)
    if reads is not None:
        reads.refuse(path)
    rename_into_place([(write_temp(path.parent, write, path), path)])
    return path


def write_bytes(path: os.PathLike[str] | str, data: bytes, *, reads: ReadSet | None = None) -> Path:
    """`write_atomic` of a whole bytes value.

    >>> import tempfile
    >>> write_bytes(Path(tempfile.mkdtemp()) / "a.json", b"{}").read_bytes()
    b'{}'
    """
    return write_atomic(path, lambda fh: fh.write(data), reads=reads)


def claim_together(staged: Sequence[tuple[str, Callable[[Path], Path]]], candidates: Iterable[Path]) -> Path | None:
    """Hard-link each staged temporary to its name for the first candidate whose names are all
    free, and return that candidate (None when every candidate is taken). `staged` pairs a
    temporary with the function giving its name from a candidate (the image itself, its sidecar,
    its animation). A name taken meanwhile releases the names already linked and moves on, so a
    default name and its companions are claimed together or not at all. The temporaries stay for
    the caller to discard.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> image = write_temp(folder, lambda fh: fh.write(b"i"), folder / "a")
    >>> note = write_temp(folder, lambda fh: None, folder / "a")
    >>> _ = (folder / "a-2.txt").write_bytes(b"someone else's")
    >>> names = [folder / "a.png", folder / "a-2.png", folder / "a-3.png"]
    >>> (folder / "a.png").write_bytes(b"taken") and None
    >>> claim_together([(image, lambda c: c), (note, lambda c: c.with_suffix(".txt"))], names).name
    'a-3.png'
    """
    for candidate in candidates:
        linked: list[Path] = []
        try:
            for temp, name_of in staged:
                name = name_of(candidate)
                os.link(temp, name)
                linked.append(name)
            return candidate
        except FileExistsError:
            pass
        finally:
            if len(linked) != len(staged):
                for name in linked:  # release our claim; a companion left by someone else is not ours to touch
                    os.unlink(name)
    return None


@contextlib.contextmanager
def scratch_folder(prefix: str = "clipopt-") -> Iterator[Path]:
    """A private temporary folder (mode 0700, in the system's temporary folder), removed with all
    it holds afterwards: for tools that need a path of their own (an encoder, a probe), never for
    a user's files.

    >>> with scratch_folder() as folder:
    ...     oct(folder.stat().st_mode & 0o777)
    '0o700'
    """
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        yield Path(folder)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Held while one process reads, changes and writes a shared file, so that processes side by
    side never lose each other's entries. `path` is the lock file (created, never followed through
    a link); waits for the other holder; a file system without flock runs unlocked.

    Example:
        >>> with exclusive_lock(Path(tempfile.mkdtemp()) / ".lock"):
        ...     pass
    """
    import errno
    import fcntl

    from clipstyler_opt.core.files.reading import open_regular

    fd = open_regular(path, os.O_RDWR | os.O_CREAT, follow_links=False)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
        yield
    finally:
        os.close(fd)
