"""Input decoding (EXIF, modes, bad files) and atomic, metadata-carrying output."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clipstyler_opt.errors import InputImageError, OutputError
from clipstyler_opt.imageio import load_image, save_image, sidecar_path


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


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "1"])
def test_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    if mode in ("I;16", "I"):
        image = Image.fromarray(np.full((12, 16), 40000, dtype=np.uint16 if mode == "I;16" else np.int32))
        assert image.mode == mode
    else:
        image = Image.new("RGB", (16, 12), (10, 120, 240)).convert(mode)
    loaded = load_image(image)
    assert loaded.rgb.mode == "RGB" and loaded.rgb.size == (16, 12)
    if mode in ("I;16", "I"):  # 16-bit values are scaled, not clipped: 40000/65535 of white
        assert loaded.rgb.getpixel((0, 0)) == (156, 156, 156)


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


def test_png_output_carries_metadata_and_sidecar(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "out.png"
    meta = {"prompt": "starry night", "seed": 7, "settings": {"steps": 3}}
    save_image(Image.new("RGB", (8, 8)), out, meta)
    with Image.open(out) as saved:
        assert saved.text["prompt"] == "starry night" and saved.text["seed"] == "7"
        assert json.loads(saved.text["clipstyler_opt"]) == meta
    assert json.loads(sidecar_path(out).read_text()) == meta
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.png", "out.png.json"]


@pytest.mark.parametrize("suffix", [".jpg", ".webp"])
def test_jpeg_and_webp_carry_metadata_in_exif(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"out{suffix}"
    save_image(Image.new("RGB", (8, 8)), out, {"prompt": "ukiyo-e ✓"})
    with Image.open(out) as saved:
        assert json.loads(saved.getexif()[0x010E]) == {"prompt": "ukiyo-e ✓"}


def test_jpeg_drops_alpha_and_says_so(tmp_path: Path) -> None:
    notes = save_image(Image.new("RGBA", (8, 8)), tmp_path / "out.jpg", {})
    assert notes and "alpha" in notes[0]


def test_unknown_extension_and_unwritable_folder_are_output_errors(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="extension"):
        save_image(Image.new("RGB", (8, 8)), tmp_path / "out.gif", {})
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="cannot write"):
        save_image(Image.new("RGB", (8, 8)), blocker / "out.png", {})


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    out.write_bytes(b"previous result")
    broken = Image.new("RGB", (8, 8))
    broken.save = lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device"))  # type: ignore
    with pytest.raises(OutputError, match="No space left"):
        save_image(broken, out, {})
    assert out.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
