"""Animations of the optimisation: frames collected in memory, written as GIF, WebP or MP4.

GIF and WebP are written with Pillow; MP4 (H.264) needs the `video` extra
(``pip install 'clipstyler_opt[video]'``, which brings imageio-ffmpeg and its ffmpeg binary).
"""

from __future__ import annotations

import io
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from clipstyler_opt.core.errors import ConfigError, OutputError
from clipstyler_opt.core.formats import ANIMATION_FORMATS, check_animation_path
from clipstyler_opt.run.outputs import write_atomic

__all__ = ["ANIMATION_FORMATS", "MAX_FPS", "MAX_FRAME_SIDE", "AnimationWriter", "FrameSink", "animation_path",
           "check_animation_path"]

MAX_FRAME_SIDE = 512
MAX_FPS = 100.0


class AnimationWriter:
    """Collects frames and writes them as one looping animation.

    Frames are downscaled so that the long side is at most `max_side` (MP4: sides rounded down
    to even numbers, as H.264 in yuv420p needs) and held as PNG bytes, so memory stays small.
    All frames take the size of the first one; alpha is dropped. In a GIF, Pillow merges identical
    consecutive frames into one (their durations add up).

    Args:
        path: the output file (.gif, .webp or .mp4); checked here, written by `write`.
        fps: frames per second, in (0, `MAX_FPS`].
        max_side: the largest frame side in pixels.
    """

    def __init__(self, path: str | Path, fps: float = 10.0, *, max_side: int = MAX_FRAME_SIDE) -> None:
        self.path = Path(path)
        self.format = check_animation_path(self.path)
        if not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
            raise ConfigError(f"animation fps must be in (0, {MAX_FPS:g}], got {fps}")
        if max_side < 2:
            raise ConfigError(f"animation frame side must be at least 2 pixels, got {max_side}")
        self.fps = float(fps)
        self.max_side = max_side
        self.size: tuple[int, int] | None = None
        self._frames: list[bytes] = []

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, frame: Image.Image) -> None:
        """Append one frame (any PIL image); it is resized to the animation's frame size."""
        if self.size is None:
            self.size = self._frame_size(frame.size)
        rgb = frame.convert("RGB")
        if rgb.size != self.size:
            rgb = rgb.resize(self.size, Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        rgb.save(buffer, format="PNG", compress_level=1)
        self._frames.append(buffer.getvalue())

    def write(self) -> Path:
        """Write all frames atomically (a temporary file renamed into place).

        Returns:
            The path written.

        Raises:
            ConfigError: no frame was added.
            OutputError: the file cannot be written or encoded.
        """
        if not self._frames:
            raise ConfigError(f"{self.path}: no frames to write (was any frame saved during the run?)")
        frames: list[Image.Image] = [Image.open(io.BytesIO(data)) for data in self._frames]
        if self.format == "MP4":
            self._write_mp4(frames)
        else:
            write_atomic(self.path, lambda fh: frames[0].save(fh, format=self.format, **self._pillow_options(frames)))
        return self.path

    def _frame_size(self, size: tuple[int, int]) -> tuple[int, int]:
        width, height = size
        scale = min(1.0, self.max_side / max(width, height))
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        if self.format == "MP4":
            width, height = max(2, width - width % 2), max(2, height - height % 2)
        return width, height

    def _pillow_options(self, frames: list[Image.Image]) -> dict[str, Any]:
        options: dict[str, Any] = {"save_all": True, "append_images": frames[1:], "loop": 0,
                                   "duration": round(1000 / self.fps)}
        if self.format == "WEBP":
            options["quality"] = 90
        return options

    def _write_mp4(self, frames: list[Image.Image]) -> None:
        import imageio_ffmpeg

        assert self.size is not None
        # ffmpeg needs a seekable file to finish an MP4, so it encodes into a private folder first.
        with tempfile.TemporaryDirectory(prefix="clipopt-") as folder:
            encoded = Path(folder) / "animation.mp4"
            try:
                writer = imageio_ffmpeg.write_frames(str(encoded), self.size, fps=self.fps, macro_block_size=2,
                                                     ffmpeg_log_level="error")
                writer.send(None)
                for frame in frames:
                    writer.send(frame.tobytes())
                writer.close()
            except (OSError, RuntimeError) as exc:
                raise OutputError(f"{self.path}: ffmpeg could not encode the video ({str(exc).splitlines()[0]})") \
                    from None
            with open(encoded, "rb") as source:
                write_atomic(self.path, lambda fh: shutil.copyfileobj(source, fh))


def animation_path(output: str | Path, animation: str) -> Path:
    """Where --animation goes: its own file name, or `<output stem>.<ext>` when it names only a format."""
    given = Path(animation)
    if given.suffix:
        return given
    output = Path(output)
    return output.with_name(f"{output.stem}.{animation.lower()}")


class FrameSink:
    """Where a run's frames go: numbered files (--save-every) and/or an animation (--animation).
    `callback` is None when neither is asked for; `finish()` writes the animation."""

    def __init__(self, output: Path, animation: str | None, frames: Any = None, *, one_output: bool = True) -> None:
        if animation and not one_output:
            animation = Path(animation).suffix[1:] or animation  # a batch writes one beside each output
        self.animation = AnimationWriter(animation_path(output, animation)) if animation else None
        self.frames = frames

    @property
    def callback(self) -> Any:
        if self.frames is None and self.animation is None:
            return None
        return self._on_frame

    def _on_frame(self, step: int, image: Image.Image) -> None:
        if self.frames is not None:
            self.frames(step, image)
        if self.animation is not None:
            self.animation.add(image)

    def finish(self) -> str | None:
        """Write the animation; a note for the user, or None."""
        if self.animation is None or not len(self.animation):
            return None
        return f"animation: {self.animation.write()} ({len(self.animation)} frames)"
