"""Which files a command reads, told apart by identity, so that no write lands on one of them.

Two names are one file when they resolve to the same path (`..` and symbolic links followed) or
share a device and inode (a hard link). A command fills one `ReadSet` with everything it reads
(inputs, style images, weights, config files, manifests, eval.json, scorer weights) and every
write it makes is checked against it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.files.reading import PathLike

__all__ = ["ReadSet", "file_identity", "refuse_one_file_twice", "same_file"]


def file_identity(path: PathLike) -> tuple[int, int] | None:
    """(device, inode) of the file `path` leads to (links followed), or None when there is none.

    >>> file_identity("/no/such/file") is None
    True
    """
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino)


def same_file(a: PathLike, b: PathLike) -> bool:
    """True when `a` and `b` name one file: the same path once `..` and links are resolved, or
    the same inode (a hard link). Names of files that do not exist yet compare by path.

    >>> same_file("/tmp/x/../y.json", "/tmp/y.json")
    True
    """
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    first = file_identity(a)
    return first is not None and first == file_identity(b)


class ReadSet:
    """The files one command reads. A write onto any of them is refused (exit 2).

    Entries that are None are skipped, so optional files can be added as they are.

    >>> reads = ReadSet(["/etc/hostname", None])
    >>> reads.add("/tmp/settings.toml")
    >>> reads.source_of("/tmp/../tmp/settings.toml")
    PosixPath('/tmp/settings.toml')
    >>> reads.refuse("/etc/../etc/hostname")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    clipstyler_opt.core.errors.ConfigError: /etc/../etc/hostname is the input /etc/hostname; refusing ...
    """

    def __init__(self, paths: Iterable[PathLike | None] = ()) -> None:
        self._paths: dict[str, Path] = {}
        self._identities: dict[tuple[int, int], Path] = {}
        self.add(*paths)

    def add(self, *paths: PathLike | None) -> None:
        """Remember more files this command reads."""
        for path in paths:
            if path is None:
                continue
            self._paths.setdefault(os.path.realpath(path), Path(path))
            identity = file_identity(path)
            if identity is not None:
                self._identities.setdefault(identity, Path(path))

    def __iter__(self) -> Iterator[Path]:
        return iter(dict.fromkeys(self._paths.values()))

    def source_of(self, target: PathLike) -> Path | None:
        """The read file that `target` is (by path, through a link, or a hard link), or None."""
        found = self._paths.get(os.path.realpath(target))
        if found is not None:
            return found
        identity = file_identity(target)
        return self._identities.get(identity) if identity is not None else None

    def refuse(self, *targets: PathLike) -> None:
        """Raise ConfigError (exit 2) when any of `targets` is a file this command reads, or one of
        the files a running batch keeps for itself (its lock, a rank's journal)."""
        for target in targets:
            if is_internal_name(Path(target).name):
                raise ConfigError(f"{os.fspath(target)} is a file clipopt keeps for a result folder (a batch's lock or "
                                  "journal); refusing to overwrite it (choose another output)")
            source = self.source_of(target)
            if source is not None:
                raise ConfigError(f"{os.fspath(target)} is the input {os.fspath(source)}; refusing to overwrite it "
                                  "(choose another output)")


LOCK_NAME = ".clipopt.lock"  # a batch's lock in its output folder (batch/lock.py)
_JOURNAL = re.compile(r"manifest\..+\.rank-\d+\.jsonl")  # a torchrun rank's journal (batch/manifest.py)


def is_internal_name(name: str) -> bool:
    """Whether a file name is one a result folder keeps for a running batch: its lock (and shard
    locks) or a rank's journal. No command writes a user's output there.

    Example:
        >>> is_internal_name(".clipopt.lock"), is_internal_name("manifest.r1.rank-0.jsonl"), is_internal_name("a.csv")
        (True, True, False)
    """
    return name == LOCK_NAME or name.startswith(LOCK_NAME + ".") or _JOURNAL.fullmatch(name) is not None


def refuse_one_file_twice(destinations: Iterable[tuple[str, PathLike | None]]) -> None:
    """Raise ConfigError when two of the command's destinations (`(option, path)` pairs; None
    skipped) are one file, however spelled.

    >>> refuse_one_file_twice([("--json", "w/../m.json"), ("--csv", "m.json")])
    Traceback (most recent call last):
    ...
    clipstyler_opt.core.errors.ConfigError: --json and --csv name the same file (m.json)
    """
    seen: list[tuple[str, PathLike]] = []
    for option, path in destinations:
        if path is None:
            continue
        for other_option, other in seen:
            if same_file(path, other):
                raise ConfigError(f"{other_option} and {option} name the same file ({os.fspath(path)})")
        seen.append((option, path))
