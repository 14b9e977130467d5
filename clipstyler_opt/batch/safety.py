"""Keeping a batch's inputs out of reach of its own writes, and opening only regular files.

A batch never writes a file that is one of its inputs: not when an INPUT lies inside the
output folder and a job's output would land on it, not through a symbolic link in the output
folder that points at an input, not through a hard link to one. Files are told apart by
device and inode (the file gate's `file_identity`), which also covers two spellings of one
path. The batch's own files (manifest, journals, lock) are opened through the gate's
`open_regular` without following a final symbolic link, so a FIFO placed there cannot block
the batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from clipstyler_opt.batch.jobs import Job
from clipstyler_opt.core.files import file_identity
from clipstyler_opt.core.naming import frames_folder, printable
from clipstyler_opt.run.animation import batch_animation_path
from clipstyler_opt.run.images import sidecar_path

__all__ = ["InputGuard"]


class InputGuard:
    """Knows the batch's inputs by device and inode, and tells when a path is one of them."""

    def __init__(self, inputs: Iterable[Path], *, animation: str | None = None) -> None:
        self._animation = animation  # --animation: each job also writes `<output stem>.<format>`
        self._inputs: dict[tuple[int, int], Path] = {}
        self._folders: dict[str, Path] = {}  # real folder of each input -> an input in it
        for path in inputs:
            identity = file_identity(path)
            if identity is not None:
                self._inputs.setdefault(identity, path)
                self._folders.setdefault(os.path.dirname(os.path.realpath(path)), path)

    def input_at(self, path: Path) -> Path | None:
        """The input that `path` is (itself, or through a symbolic or hard link), or None."""
        identity = file_identity(path)
        return self._inputs.get(identity) if identity is not None else None

    def targets(self, job: Job) -> list[Path]:
        """The files `job` writes: its output, its sidecar and, with --animation, its animation."""
        files = [job.output, sidecar_path(job.output)]
        if self._animation:
            files.append(batch_animation_path(job.output, self._animation))
        return files

    def refusal(self, job: Job, *, frames: bool = False) -> str | None:
        """Why `job` must not write its output, sidecar or animation (or, with `frames`, the frames of
        --save-every, which go into a folder beside the output), or None when it may."""
        for target in self.targets(job):
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
