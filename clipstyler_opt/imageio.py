"""Image loading (EXIF, modes, bombs, absurd sizes) and atomic saving with provenance metadata."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Union

import numpy as np
import torch
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from .errors import InputImageError, OutputError

__all__ = [
    "ImageSource",
    "LoadedImage",
    "load_image",
    "save_image",
    "write_atomic",
    "sidecar_path",
    "frame_writer",
    "pil_to_tensor",
    "tensor_to_pil",
    "OUTPUT_FORMATS",
    "MAX_PIXELS",
    "MAX_ASPECT",
]

ImageSource = Union[str, os.PathLike, Image.Image, torch.Tensor]
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485  # Pillow's decompression-bomb threshold
MAX_ASPECT = 32
_UMASK = os.umask(0)
os.umask(_UMASK)
_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


@dataclass(frozen=True)
class LoadedImage:
    rgb: Image.Image  # 8-bit RGB, EXIF orientation applied
    alpha: Image.Image | None  # 8-bit L, or None when the input had no transparency
    source: str
    sha256: str | None  # of the file's bytes, when loaded from a file


def load_image(source: ImageSource) -> LoadedImage:
    if isinstance(source, torch.Tensor):
        return _split_alpha(_tensor_to_input_pil(source), "<tensor>", None)
    if isinstance(source, Image.Image):
        return _split_alpha(_check_size(ImageOps.exif_transpose(source), "<PIL image>"), "<PIL image>", None)
    path = Path(source)
    if not path.exists():
        raise InputImageError(f"{path}: no such file")
    if not path.is_file():
        raise InputImageError(f"{path}: not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    image = _decode(data, str(path))
    return _split_alpha(image, str(path), hashlib.sha256(data).hexdigest())


def _decode(data: bytes, name: str) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            _check_size(image, name)
            image.load()
            image = ImageOps.exif_transpose(image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InputImageError(f"{name}: image is larger than {MAX_PIXELS} pixels (decompression bomb?)") from None
        except UnidentifiedImageError:
            raise InputImageError(f"{name}: not an image file (or an unsupported format)") from None
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


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """8-bit RGB PIL image -> float tensor (1, 3, H, W) in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """Float tensor (1, 3, H, W) or (3, H, W) in [0, 1] -> 8-bit RGB PIL image (rounded)."""
    t = tensor.detach().float().cpu()
    t = t[0] if t.dim() == 4 else t
    array = (t.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(array, "RGB")


# --- saving ---

def sidecar_path(output: Path) -> Path:
    return output.with_name(output.name + ".json")


def write_atomic(path: Path, write: Any) -> None:
    """Call `write(file_object)` on a temporary file beside `path`, fsync, then rename over `path`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give outputs the usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def output_format(path: Path) -> str:
    try:
        return OUTPUT_FORMATS[path.suffix.lower()]
    except KeyError:
        raise OutputError(f"{path}: unsupported output extension {path.suffix or '(none)'!r}; "
                          f"use one of {', '.join(sorted(OUTPUT_FORMATS))}") from None


def save_image(image: Image.Image, path: Path, metadata: dict[str, Any] | None = None, *,
               sidecar: bool = True) -> list[str]:
    """Write `image` atomically in the format its extension names, with `metadata` embedded
    (PNG text chunks; EXIF ImageDescription for JPEG/WebP) and, if `sidecar`, a JSON file
    beside it. Returns warnings (e.g. alpha dropped for JPEG)."""
    path = Path(path)
    fmt = output_format(path)
    notes: list[str] = []
    if fmt == "JPEG" and image.mode == "RGBA":
        notes.append(f"{path.name}: JPEG has no alpha channel; transparency was dropped")
        image = image.convert("RGB")
    blob = json.dumps(metadata or {}, sort_keys=True)
    options: dict[str, Any] = {}
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", "clipstyler_opt")
        for key in ("prompt", "seed"):
            if metadata and key in metadata:
                info.add_itxt(key, str(metadata[key]))
        info.add_itxt("clipstyler_opt", blob)
        options["pnginfo"] = info
    else:
        exif = Image.Exif()
        exif[0x0131] = "clipstyler_opt"  # Software
        exif[0x010E] = blob  # ImageDescription; json.dumps output is ASCII
        options.update(exif=exif, quality=95)
    write_atomic(path, lambda fh: image.save(fh, format=fmt, **options))
    if sidecar:
        write_atomic(sidecar_path(path), lambda fh: fh.write(json.dumps(metadata or {}, indent=2,
                                                                          sort_keys=True).encode()))
    return notes


def frame_writer(output: Path, metadata: dict[str, Any]) -> Callable[[int, Image.Image], None]:
    """Saves intermediate frames as `<output stem>_frames/<step>.png` (for --save-every)."""
    folder = Path(output).with_name(f"{Path(output).stem}_frames")

    def save_frame(step: int, frame: Image.Image) -> None:
        save_image(frame, folder / f"{step:05d}.png", {**metadata, "step": step}, sidecar=False)

    return save_frame
