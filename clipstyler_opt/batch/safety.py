"""Keeping a batch's inputs out of reach of its own writes, and opening only regular files.

A batch never writes a file that is one of its inputs: not when an INPUT lies inside the
output folder and a job's output would land on it, not through a symbolic link in the output
folder that points at an input, not through a hard link to one. Files are told apart by
device and inode, which also covers two spellings of one path. The batch's own files
(manifest, journals, lock) are opened without following a final symbolic link, and only
when they are regular files, so a FIFO placed there cannot block the batch.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from clipstyler_opt.batch.jobs import Job
from clipstyler_opt.core.naming import frames_folder, printable
from clipstyler_opt.run.images import sidecar_path

__all__ = ["InputGuard", "open_regular"]


def open_regular(path: Path, flags: int, mode: int = 0o666, *, follow_links: bool = False) -> int:
    """`os.open` that only ever opens a regular file, never blocks on a FIFO and, unless
    `follow_links`, never goes through a final symbolic link; OSError with a readable
    `strerror` otherwise."""
    no_follow = 0 if follow_links else os.O_NOFOLLOW
    try:
        fd = os.open(path, flags | no_follow | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP and os.path.islink(path):
            raise OSError(errno.ELOOP, "it is a symbolic link, which is not followed", str(path)) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)  # follows links: a link to an input is that input
    except (OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino)


class InputGuard:
    """Knows the batch's inputs by device and inode, and tells when a path is one of them."""

    def __init__(self, inputs: Iterable[Path]) -> None:
        self._inputs: dict[tuple[int, int], Path] = {}
        self._folders: dict[str, Path] = {}  # real folder of each input -> an input in it
        for path in inputs:
            identity = _identity(path)
            if identity is not None:
                self._inputs.setdefault(identity, path)
                self._folders.setdefault(os.path.dirname(os.path.realpath(path)), path)

    def input_at(self, path: Path) -> Path | None:
        """The input that `path` is (itself, or through a symbolic or hard link), or None."""
        identity = _identity(path)
        return self._inputs.get(identity) if identity is not None else None

    def refusal(self, job: Job, *, frames: bool = False) -> str | None:
        """Why `job` must not write its output or sidecar (or, with `frames`, the frames of
        --save-every, which go into a folder beside the output), or None when it may."""
        for target in (job.output, sidecar_path(job.output)):
            victim = self.input_at(target)
            if victim is not None:
                how = "a symbolic link to" if os.path.islink(target) else "the same file as"
                return (f"refusing to write {printable(str(target))}: it is {how} the input "
                        f"{printable(str(victim))}")
        folder = frames_folder(job.output)
        victim = self._folders.get(os.path.realpath(folder)) if frames else None
        if victim is not None:
            return (f"refusing to write frames into {printable(str(folder))}: "
                    f"it holds the input {printable(str(victim))}")
        return None
