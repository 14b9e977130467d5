"""Input decoding: allowed formats, size limits, regular files only, EXIF, modes, bad files."""

from __future__ import annotations

import os
import struct
import threading
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clipstyler_opt.core.errors import ConfigError, InputImageError
from clipstyler_opt.run.images import MAX_INPUT_ENV, load_image, max_input_bytes


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims `width`x`height` (the pixels are never decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert load_image(path).rgb.size == (20, 40)


# RGB (10, 120, 240) as grey is 0.299*10 + 0.587*120 + 0.114*240 = 100.79 -> 101 (ITU-R 601 luma).
@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "1"])
def test_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    if mode in ("I;16", "I"):
        image = Image.fromarray(np.full((12, 16), 40000, dtype=np.uint16 if mode == "I;16" else np.int32))
        assert image.mode == mode
    else:
        image = Image.new("RGB", (16, 12), (10, 120, 240)).convert(mode)
    loaded = load_image(image)
    assert loaded.rgb.mode == "RGB" and loaded.rgb.size == (16, 12)
    pixels = np.asarray(loaded.rgb, dtype=np.float64).reshape(-1, 3)
    if mode in ("I;16", "I"):  # 16-bit values are scaled, not clipped: 40000/65535 of white
        assert loaded.rgb.getpixel((0, 0)) == (156, 156, 156)
    elif mode in ("L", "LA"):
        assert (pixels == 101).all()
    elif mode in ("RGBA", "CMYK"):  # lossless round trips
        assert (pixels == (10, 120, 240)).all()
    elif mode == "P":  # dithered to a palette: the average colour survives
        assert np.abs(pixels.mean(axis=0) - (10, 120, 240)).max() < 8
    else:  # "1": black and white dots whose average is the grey
        assert set(np.unique(pixels)) <= {0.0, 255.0} and abs(pixels.mean() - 101) < 8


def test_sixteen_bit_png_file_is_scaled(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)).save(path)
    assert load_image(path).rgb.getpixel((0, 0)) == (255, 255, 255)


def test_alpha_is_kept_separately_only_when_it_matters() -> None:
    opaque = Image.new("RGBA", (8, 8), (1, 2, 3, 255))
    translucent = Image.new("RGBA", (8, 8), (1, 2, 3, 100))
    assert load_image(opaque).alpha is None
    assert load_image(translucent).alpha.getpixel((0, 0)) == 100  # type: ignore[union-attr]


def test_tensor_input() -> None:
    loaded = load_image(torch.full((1, 3, 10, 12), 0.5))
    assert loaded.rgb.size == (12, 10) and loaded.rgb.getpixel((0, 0)) == (128, 128, 128)
    with pytest.raises(InputImageError, match=r"\[0, 1\]"):
        load_image(torch.full((3, 10, 12), 2.0))


@pytest.mark.parametrize("case", ["missing", "folder", "text", "truncated", "bomb", "absurd"])
def test_bad_inputs_are_one_line_input_errors(tmp_path: Path, photo: Path, case: str) -> None:
    path = tmp_path / "input.png"
    if case == "folder":
        path.mkdir()
    elif case == "text":
        path.write_text("hello, I am not an image")
    elif case == "truncated":
        path.write_bytes(photo.read_bytes()[:5000])
    elif case == "bomb":
        png_header_only(path, 30000, 30000)
    elif case == "absurd":
        png_header_only(path, 4000, 10)
    with pytest.raises(InputImageError) as error:
        load_image(path)
    assert "\n" not in str(error.value)


# --- which files are read, and how much of them ---

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n%%EOF\n"


def fake_ghostscript(folder: Path) -> Path:
    """A `gs` that only leaves a marker file: proof that something tried to run Ghostscript."""
    marker = folder / "gs-was-run"
    script = folder / "bin" / "gs"
    script.parent.mkdir()
    script.write_text(f"#!/bin/sh\necho \"$@\" >> '{marker}'\nexit 1\n")
    script.chmod(0o755)
    return marker


@pytest.mark.parametrize("name", ["x.eps", "x.png"])
def test_postscript_is_refused_without_running_ghostscript(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           name: str) -> None:
    from PIL import EpsImagePlugin

    marker = fake_ghostscript(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)  # make Pillow look for gs afresh
    (tmp_path / name).write_bytes(EPS)
    with pytest.raises(InputImageError, match="accepted format"):
        load_image(tmp_path / name)
    assert not marker.exists()


@pytest.mark.parametrize("fmt, suffix", [("BMP", ".bmp"), ("GIF", ".gif"), ("TIFF", ".tif"), ("PPM", ".ppm"),
                                         ("TGA", ".tga"), ("ICO", ".ico"), ("WEBP", ".webp"), ("PNG", ".png")])
def test_allowed_raster_formats_load(tmp_path: Path, fmt: str, suffix: str) -> None:
    path = tmp_path / f"x{suffix}"
    Image.new("RGB", (16, 16), (0, 0, 255)).save(path, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    assert load_image(path).rgb.getpixel((3, 3)) == (0, 0, 255)


def test_file_size_limit_comes_from_the_environment(tmp_path: Path, photo: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    size = photo.stat().st_size
    monkeypatch.setenv(MAX_INPUT_ENV, str(size / 2**20 * 0.9))
    with pytest.raises(InputImageError, match=f"{size} bytes is larger than the limit"):
        load_image(photo)
    monkeypatch.setenv(MAX_INPUT_ENV, str(size / 2**20 * 1.1))
    assert load_image(photo).rgb.size == Image.open(photo).size
    monkeypatch.setenv(MAX_INPUT_ENV, "lots")
    with pytest.raises(ConfigError, match=MAX_INPUT_ENV):
        load_image(photo)
    monkeypatch.delenv(MAX_INPUT_ENV)
    assert max_input_bytes() == 512 * 2**20


def test_a_bomb_header_is_refused_before_the_file_is_read(tmp_path: Path) -> None:
    path = png_header_only(tmp_path / "bomb.png", 30000, 30000)
    with path.open("r+b") as fh:
        fh.truncate(200 * 2**20)  # sparse: 200 MiB that would be allocated if the file were read
    tracemalloc.start()
    try:
        with pytest.raises(InputImageError, match="decompression bomb"):
            load_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    errors: list[BaseException] = []

    def read() -> None:
        with pytest.raises(InputImageError) as refused:
            load_image(fifo)
        errors.append(refused.value)

    worker = threading.Thread(target=read)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock the reader before failing
        with open(fifo, "wb"):
            pass
        pytest.fail("load_image blocked on a FIFO")
    assert "not a regular file" in str(errors[0])
