"""Finding the input images of a batch: folders, single files and glob patterns.

Inside folders and glob matches a file counts as an image when its first bytes carry an
image signature, or failing that when its extension names an image format (so a corrupt
`photo.jpg` is still attempted and reported as failed rather than silently ignored).
A file named explicitly on the command line is always attempted.
"""

from __future__ import annotations

import glob
import logging
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Sequence

from ..errors import InputImageError

__all__ = ["InputFile", "discover_inputs", "looks_like_image", "IMAGE_EXTENSIONS"]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({
    ".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".gif", ".bmp", ".dib", ".tif", ".tiff", ".webp",
    ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".jp2", ".j2k", ".heic", ".heif", ".avif", ".ico",
})
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*",
               b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xffO\xffQ")
_ISO_BRANDS = (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif")
_BMP_HEADER_SIZES = (12, 40, 52, 56, 64, 108, 124)
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class InputFile:
    path: Path  # as found (relative to the current folder when the INPUT was relative)
    root: Path  # the folder the INPUT names (a file's parent; a glob's fixed leading folders)
    relative: PurePosixPath  # path below `root`; decides the output name and the job's seed


def looks_like_image(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(32)
    except OSError:
        return path.suffix.lower() in IMAGE_EXTENSIONS
    if head.startswith(_SIGNATURES):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    if head[4:12] in _ISO_BRANDS:
        return True
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return True
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _inside(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    absolute = Path(os.path.abspath(path))
    return absolute == folder or folder in absolute.parents


def _walk_folder(root: Path, recursive: bool, exclude: Path | None) -> Iterator[Path]:
    for current, folders, files in os.walk(root):
        folders[:] = sorted(f for f in folders if not _hidden(f) and not _inside(Path(current, f), exclude))
        for name in sorted(files):
            if not _hidden(name):
                yield Path(current, name)
        if not recursive:
            break


def _glob_root(pattern: str) -> Path:
    """The fixed leading folders of a pattern: `photos/2024/*.jpg` -> `photos/2024`."""
    fixed: list[str] = []
    for part in Path(pattern).parts:
        if _GLOB_CHARS & set(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _relative(path: Path, root: Path) -> PurePosixPath:
    relative = posixpath.normpath(Path(os.path.relpath(path, root)).as_posix())
    if relative.startswith("..") or relative in (".", "") or posixpath.isabs(relative):
        relative = path.name  # a pattern that climbed out of its root: fall back to the bare name
    return PurePosixPath(relative)


def _candidates(spec: str, recursive: bool, exclude: Path | None) -> Iterable[tuple[Path, Path, bool]]:
    """(file, root, named explicitly) for one INPUT."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return ((f, path, False) for f in _walk_folder(path, recursive, exclude))
    if path.is_file():
        return [(path, path.parent, True)]
    if _GLOB_CHARS & set(spec):
        root = _glob_root(spec)
        matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(spec), recursive=True))
        return [(m, root, False) for m in matches if m.is_file() and not _inside(m, exclude)]
    if path.exists():
        raise InputImageError(f"{spec}: not a file or folder")
    raise InputImageError(f"{spec}: no such file or folder")


def discover_inputs(specs: Sequence[str], *, recursive: bool = False,
                    exclude: Path | None = None) -> list[InputFile]:
    """Every image named by `specs`, in a stable order, each once. `exclude` (the output
    folder) is never searched, so results are not picked up as inputs on the next run."""
    excluded = Path(os.path.abspath(exclude)) if exclude is not None else None
    seen: set[str] = set()
    found: list[InputFile] = []
    ignored = 0
    for spec in specs:
        for path, root, explicit in _candidates(spec, recursive, excluded):
            key = os.path.abspath(path)
            if key in seen:
                continue
            if not explicit and not looks_like_image(path):
                ignored += 1
                continue
            seen.add(key)
            found.append(InputFile(path, root, _relative(path, root)))
    if ignored:
        log.info("ignored %d file(s) that are not images", ignored)
    return found
