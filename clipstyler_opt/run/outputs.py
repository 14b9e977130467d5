"""Writing outputs so that nothing is ever half-written or clobbered, and no input is overwritten.

The rules live in the file gate (`clipstyler_opt.core.files`): every file is first written in
full to a short temporary name beside its target and fsynced; an explicit output path is then
replaced by a rename; a default name is claimed with hard links together with its companions
(sidecar, animation), which fails when any of the names exists, so concurrent runs never share
a name and nothing is checked-then-written.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from clipstyler_opt.core.errors import OutputError
from clipstyler_opt.core.files import (
    TEMP_PREFIX,
    TEMP_SUFFIX,
    ReadSet,
    cannot_write,
    claim_together,
    discard,
    rename_into_place,
    same_file,
    write_atomic,
    write_temp,
)
from clipstyler_opt.core.naming import NAME_MAX, SIDECAR_SUFFIX, frames_folder, name_bytes, numbered_paths
from clipstyler_opt.core.portable import portable_metadata

__all__ = [
    "OUTPUT_FORMATS",
    "TEMP_PREFIX",
    "TEMP_SUFFIX",
    "Companion",
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
_CLAIM_ATTEMPTS = 10_000


@dataclass(frozen=True)
class Companion:
    """A file written together with an output image (e.g. its animation).

    `name_of(output)` gives its name for a given output name; with `follows_output` that name is
    claimed together with the image's under a default name (`-2`, `-3`, ... together), else it is
    a name the user gave and is replaced atomically. `write(file_object)` writes its content.

    >>> Companion(lambda out: out.with_suffix(".gif"), lambda fh: fh.write(b"GIF89a")).name_of(Path("a.png"))
    PosixPath('a.gif')
    """

    name_of: Callable[[Path], Path]
    write: Callable[[Any], Any]
    follows_output: bool = True


# --- where outputs may go ---

def refuse_overwriting_inputs(output: str | Path, inputs: Iterable[str | Path | None]) -> None:
    """Raise ConfigError (exit 2) when `output` or its sidecar is one of `inputs` (None entries
    are skipped): an input is never written over, whatever the path that leads to it."""
    ReadSet(inputs).refuse(Path(output), sidecar_path(Path(output)))


def check_writable(path: Path) -> None:
    """Fail before hours of work, not after: the extension is known, the name fits with its
    sidecar, and the folder takes files (probed with a short temporary name)."""
    output_format(path)
    if name_bytes(path.name + SIDECAR_SUFFIX) > NAME_MAX:
        raise OutputError(f"{path.name[:40]}...: file name too long (at most {NAME_MAX - 5} bytes, "
                          "so that its .json sidecar fits)")
    discard(write_temp(path.parent, lambda fh: None, path))


def sidecar_path(output: Path) -> Path:
    return output.with_name(output.name + SIDECAR_SUFFIX)


def output_format(path: Path) -> str:
    try:
        return OUTPUT_FORMATS[path.suffix.lower()]
    except KeyError:
        raise OutputError(f"{path}: unsupported output extension {path.suffix or '(none)'!r}; "
                          f"use one of {', '.join(sorted(OUTPUT_FORMATS))}") from None


# --- writing ---

def _text(value: Any) -> str:
    """PNG iTXt is UTF-8: bytes of a non-UTF-8 file name or prompt become backslash escapes."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _stage(image: Image.Image, path: Path, metadata: dict[str, Any] | None, sidecar: bool,
           portable: bool) -> tuple[list[tuple[str, Callable[[Path], Path]]], list[str]]:
    """Write the encoded image and its sidecar to temporary files: ([(temp, name of it for an
    output name)], notes)."""
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
    staged: list[tuple[str, Callable[[Path], Path]]] = [
        (write_temp(path.parent, lambda fh: image.save(fh, format=fmt, **options), path), lambda out: out)]
    if sidecar:
        text = json.dumps(embedded if portable else (metadata or {}), indent=2, sort_keys=True)
        try:
            staged.append((write_temp(path.parent, lambda fh: fh.write(text.encode()), sidecar_path(path)),
                           sidecar_path))
        except BaseException:
            discard(staged[0][0])
            raise
    return staged, notes


def _stage_companions(path: Path, companions: Sequence[Companion],
                      staged: list[tuple[str, Callable[[Path], Path]]]) -> list[tuple[str, Path]]:
    """Write each companion to a temporary beside its name; those following the output join
    `staged` (claimed with it), the others are returned as renames of names the user gave."""
    named: list[tuple[str, Path]] = []
    try:
        for companion in companions:
            target = companion.name_of(path)
            temp = write_temp(target.parent, companion.write, target)
            if companion.follows_output:
                staged.append((temp, companion.name_of))
            else:
                named.append((temp, target))
    except BaseException:
        for temp, _ in [*staged, *named]:
            discard(temp)
        raise
    return named


def save_image(image: Image.Image, path: Path, metadata: dict[str, Any] | None = None, *,
               sidecar: bool = True, portable: bool = False, companions: Sequence[Companion] = ()) -> list[str]:
    """Write `image` in the format its extension names, replacing `path` atomically. The image
    embeds `portable_metadata(metadata)` (PNG text chunks; EXIF ImageDescription for JPEG/WebP);
    the JSON sidecar beside it holds the full metadata, or the portable one with `portable`.
    Image, sidecar and `companions` are all written before any is renamed into place. Returns
    warnings (e.g. alpha dropped)."""
    path = Path(path)
    staged, notes = _stage(image, path, metadata, sidecar, portable)
    named = _stage_companions(path, companions, staged)
    rename_into_place([(temp, name_of(path)) for temp, name_of in staged] + named)
    return notes


def save_image_exclusive(image: Image.Image, path: Path, metadata: dict[str, Any] | None = None, *,
                         sidecar: bool = True, portable: bool = False,
                         companions: Sequence[Companion] = ()) -> tuple[Path, list[str]]:
    """Like `save_image`, but never replaces anything: the finished file is hard-linked to `path`,
    or to the first of `<stem>-2<ext>`, `<stem>-3<ext>`, ... whose name is free together with
    its sidecar's and its companions' (an animation `<stem>.gif` moves on with it). A link fails
    if the name exists, so concurrent savers never take the same name. Companions that do not
    follow the output (a file the user named) are replaced once the name is claimed.
    Returns the path written and the warnings."""
    path = Path(path)
    staged, notes = _stage(image, path, metadata, sidecar, portable)
    named = _stage_companions(path, companions, staged)
    try:
        claimed = claim_together(staged, itertools.islice(numbered_paths(path), _CLAIM_ATTEMPTS))
    except OSError as exc:
        for temp, _ in named:
            discard(temp)
        raise OutputError(f"{path}: cannot create ({exc.strerror or exc}; a file system without hard "
                          "links needs an explicit output path)") from None
    finally:
        for temp, _ in staged:
            discard(temp)
    if claimed is None:
        for temp, _ in named:
            discard(temp)
        raise OutputError(f"{path}: no free name among {_CLAIM_ATTEMPTS} numbered variants")
    rename_into_place(named)
    return claimed, notes


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
                raise cannot_write(frames_folder(Path(output)), exc) from None
        save_image(frame, folder[0] / f"{step:05d}.png", {**metadata, "step": step}, sidecar=False)

    return save_frame
