"""Writing outputs: atomic and exclusive saves, short temporaries, odd and long names, full
disks, inputs never overwritten, and metadata that names files without absolute paths."""

from __future__ import annotations

import errno
import itertools
import json
import os
import threading
from pathlib import Path

import pytest
from PIL import Image

from clipstyler_opt.core.errors import ConfigError, OutputError
from clipstyler_opt.core.naming import default_output_path, name_bytes, numbered_paths, partial_output_path
from clipstyler_opt.core.portable import portable_metadata
from clipstyler_opt.run.images import (
    check_writable,
    frame_writer,
    load_image,
    refuse_overwriting_inputs,
    same_file,
    save_image,
    save_image_exclusive,
    sidecar_path,
)


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


# --- not writing over inputs ---

def test_same_file_sees_through_dots_symlinks_and_hard_links(tmp_path: Path) -> None:
    original = tmp_path / "in.png"
    original.write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.png").symlink_to(original)
    os.link(original, tmp_path / "hard.png")
    (tmp_path / "other.png").write_bytes(b"x")
    for alias in [tmp_path / "sub" / ".." / "in.png", tmp_path / "link.png", tmp_path / "hard.png"]:
        assert same_file(alias, original)
    assert not same_file(tmp_path / "other.png", original)
    assert not same_file(tmp_path / "missing.png", original)


def test_refuse_overwriting_inputs_covers_the_sidecar(tmp_path: Path) -> None:
    image = tmp_path / "in.png"
    image.write_bytes(b"x")
    (tmp_path / "in.png.json").write_text("{}")
    with pytest.raises(ConfigError, match="refusing"):
        refuse_overwriting_inputs(tmp_path / "in.png", [None, image])
    with pytest.raises(ConfigError, match="refusing"):
        refuse_overwriting_inputs(tmp_path / "in.png", (p for p in [tmp_path / "in.png.json"]))
    refuse_overwriting_inputs(tmp_path / "out.png", [image, None])


# --- claiming names, long and odd names ---

def colour(i: int) -> Image.Image:
    return Image.new("RGB", (32, 32), (i * 20 % 256, 7, 200))


def test_exclusive_save_never_replaces_a_file(tmp_path: Path) -> None:
    (tmp_path / "out.png").write_bytes(b"someone else's")
    (tmp_path / "out-2.png.json").write_text("orphan")  # a sidecar alone also takes the name
    written, _ = save_image_exclusive(colour(1), tmp_path / "out.png", {"seed": 1})
    assert written == tmp_path / "out-3.png"
    assert (tmp_path / "out.png").read_bytes() == b"someone else's"
    assert (tmp_path / "out-2.png.json").read_text() == "orphan" and not (tmp_path / "out-2.png").exists()
    assert json.loads((tmp_path / "out-3.png.json").read_text()) == {"seed": 1}


def test_concurrent_exclusive_saves_take_distinct_names(tmp_path: Path) -> None:
    count = 8
    barrier = threading.Barrier(count)
    written: dict[int, Path] = {}

    def save(i: int) -> None:
        barrier.wait()
        written[i] = save_image_exclusive(colour(i), tmp_path / "out.png", {"seed": i})[0]

    threads = [threading.Thread(target=save, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(written.values())) == count
    for i, path in written.items():  # each name holds the image and sidecar of the thread that claimed it
        with Image.open(path) as saved:
            assert saved.getpixel((0, 0)) == (i * 20 % 256, 7, 200)
        assert json.loads(sidecar_path(path).read_text()) == {"seed": i}
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".tmp") == []


def test_long_names_use_short_temporaries(tmp_path: Path) -> None:
    out = tmp_path / ("n" * 246 + ".png")  # 250 bytes: the sidecar name is 255
    check_writable(out)
    save_image(colour(1), out, {"seed": 1})
    written, _ = save_image_exclusive(colour(2), out, {"seed": 2})
    assert name_bytes(written.name + ".json") <= 255 and written != out
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, out.name + ".json", written.name,
                                                               written.name + ".json"])
    with pytest.raises(OutputError, match="too long"):
        check_writable(tmp_path / ("n" * 247 + ".png"))


def test_derived_names_fit_with_their_sidecars(tmp_path: Path) -> None:
    long_stem = "é" * 125  # 250 bytes in UTF-8
    default = default_output_path(Path(long_stem + ".png"), "starry night " * 100)
    partial = partial_output_path(tmp_path / ("n" * 246 + ".png"))
    numbered = list(itertools.islice(numbered_paths(tmp_path / ("n" * 246 + ".png")), 12))
    for path in [default, partial, *numbered]:
        assert name_bytes(path.name) + len(".json") <= 255, path.name
    assert partial.name.endswith(".partial.png") and numbered[-1].name.endswith("-12.png")
    assert len(set(numbered)) == 12


@pytest.mark.parametrize("name", ["caf\udce9.png", "two\nlines.png"])
def test_non_utf8_and_newline_names_round_trip(tmp_path: Path, name: str) -> None:
    source = tmp_path / name
    Image.new("RGB", (16, 16), (1, 2, 3)).save(source, format="PNG")
    loaded = load_image(source)
    out = tmp_path / ("out-" + name)
    save_image(loaded.rgb, out, {"input": {"source": loaded.source}})
    raw = sidecar_path(out).read_bytes()
    assert raw.isascii()  # lone surrogates are written as \\udcXX escapes
    assert os.fsencode(json.loads(raw)["input"]["source"]) == os.fsencode(str(source))  # lossless
    with Image.open(out) as saved:
        assert json.loads(saved.text["clipstyler_opt"])["input"]["source"] == name


# --- failures leave nothing behind ---

def fail_fsync_of_nonempty_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Disk full at the moment data is flushed (empty probes still succeed)."""
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.fstat(fd).st_size > 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("exclusive", [False, True])
def test_disk_full_leaves_old_files_and_no_temporaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        exclusive: bool) -> None:
    (tmp_path / "out.png").write_bytes(b"previous result")
    fail_fsync_of_nonempty_files(monkeypatch)
    with pytest.raises(OutputError, match="No space left"):
        if exclusive:
            save_image_exclusive(colour(1), tmp_path / "out.png", {})
        else:
            save_image(colour(1), tmp_path / "out.png", {})
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    assert (tmp_path / "out.png").read_bytes() == b"previous result"


def test_a_failed_sidecar_write_also_withholds_the_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_fsync, calls = os.fsync, []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:  # the image's temporary is done; the sidecar's fails
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OutputError):
        save_image(colour(1), tmp_path / "out.png", {"seed": 1})
    assert list(tmp_path.iterdir()) == []


# --- what travels inside the image ---

def test_portable_metadata_names_files_by_base_name() -> None:
    meta = {"prompt": "AC/DC on /r/pics", "input": {"source": "/home/ann/photos/cat.png", "sha256": "ab" * 32},
            "backbone": {"weights": "cache/models/clip.safetensors", "model": "ViT-B-32"},
            "content_network": {"weights": "/opt/w/vgg19.pth"}, "settings": {"steps": 3, "size": [1, 2]},
            "warnings": ["/home/ann/photos/cat.png: crop size exceeds the short side"], "list": ["/etc/x"]}
    assert portable_metadata(meta) == {
        "prompt": "AC/DC on /r/pics", "input": {"source": "cat.png", "sha256": "ab" * 32},
        "backbone": {"weights": "clip.safetensors", "model": "ViT-B-32"},
        "content_network": {"weights": "vgg19.pth"}, "settings": {"steps": 3, "size": [1, 2]},
        "warnings": ["cat.png: crop size exceeds the short side"], "list": ["x"]}
    assert meta["input"]["source"] == "/home/ann/photos/cat.png"  # the original is not modified


@pytest.mark.parametrize("portable", [False, True])
def test_embedded_metadata_is_portable_and_the_sidecar_complete(tmp_path: Path, portable: bool) -> None:
    meta = {"prompt": "x", "input": {"source": str(tmp_path / "in.png")}}
    for name in ("out.png", "out.jpg"):
        save_image(colour(1), tmp_path / name, meta, portable=portable)
        with Image.open(tmp_path / name) as saved:
            embedded = saved.text["clipstyler_opt"] if name.endswith(".png") else saved.getexif()[0x010E]
        assert json.loads(embedded)["input"]["source"] == "in.png"
        sidecar = json.loads(sidecar_path(tmp_path / name).read_text())
        assert sidecar["input"]["source"] == ("in.png" if portable else str(tmp_path / "in.png"))


def test_exclusive_frames_get_a_folder_of_their_own(tmp_path: Path) -> None:
    (tmp_path / "out_frames").mkdir()
    (tmp_path / "out_frames" / "00001.png").write_bytes(b"earlier run")
    frame_writer(tmp_path / "out.png", {"seed": 0}, exclusive=True)(1, colour(3))
    assert (tmp_path / "out_frames" / "00001.png").read_bytes() == b"earlier run"
    with Image.open(tmp_path / "out_frames-2" / "00001.png") as saved:
        assert saved.getpixel((0, 0)) == (60, 7, 200)
