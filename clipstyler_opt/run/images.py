"""Image loading: allowed formats only, file size and header checked before the pixels are read,
EXIF orientation, modes, bombs, absurd sizes. Saving lives in `outputs` (re-exported here)."""

from __future__ import annotations

import hashlib
import io
import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from clipstyler_opt.core.errors import ConfigError, InputImageError
from clipstyler_opt.core.files import describe_os_error, open_for_reading
from clipstyler_opt.run.outputs import (
    OUTPUT_FORMATS,
    check_writable,
    frame_writer,
    output_format,
    refuse_overwriting_inputs,
    same_file,
    save_image,
    save_image_exclusive,
    sidecar_path,
    write_atomic,
)

__all__ = [
    "INPUT_FORMATS",
    "MAX_ASPECT",
    "MAX_INPUT_BYTES",
    "MAX_INPUT_ENV",
    "MAX_PIXELS",
    "OUTPUT_FORMATS",
    "ImageSource",
    "LoadedImage",
    "check_writable",
    "decode_image_bytes",
    "frame_writer",
    "image_format",
    "load_image",
    "max_input_bytes",
    "open_image",
    "output_format",
    "read_image_file",
    "refuse_overwriting_inputs",
    "same_file",
    "save_image",
    "save_image_exclusive",
    "sidecar_path",
    "write_atomic",
]

ImageSource = str | os.PathLike | Image.Image | torch.Tensor
# Raster formats Pillow decodes in-process. Never EPS/PS/PDF (Ghostscript) or anything that runs a program.
INPUT_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "DIB", "TIFF", "PPM", "TGA", "ICO", "QOI", "JPEG2000",
                 "AVIF")
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485  # Pillow's decompression-bomb threshold
MAX_ASPECT = 32
MAX_INPUT_BYTES = 512 * 2**20
MAX_INPUT_ENV = "CLIPOPT_MAX_INPUT_MB"
_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


@dataclass(frozen=True)
class LoadedImage:
    rgb: Image.Image  # 8-bit RGB, EXIF orientation applied
    alpha: Image.Image | None  # 8-bit L, or None when the input had no transparency
    source: str
    sha256: str | None  # of the file's bytes, when loaded from a file


def max_input_bytes() -> int:
    """The largest input file read: MAX_INPUT_BYTES, or $CLIPOPT_MAX_INPUT_MB mebibytes."""
    raw = os.environ.get(MAX_INPUT_ENV, "").strip()
    if not raw:
        return MAX_INPUT_BYTES
    try:
        megabytes = float(raw)
    except ValueError:
        megabytes = math.nan
    if not (math.isfinite(megabytes) and megabytes > 0):
        raise ConfigError(f"{MAX_INPUT_ENV}={raw!r}: must be a positive number of MiB")
    return int(megabytes * 2**20)


def load_image(source: ImageSource) -> LoadedImage:
    if isinstance(source, torch.Tensor):
        return _split_alpha(_tensor_to_input_pil(source), "<tensor>", None)
    if isinstance(source, Image.Image):
        return _split_alpha(_check_size(ImageOps.exif_transpose(source), "<PIL image>"), "<PIL image>", None)
    path = Path(source)
    data = read_image_file(path)
    image = _decode(io.BytesIO(data), str(path), load=True)
    return _split_alpha(image, str(path), hashlib.sha256(data).hexdigest())


def read_image_file(path: Path) -> bytes:
    """The bytes of an image file, read through the file gate only once it is known to be a
    regular file of at most `max_input_bytes()` whose header names an allowed format and a sane
    size; InputImageError (exit 3) otherwise. Nothing is decoded beyond the header.

    >>> read_image_file(Path("/no/such.png"))
    Traceback (most recent call last):
    ...
    clipstyler_opt.core.errors.InputImageError: /no/such.png: no such file
    """
    name, limit = str(path), max_input_bytes()
    try:
        with open_for_reading(path) as fh:  # a FIFO, device or folder is refused without blocking
            size = os.fstat(fh.fileno()).st_size
            if size > limit:
                raise InputImageError(f"{name}: {size} bytes is larger than the limit of {limit} "
                                      f"(set {MAX_INPUT_ENV} to raise it)")
            _decode(fh, name, load=False)  # header only: format and dimensions (closing it would close fh)
            fh.seek(0)
            data = fh.read(limit + 1)
    except OSError as exc:
        raise InputImageError(f"{name}: {describe_os_error(exc)}") from None
    if len(data) > limit:
        raise InputImageError(f"{name}: grew beyond the limit of {limit} bytes while being read")
    return data


def decode_image_bytes(data: bytes, name: str) -> Image.Image:
    """Decode an image held in memory through the format allow-list and the size checks
    (InputImageError otherwise); EXIF orientation applied.

    >>> import io
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (3, 2)).save(buffer, format="PNG")
    >>> decode_image_bytes(buffer.getvalue(), "frame").size
    (3, 2)
    """
    return _decode(io.BytesIO(data), name, load=True)


def image_format(data: bytes, name: str) -> str:
    """The format (Pillow's name) of an image held in memory, read from its header through the
    allow-list (InputImageError otherwise); nothing is decoded.

    >>> import io
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (3, 2)).save(buffer, format="WEBP")
    >>> image_format(buffer.getvalue(), "upload")
    'WEBP'
    """
    return str(_decode(io.BytesIO(data), name, load=False).format)


@contextmanager
def open_image(path: Path) -> Iterator[Image.Image]:
    """An image file opened lazily (header read, pixels not yet decoded) through the gate and the
    format allow-list, for readers of metadata; InputImageError (exit 3) when it is not one.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "dot.png"
    >>> Image.new("RGB", (2, 1)).save(target)
    >>> with open_image(target) as image:
    ...     image.format, image.size
    ('PNG', (2, 1))
    """
    data = read_image_file(Path(path))
    with _decode(io.BytesIO(data), str(path), load=False) as image:
        yield image


def _allowed_formats() -> list[str]:
    Image.init()
    return [fmt for fmt in INPUT_FORMATS if fmt in Image.OPEN]


def _decode(fp: Any, name: str, *, load: bool) -> Image.Image:
    """Open `fp` with the allowed decoders only; check the size the header declares before
    any pixels are decoded; with `load`, decode and apply the EXIF orientation."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image: Image.Image = Image.open(fp, formats=_allowed_formats())
            _check_size(image, name)
            if load:
                image.load()
                image = ImageOps.exif_transpose(image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InputImageError(f"{name}: image is larger than {MAX_PIXELS} pixels (decompression bomb?)") from None
        except UnidentifiedImageError:
            raise InputImageError(f"{name}: not an image in an accepted format "
                                  f"({', '.join(_allowed_formats())})") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise InputImageError(f"{name}: corrupt or truncated image ({str(exc).splitlines()[0]})") from None
    return image


def _check_size(image: Image.Image, name: str) -> Image.Image:
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise InputImageError(f"{name}: {width}x{height} is larger than {MAX_PIXELS} pixels (decompression bomb?)")
    if min(width, height) < 1 or max(width, height) > MAX_ASPECT * min(width, height):
        raise InputImageError(f"{name}: absurd size {width}x{height} (aspect ratio above {MAX_ASPECT}:1)")
    return image


def _to_8bit(image: Image.Image) -> Image.Image:
    if image.mode in _SIXTEEN_BIT:
        scaled = np.asarray(image, dtype=np.float64) * (255.0 / 65535.0)
        return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        peak = 1.0 if values.max(initial=0.0) <= 1.0 else 255.0
        return Image.fromarray(np.clip(np.rint(values / peak * 255.0), 0, 255).astype(np.uint8), "L")
    if image.mode == "1":
        return image.convert("L")
    return image


def _split_alpha(image: Image.Image, source: str, sha256: str | None) -> LoadedImage:
    image = _to_8bit(image)
    if image.mode == "P" or (image.mode in ("L", "RGB") and "transparency" in image.info):
        image = image.convert("RGBA")
    alpha = image.getchannel("A") if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") else None
    if alpha is not None and alpha.getextrema() == (255, 255):
        alpha = None  # fully opaque: nothing to re-attach
    return LoadedImage(image.convert("RGB"), alpha, source, sha256)


def _tensor_to_input_pil(tensor: torch.Tensor) -> Image.Image:
    t = tensor.detach().cpu()
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] not in (1, 3, 4):
        raise InputImageError(f"tensor image must have shape (C, H, W) or (1, C, H, W) with C in 1/3/4, "
                              f"got {tuple(tensor.shape)}")
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    t = t.float()
    if not torch.isfinite(t).all() or t.min() < 0 or t.max() > 1:
        raise InputImageError("tensor image values must be finite and lie in [0, 1]")
    array = (t * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[t.shape[0]]
    return _check_size(Image.fromarray(array.squeeze(-1) if mode == "L" else array, mode), "<tensor>")
