"""Writing outputs so that nothing is ever half-written or clobbered, and no input is overwritten.

Every file is first written in full to a short temporary name beside its target
(`.clipopt-XXXXXXXX.tmp`, whatever the target's length) and fsynced. An explicit output path is
then replaced by a rename; a default name is claimed with a hard link, which fails when the name
exists, so concurrent runs never share a name and nothing is checked-then-written.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from clipstyler_opt.core.errors import ConfigError, OutputError
from clipstyler_opt.core.naming import NAME_MAX, SIDECAR_SUFFIX, frames_folder, name_bytes, numbered_paths
from clipstyler_opt.core.portable import portable_metadata

__all__ = [
    "OUTPUT_FORMATS",
    "TEMP_PREFIX",
    "TEMP_SUFFIX",
    "check_writable",
    "frame_writer",
    "output_format",
    "refuse_overwriting_inputs",
    "same_file",
    "save_image",
    "save_image_exclusive",
    "sidecar_path",
    "write_atomic",
]

OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
TEMP_PREFIX, TEMP_SUFFIX = ".clipopt-", ".tmp"
_CLAIM_ATTEMPTS = 10_000
_UMASK = os.umask(0)
os.umask(_UMASK)


# --- where outputs may go ---

def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when `a` and `b` name the same file: the same path once `..` and symlinks are
    resolved, or the same inode (a hard link)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def refuse_overwriting_inputs(output: str | os.PathLike[str],
                              inputs: Iterable[str | os.PathLike[str] | None]) -> None:
    """Raise ConfigError (exit 2) when `output` or its sidecar is one of `inputs` (None entries
    are skipped): an input is never written over, whatever the path that leads to it."""
    sources = [source for source in inputs if source is not None]
    for target in (Path(output), sidecar_path(Path(output))):
        for source in sources:
            if same_file(target, source):
                raise ConfigError(f"{target} is the input {source}; refusing to overwrite it "
                                  "(choose another output)")


def check_writable(path: Path) -> None:
    """Fail before hours of work, not after: the extension is known, the name fits with its
    sidecar, and the folder takes files (probed with a short temporary name)."""
    output_format(path)
    if name_bytes(path.name + SIDECAR_SUFFIX) > NAME_MAX:
        raise OutputError(f"{path.name[:40]}...: file name too long (at most {NAME_MAX - 5} bytes, "
                          "so that its .json sidecar fits)")
    _discard(_write_temp(path.parent, lambda fh: None, path))


def sidecar_path(output: Path) -> Path:
    return output.with_name(output.name + SIDECAR_SUFFIX)


def output_format(path: Path) -> str:
    try:
        return OUTPUT_FORMATS[path.suffix.lower()]
    except KeyError:
        raise OutputError(f"{path}: unsupported output extension {path.suffix or '(none)'!r}; "
                          f"use one of {', '.join(sorted(OUTPUT_FORMATS))}") from None


# --- writing ---

def _cannot_write(path: Path, exc: OSError) -> OutputError:
    return OutputError(f"{path}: cannot write ({exc.strerror or exc})")


def _discard(temp: str | None) -> None:
    if temp is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def _write_temp(folder: Path, write: Callable[[Any], Any], target: Path) -> str:
    """Write `write(file_object)` to `.clipopt-XXXXXXXX.tmp` in `folder` (short, whatever the
    target's name), fsynced, with the usual permissions; removed again on any failure."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=folder)
    except OSError as exc:
        raise _cannot_write(target, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give outputs the usual permissions
    except BaseException as exc:
        _discard(temp)
        if isinstance(exc, OSError):
            raise _cannot_write(target, exc) from None
        raise
    return temp


def _rename_into_place(renames: list[tuple[str, Path]]) -> None:
    """os.replace each temporary onto its target, in order; temporaries not renamed are removed."""
    pending = [temp for temp, _ in renames]
    try:
        for temp, target in renames:
            try:
                os.replace(temp, target)
            except OSError as exc:
                raise _cannot_write(target, exc) from None
            pending.remove(temp)
    finally:
        for temp in pending:
            _discard(temp)


def write_atomic(path: Path, write: Callable[[Any], Any]) -> None:
    """Call `write(file_object)` on a temporary file beside `path`, fsync, then rename over `path`."""
    _rename_into_place([(_write_temp(path.parent, write, path), path)])


def _text(value: Any) -> str:
    """PNG iTXt is UTF-8: bytes of a non-UTF-8 file name or prompt become backslash escapes."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _stage(image: Image.Image, path: Path, metadata: dict[str, Any] | None, sidecar: bool,
           portable: bool) -> tuple[str, str | None, list[str]]:
    """Write the encoded image and its sidecar to temporary files: (image temp, sidecar temp, notes)."""
    fmt = output_format(path)
    notes: list[str] = []
    if fmt == "JPEG" and image.mode == "RGBA":
        notes.append(f"{path.name}: JPEG has no alpha channel; transparency was dropped")
        image = image.convert("RGB")
    embedded = portable_metadata(metadata or {})
    blob = json.dumps(embedded, sort_keys=True)  # ASCII: lone surrogates of non-UTF-8 names as \udcXX
    options: dict[str, Any] = {}
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", "clipstyler_opt")
        for key in ("prompt", "seed"):
            if key in embedded:
                info.add_itxt(key, _text(embedded[key]))
        info.add_itxt("clipstyler_opt", blob)
        options["pnginfo"] = info
    else:
        exif = Image.Exif()
        exif[0x0131] = "clipstyler_opt"  # Software
        exif[0x010E] = blob  # ImageDescription
        options.update(exif=exif, quality=95)
    image_temp = _write_temp(path.parent, lambda fh: image.save(fh, format=fmt, **options), path)
    if not sidecar:
        return image_temp, None, notes
    text = json.dumps(embedded if portable else (metadata or {}), indent=2, sort_keys=True)
    try:
        return image_temp, _write_temp(path.parent, lambda fh: fh.write(text.encode()), sidecar_path(path)), notes
    except BaseException:
        _discard(image_temp)
        raise


def save_image(image: Image.Image, path: Path, metadata: dict[str, Any] | None = None, *,
               sidecar: bool = True, portable: bool = False) -> list[str]:
    """Write `image` in the format its extension names, replacing `path` atomically. The image
    embeds `portable_metadata(metadata)` (PNG text chunks; EXIF ImageDescription for JPEG/WebP);
    the JSON sidecar beside it holds the full metadata, or the portable one with `portable`.
    Both are written before either is renamed into place. Returns warnings (e.g. alpha dropped)."""
    path = Path(path)
    image_temp, sidecar_temp, notes = _stage(image, path, metadata, sidecar, portable)
    renames = [(image_temp, path)]
    if sidecar_temp is not None:
        renames.append((sidecar_temp, sidecar_path(path)))
    _rename_into_place(renames)
    return notes


def save_image_exclusive(image: Image.Image, path: Path, metadata: dict[str, Any] | None = None, *,
                         sidecar: bool = True, portable: bool = False) -> tuple[Path, list[str]]:
    """Like `save_image`, but never replaces anything: the finished file is hard-linked to `path`,
    or to the first of `<stem>-2<ext>`, `<stem>-3<ext>`, ... whose name (and sidecar name) is
    free. A link fails if the name exists, so concurrent savers never take the same name.
    Returns the path written and the warnings."""
    path = Path(path)
    image_temp, sidecar_temp, notes = _stage(image, path, metadata, sidecar, portable)
    try:
        for candidate in itertools.islice(numbered_paths(path), _CLAIM_ATTEMPTS):
            if _link_pair(image_temp, sidecar_temp, candidate):
                return candidate, notes
    except OSError as exc:
        raise OutputError(f"{path}: cannot create ({exc.strerror or exc}; a file system without hard "
                          "links needs an explicit output path)") from None
    finally:
        _discard(image_temp)
        _discard(sidecar_temp)
    raise OutputError(f"{path}: no free name among {_CLAIM_ATTEMPTS} numbered variants")


def _link_pair(image_temp: str, sidecar_temp: str | None, candidate: Path) -> bool:
    """Hard-link the image (and its sidecar) to `candidate`; False when either name is taken."""
    try:
        os.link(image_temp, candidate)
    except FileExistsError:
        return False
    if sidecar_temp is None:
        return True
    try:
        os.link(sidecar_temp, sidecar_path(candidate))
        return True
    except BaseException as exc:
        os.unlink(candidate)  # release our claim; a sidecar left without its image is not ours to touch
        if isinstance(exc, FileExistsError):
            return False
        raise


def _claim_folder(output: Path) -> Path:
    """Create the first free `<stem>_frames[-N]` folder beside `output`; mkdir is atomic."""
    output.parent.mkdir(parents=True, exist_ok=True)
    for number in range(1, _CLAIM_ATTEMPTS + 1):
        folder = frames_folder(output, number)
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise OutputError(f"{frames_folder(output)}: no free name among {_CLAIM_ATTEMPTS} numbered variants")


def frame_writer(output: Path, metadata: dict[str, Any], *,
                 exclusive: bool = False) -> Callable[[int, Image.Image], None]:
    """Saves intermediate frames as `<output stem>_frames/<step>.png` (for --save-every). With
    `exclusive`, the folder is a new one (`_frames-2`, ... when taken), created at the first frame."""
    folder: list[Path] = [] if exclusive else [frames_folder(Path(output))]

    def save_frame(step: int, frame: Image.Image) -> None:
        if not folder:
            try:
                folder.append(_claim_folder(Path(output)))
            except OSError as exc:
                raise _cannot_write(frames_folder(Path(output)), exc) from None
        save_image(frame, folder[0] / f"{step:05d}.png", {**metadata, "step": step}, sidecar=False)

    return save_frame
