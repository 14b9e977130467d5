"""Finding the input images of a batch: folders, single files and glob patterns.

Inside folders and glob matches a file counts as an image when its first bytes carry an
image signature, or failing that when its extension names an image format (so a corrupt
`photo.jpg` is still attempted and reported as failed rather than silently ignored).
A file named explicitly on the command line is always attempted.

Nothing that is not a regular file is ever opened (a FIFO would block, a device node could
react to being opened): such entries, dangling links, link loops, empty files and folders
that cannot be listed are skipped, and each is reported with its reason.
"""

from __future__ import annotations

import errno
import glob
import logging
import os
import posixpath
import stat
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from clipstyler_opt.core.errors import InputImageError
from clipstyler_opt.core.files import open_regular
from clipstyler_opt.core.naming import printable

__all__ = [
    "IMAGE_EXTENSIONS",
    "NOT_AN_IMAGE",
    "Discovery",
    "InputFile",
    "SkippedInput",
    "discover_inputs",
    "looks_like_image",
    "scan_inputs",
]

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
_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))
NOT_AN_IMAGE = "not an image"


@dataclass(frozen=True)
class InputFile:
    path: Path  # as found (relative to the current folder when the INPUT was relative)
    root: Path  # the folder the INPUT names (a file's parent; a glob's fixed leading folders)
    relative: PurePosixPath  # path below `root`; decides the output name and the job's seed


@dataclass(frozen=True)
class SkippedInput:
    path: Path
    reason: str  # e.g. "a FIFO (named pipe)", "dangling symbolic link", "not an image"


@dataclass
class Discovery:
    inputs: list[InputFile] = field(default_factory=list)
    skipped: list[SkippedInput] = field(default_factory=list)


def _read_head(path: Path, size: int) -> bytes | None:
    """The first bytes of a regular file; None for anything else. Opened without blocking, and
    checked on the open descriptor, so a FIFO swapped in after a stat cannot hang the read."""
    try:
        fd = open_regular(path)  # the file gate: a FIFO, device or folder is refused without blocking
    except OSError:
        return None
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


def looks_like_image(path: Path) -> bool:
    """True when a regular file's first bytes carry an image signature, or when they cannot be
    read and its extension names an image format. Never opens anything but a regular file."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
    except OSError:
        return False
    head = _read_head(path, 32)
    if head is None:
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


def _unusable(path: Path) -> str | None:
    """Why a directory entry cannot be an input, or None for a non-empty regular file."""
    try:
        info = os.stat(path)
    except OSError as exc:
        if os.path.islink(path):
            return "symbolic link loop" if exc.errno == errno.ELOOP else "dangling symbolic link"
        return f"cannot read ({exc.strerror or exc})"
    for test, kind in _KINDS:
        if test(info.st_mode):
            return kind
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    return "empty file" if info.st_size == 0 else None


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _inside(path: Path, folder: Path | None) -> bool:
    """`path` is `folder` or below it, by its absolute path or by its real path."""
    if folder is None:
        return False
    real_folder = Path(os.path.realpath(folder))
    for candidate, base in ((Path(os.path.abspath(path)), folder), (Path(os.path.realpath(path)), real_folder)):
        if candidate == base or base in candidate.parents:
            return True
    return False


def _walk_folder(root: Path, recursive: bool, exclude: Path | None, skipped: list[SkippedInput]) -> Iterator[Path]:
    def unlistable(exc: OSError) -> None:
        skipped.append(SkippedInput(Path(exc.filename or root), f"cannot list folder ({exc.strerror or exc})"))

    for current, folders, files in os.walk(root, onerror=unlistable):
        kept = []
        for name in sorted(folders):
            path = Path(current, name)
            if _hidden(name) or _inside(path, exclude):
                continue
            if recursive and os.path.islink(path):
                skipped.append(SkippedInput(path, "symbolic link to a folder (not followed)"))
                continue
            kept.append(name)
        folders[:] = kept
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


def _candidates(spec: str, recursive: bool, exclude: Path | None,
                skipped: list[SkippedInput]) -> list[tuple[Path, Path, bool]]:
    """(entry, root, named explicitly) for one INPUT; entries are not yet checked."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return [(f, path, False) for f in _walk_folder(path, recursive, exclude, skipped)]
    if path.is_file():
        return [(path, path.parent, True)]
    if _GLOB_CHARS & set(spec):
        root = _glob_root(spec)
        matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(spec), recursive=True))
        return [(m, root, False) for m in matches if not m.is_dir() and not _inside(m, exclude)]
    if os.path.lexists(path):
        raise InputImageError(f"{printable(spec)}: not a regular file or folder ({_unusable(path) or 'unusable'})")
    raise InputImageError(f"{printable(spec)}: no such file or folder")


def scan_inputs(specs: Sequence[str], *, recursive: bool = False, exclude: Path | None = None) -> Discovery:
    """Every image named by `specs`, in a stable order, each once, and every entry passed over
    with its reason (hidden files and `exclude`, the output folder, are passed over silently:
    results must not become inputs on the next run)."""
    excluded = Path(os.path.abspath(exclude)) if exclude is not None else None
    seen: set[str] = set()
    found = Discovery()
    for spec in specs:
        for path, root, explicit in _candidates(spec, recursive, excluded, found.skipped):
            key = os.path.abspath(path)
            if key in seen:
                continue
            if not explicit:
                reason = _unusable(path) or (None if looks_like_image(path) else NOT_AN_IMAGE)
                if reason is not None:
                    found.skipped.append(SkippedInput(path, reason))
                    continue
            seen.add(key)
            found.inputs.append(InputFile(path, root, _relative(path, root)))
    _log_skipped(found.skipped)
    return found


def discover_inputs(specs: Sequence[str], *, recursive: bool = False,
                    exclude: Path | None = None) -> list[InputFile]:
    """The images of `scan_inputs`."""
    return scan_inputs(specs, recursive=recursive, exclude=exclude).inputs


def _log_skipped(skipped: list[SkippedInput]) -> None:
    reasons = Counter(item.reason for item in skipped)
    not_images = reasons.pop(NOT_AN_IMAGE, 0)
    if not_images:
        log.info("ignored %d file(s) that are not images", not_images)
    if reasons:
        listed = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
        log.warning("skipped %d input entr%s that cannot be read as images (%s); the manifest's summary "
                    "lists them", sum(reasons.values()), "y" if sum(reasons.values()) == 1 else "ies", listed)
