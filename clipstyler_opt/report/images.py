"""Image references for the pages: relative URLs, data URIs, downscaled JPEGs, flat grey images."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from urllib.parse import quote

from PIL import Image, ImageOps, UnidentifiedImageError

from clipstyler_opt.core.errors import InputImageError
from clipstyler_opt.core.naming import printable

__all__ = [
    "BROWSER_TYPES",
    "data_uri",
    "file_data_uri",
    "grey_data_uri",
    "image_size",
    "image_source",
    "relative_url",
    "thumbnail_data_uri",
]

# Formats every current browser shows, by suffix; anything else is converted to PNG first.
BROWSER_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                 ".webp": "image/webp"}


def relative_url(target: Path, page_folder: Path) -> str:
    """A URL for `target` relative to a page in `page_folder`, percent-encoded from the file name's
    bytes (so undecodable names still resolve)."""
    relative = os.path.relpath(os.path.realpath(target), os.path.realpath(page_folder))
    return quote(os.fsencode(Path(relative).as_posix()), safe="/")


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _open_rgb(path: Path) -> Image.Image:
    """The decoded image; a damaged file (a truncated TIFF...) is an InputImageError naming it."""
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            return image.convert("RGBA" if "A" in image.getbands() else "RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputImageError(f"{printable(str(path))}: cannot decode the image ({printable(reason)})") from None


def file_data_uri(path: Path) -> str:
    """The file itself as a data URI, or a PNG of it when browsers cannot show its format."""
    mime = BROWSER_TYPES.get(path.suffix.lower())
    if mime is not None:
        return data_uri(path.read_bytes(), mime)
    return data_uri(_encode(_open_rgb(path), "PNG"), "image/png")


def image_source(path: Path, page_folder: Path, *, embed: bool) -> str:
    """What an <img src> should hold: a relative URL, or a data URI when embedding or when the
    format is one browsers cannot show."""
    if embed or path.suffix.lower() not in BROWSER_TYPES:
        return file_data_uri(path)
    return relative_url(path, page_folder)


def thumbnail_data_uri(path: Path, max_side: int = 512, quality: int = 85) -> str:
    """A JPEG data URI of the image with its long side at most `max_side` (transparency on white)."""
    image = _open_rgb(path)
    if image.mode == "RGBA":
        flat = Image.new("RGB", image.size, (255, 255, 255))
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return data_uri(_encode(image, "JPEG", quality=quality, optimize=True), "image/jpeg")


def grey_data_uri(size: tuple[int, int], max_side: int = 512) -> str:
    """A flat mid-grey JPEG with the aspect ratio of `size`, long side at most `max_side`."""
    width, height = size
    scale = min(1.0, max_side / max(width, height))
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))
    return data_uri(_encode(Image.new("RGB", shape, (128, 128, 128)), "JPEG", quality=85), "image/jpeg")


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) after EXIF orientation, or None when the file cannot be read as an image."""
    try:
        with Image.open(path) as image:
            return ImageOps.exif_transpose(image).size
    except (OSError, UnidentifiedImageError):
        return None
