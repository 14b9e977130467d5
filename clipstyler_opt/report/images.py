"""Image references for the pages: relative URLs, data URIs, downscaled JPEGs, flat grey images.

Every image file is read and decoded through `clipstyler_opt.run.images` (the file gate and the
format allow-list): a result folder naming an EPS file, or a text file as an image, is a one-line
error (exit 3), never a call to Ghostscript or an internal error."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from urllib.parse import quote

from PIL import Image

from clipstyler_opt.core.errors import InputImageError
from clipstyler_opt.run.images import load_image, open_image, read_image_file

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
    """The image, decoded through the allow-list, in RGB (RGBA when it has transparency)."""
    loaded = load_image(path)
    if loaded.alpha is None:
        return loaded.rgb
    image = loaded.rgb.convert("RGBA")
    image.putalpha(loaded.alpha)
    return image


def file_data_uri(path: Path) -> str:
    """The file itself as a data URI, or a PNG of it when browsers cannot show its format."""
    mime = BROWSER_TYPES.get(path.suffix.lower())
    if mime is not None:
        return data_uri(read_image_file(path), mime)  # an allowed format by its header, not only its name
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
        with open_image(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)  # 5-8: rotated by 90 degrees
    except InputImageError:
        return None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)
