"""Animations of the optimisation: frames collected in memory, written as GIF, WebP or MP4.

GIF and WebP are written with Pillow; MP4 (H.264) needs the `video` extra
(``pip install 'clipstyler_opt[video]'``, which brings imageio-ffmpeg and its ffmpeg binary).
"""

from __future__ import annotations

import io
import math
import shutil
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image

from clipstyler_opt.core.errors import ConfigError, OutputError
from clipstyler_opt.core.files import (
    ReadSet,
    discard,
    open_for_reading,
    same_file,
    scratch_folder,
    write_atomic,
    write_temp,
)
from clipstyler_opt.core.formats import ANIMATION_FORMATS, check_animation_path
from clipstyler_opt.core.naming import partial_output_path
from clipstyler_opt.run.images import decode_image_bytes
from clipstyler_opt.run.outputs import Companion, sidecar_path

__all__ = [
    "ANIMATION_FORMATS",
    "MAX_FPS",
    "MAX_FRAME_SIDE",
    "AnimationWriter",
    "FrameSink",
    "animation_path",
    "batch_animation_path",
    "check_animation_destination",
    "check_animation_path",
    "refuse_animation_over_outputs",
]

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
        write_atomic(self.path, self.encode)
        return self.path

    def encode(self, fh: BinaryIO) -> None:
        """Write the animation into the open binary file `fh` (what `write` and a saver that
        claims it together with its image call). Raises as `write` does."""
        if not self._frames:
            raise ConfigError(f"{self.path}: no frames to write (was any frame saved during the run?)")
        frames = [decode_image_bytes(data, f"frame {index}") for index, data in enumerate(self._frames)]
        if self.format == "MP4":
            self._encode_mp4(frames, fh)
        else:
            frames[0].save(fh, format=self.format, **self._pillow_options(frames))

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

    def _encode_mp4(self, frames: list[Image.Image], fh: BinaryIO) -> None:
        import imageio_ffmpeg

        assert self.size is not None
        # ffmpeg needs a seekable file to finish an MP4, so it encodes into a private folder first.
        with scratch_folder() as folder:
            encoded = folder / "animation.mp4"
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
            with open_for_reading(encoded) as source:
                shutil.copyfileobj(source, fh)


def animation_path(output: str | Path, animation: str) -> Path:
    """Where --animation goes: its own file name, or `<output stem>.<ext>` when it names only a format.

    >>> animation_path("out/cat.png", "gif"), animation_path("out/cat.png", "run.webp")
    (PosixPath('out/cat.gif'), PosixPath('run.webp'))
    """
    given = Path(animation)
    if given.suffix:
        return given
    output = Path(output)
    return output.with_name(f"{output.stem}.{animation.lower()}")


def follows_output(animation: str) -> bool:
    """True when --animation names only a format, so its file is named after the output."""
    return not Path(animation).suffix


def batch_animation_path(output: Path, animation: str) -> Path:
    """A batch job's animation: `<output stem>.<format>` beside its output, whatever file name
    --animation gave (its extension picks the format).

    >>> batch_animation_path(Path("out/cat.png"), "progress.gif")
    PosixPath('out/cat.gif')
    """
    return animation_path(output, Path(animation).suffix[1:] or animation)


def refuse_animation_over_outputs(suffix: str, animation: str | None) -> None:
    """A batch writes each job's animation beside its output: refuse (ConfigError, exit 2) an
    animation format that is the outputs' format, whose file would replace each output.

    >>> refuse_animation_over_outputs(".png", "webp")
    >>> refuse_animation_over_outputs(".webp", "webp")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    clipstyler_opt.core.errors.ConfigError: --animation webp would replace every .webp output ...
    """
    if animation and batch_animation_path(Path("x" + suffix), animation).suffix.lower() == suffix.lower():
        raise ConfigError(f"--animation {animation} would replace every {suffix} output (each job writes "
                          f"<output stem>{suffix}); choose another --animation format or --format")


def check_animation_destination(target: Path, output: Path, reads: ReadSet) -> None:
    """Before any work: the animation `target` is not the run's output, its sidecar or its
    `.partial` file (ConfigError, exit 2), nor a file the run reads (ConfigError, exit 2), and
    its folder takes files (OutputError, exit 5)."""
    partial = partial_output_path(output)
    for own in (output, sidecar_path(output), partial, sidecar_path(partial)):
        if same_file(target, own):
            raise ConfigError(f"--animation {target} would replace the output {own}; name another file")
    reads.refuse(target)
    discard(write_temp(target.parent, lambda fh: None, target))


class FrameSink:
    """Where a run's frames go: numbered files (--save-every) and/or an animation (--animation).
    `callback` is None when neither is asked for; the animation is written with the image
    (`companion()`) or on its own (`finish()`)."""

    def __init__(self, output: Path, animation: str | None, frames: Any = None, *, one_output: bool = True) -> None:
        self.follows_output = bool(animation) and (not one_output or follows_output(animation or ""))
        self.animation: AnimationWriter | None = None
        if animation:
            target = animation_path(output, animation) if one_output else batch_animation_path(output, animation)
            self.animation = AnimationWriter(target)
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

    def companion(self) -> Companion | None:
        """The animation as a companion of the saved image (claimed with a default name when it is
        named after the output), or None when there is none or no frame was taken."""
        if self.animation is None or not len(self.animation):
            return None
        writer = self.animation
        if self.follows_output:
            extension = writer.path.suffix[1:]
            return Companion(lambda out: animation_path(out, extension), writer.encode)
        return Companion(lambda out: writer.path, writer.encode, follows_output=False)

    def finish(self) -> str | None:
        """Write the animation on its own; a note for the user, or None."""
        if self.animation is None or not len(self.animation):
            return None
        return f"animation: {self.animation.write()} ({len(self.animation)} frames)"
