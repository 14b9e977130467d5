"""Animations: GIF/WebP frame counts, sizes and timing, MP4 with the video extra, early errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.run.animation import AnimationWriter, check_animation_path

COLOURS = [(255, 0, 0), (0, 160, 0), (0, 0, 255)]


def _frames(size: tuple[int, int]) -> list[Image.Image]:
    return [Image.new("RGB", size, colour) for colour in COLOURS]


@pytest.mark.parametrize("name, fmt", [("run.gif", "GIF"), ("run.webp", "WEBP")])
def test_pillow_animations_have_every_frame(tmp_path: Path, name: str, fmt: str) -> None:
    writer = AnimationWriter(tmp_path / name, fps=4)
    for frame in _frames((64, 48)):
        writer.add(frame)
    assert writer.write() == tmp_path / name
    with Image.open(tmp_path / name) as animation:
        assert animation.format == fmt
        assert animation.n_frames == 3 and animation.size == (64, 48)
        assert animation.info.get("loop") == 0
        for index, colour in enumerate(COLOURS):
            animation.seek(index)
            red, green, blue = animation.convert("RGB").getpixel((10, 10))  # loads the frame and its info
            assert animation.info["duration"] == 250  # 1000 ms / 4 fps
            assert max(abs(red - colour[0]), abs(green - colour[1]), abs(blue - colour[2])) < 12
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind


def test_large_frames_are_downscaled_and_later_frames_take_the_first_size(tmp_path: Path) -> None:
    writer = AnimationWriter(tmp_path / "big.gif", max_side=100)
    writer.add(Image.new("RGBA", (400, 200), (255, 0, 0, 128)))
    writer.add(Image.new("RGB", (300, 300), (0, 0, 255)))
    assert writer.size == (100, 50) and len(writer) == 2
    writer.write()
    with Image.open(tmp_path / "big.gif") as animation:
        assert animation.size == (100, 50) and animation.n_frames == 2


def test_unknown_extension_is_refused_before_any_frame(tmp_path: Path) -> None:
    for name in ("run.avi", "run", "run.png"):
        with pytest.raises(ConfigError, match="unsupported animation extension"):
            AnimationWriter(tmp_path / name)
        with pytest.raises(ConfigError):
            check_animation_path(name)
    assert check_animation_path("RUN.GIF") == "GIF"


def test_bad_fps_and_empty_animation_are_errors(tmp_path: Path) -> None:
    for fps in (0, -1, float("nan"), 1000):
        with pytest.raises(ConfigError, match="fps"):
            AnimationWriter(tmp_path / "a.gif", fps=fps)
    with pytest.raises(ConfigError, match="no frames"):
        AnimationWriter(tmp_path / "a.gif").write()
    assert not (tmp_path / "a.gif").exists()


def test_mp4_without_the_video_extra_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # makes `import imageio_ffmpeg` fail
    with pytest.raises(ConfigError, match=r"pip install 'clipstyler_opt\[video\]'"):
        AnimationWriter(tmp_path / "run.mp4")


def test_mp4_has_every_frame(tmp_path: Path) -> None:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="the video extra is not installed")
    writer = AnimationWriter(tmp_path / "run.mp4", fps=5)
    for frame in _frames((65, 47)):  # odd sides: H.264 needs even ones
        writer.add(frame)
    assert writer.size == (64, 46)
    writer.write()
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "run.mp4"))
    meta = next(reader)
    frames = list(reader)
    assert tuple(meta["size"]) == (64, 46) and meta["fps"] == pytest.approx(5)
    assert len(frames) == 3
    first = frames[0]
    assert first[0] > 200 and first[1] < 60 and first[2] < 60  # the top-left pixel of the red frame
    assert [p.name for p in tmp_path.iterdir()] == ["run.mp4"]
