"""Uploaded images: size-limited, decoded through the format allow-list, kept as the job's inputs.

An upload's bytes are checked before anything is written: at most `--max-upload-mb`, then
decoded with the same allow-list and checks as every input image (`run.images`), so a bomb, a
truncated file or PostScript is refused with a one-line message. An accepted upload is written,
byte for byte, to `<output dir>/inputs/` under a generated name (a slug of the browser's file
name and the job's id, with the extension of the decoded format), claimed without ever replacing
a file. The browser's file name is used for the slug only, never as a path. Kept there, the
input is what the record and "copy as command" name.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from clipstyler_opt.core.errors import InputImageError
from clipstyler_opt.core.files import claim_together, discard, write_temp
from clipstyler_opt.core.naming import numbered_paths, printable, slugify

__all__ = ["INPUTS_FOLDER", "CheckedUpload", "UploadTooLarge", "check_upload", "keep_upload"]

INPUTS_FOLDER = "inputs"
_EXTENSIONS = {"JPEG": ".jpg", "JPEG2000": ".jp2", "TIFF": ".tif", "DIB": ".bmp"}
_CLAIM_ATTEMPTS = 1000


class UploadTooLarge(InputImageError):
    """An upload over the studio's --max-upload-mb."""


@dataclass(frozen=True)
class CheckedUpload:
    """An upload that passed the checks: its bytes, the slug of its name, its extension and size."""

    data: bytes
    stem: str
    extension: str
    size: tuple[int, int]


def check_upload(data: bytes, filename: str, *, limit: int) -> CheckedUpload:
    """Check `data` (an upload the browser named `filename`): at most `limit` bytes, then decoded
    through the allow-list; InputImageError (UploadTooLarge over the limit) otherwise.

    Example:
        >>> try:
        ...     check_upload(b"%!PS-Adobe-3.0 EPSF-3.0", "../x.eps", limit=2**20)
        ... except InputImageError as refused:
        ...     print(str(refused)[:48])
        upload x.eps: not an image in an accepted format
    """
    from clipstyler_opt.run.images import decode_image_bytes, image_format

    shown = printable(Path(filename or "upload").name)[:80]
    if len(data) > limit:
        raise UploadTooLarge(f"upload {shown}: {len(data)} bytes is larger than the limit of {limit} "
                             f"({limit / 2**20:g} MB, --max-upload-mb)")
    if not data:
        raise InputImageError(f"upload {shown}: empty file")
    image = decode_image_bytes(data, f"upload {shown}")
    fmt = image_format(data, f"upload {shown}")
    stem = slugify(Path(filename).stem, 40) if filename else "upload"
    return CheckedUpload(data, stem, _EXTENSIONS.get(fmt, f".{fmt.lower()}"), image.size)


def keep_upload(upload: CheckedUpload, folder: Path, tag: str) -> Path:
    """Write a checked upload to `folder/inputs/<slug>-<tag><ext>` (or a numbered variant), never
    replacing a file; the path written.

    Example:
        >>> import io, tempfile
        >>> from PIL import Image
        >>> buffer = io.BytesIO()
        >>> Image.new("RGB", (4, 3)).save(buffer, format="PNG")
        >>> checked = check_upload(buffer.getvalue(), "../../etc/cat.png", limit=2**20)
        >>> path = keep_upload(checked, Path(tempfile.mkdtemp()), "a1")
        >>> path.parent.name, path.name, checked.size
        ('inputs', 'cat-a1.png', (4, 3))
    """
    target = folder / INPUTS_FOLDER / f"{upload.stem}-{tag}{upload.extension}"
    temp = write_temp(target.parent, lambda fh: fh.write(upload.data), target)
    try:
        claimed = claim_together([(temp, lambda name: name)], itertools.islice(numbered_paths(target), _CLAIM_ATTEMPTS))
    finally:
        discard(temp)
    if claimed is None:
        raise InputImageError(f"no free name for an upload in {target.parent}")
    return claimed
