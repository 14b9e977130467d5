"""File formats the outputs may take, checked before any work: what an extension asks for, and
whether the packages it needs are installed. No heavy import here."""

from __future__ import annotations

from pathlib import Path

from clipstyler_opt.core.errors import ConfigError

__all__ = ["ANIMATION_FORMATS", "VIDEO_EXTRA", "check_animation_path"]

ANIMATION_FORMATS = {".gif": "GIF", ".webp": "WEBP", ".mp4": "MP4"}
VIDEO_EXTRA = "pip install 'clipstyler_opt[video]'"


def check_animation_path(path: str | Path) -> str:
    """Check that an animation can be written to `path`, before any work is done.

    Args:
        path: the animation file; its extension picks the format.

    Returns:
        The format: "GIF", "WEBP" or "MP4".

    Raises:
        ConfigError: unknown extension, or MP4 without the `video` extra installed.

    Example:
        >>> check_animation_path("progress.gif")
        'GIF'
    """
    path = Path(path)
    try:
        fmt = ANIMATION_FORMATS[path.suffix.lower()]
    except KeyError:
        raise ConfigError(f"{path}: unsupported animation extension {path.suffix or '(none)'!r}; use one of "
                          f"{', '.join(ANIMATION_FORMATS)}") from None
    if fmt == "MP4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ConfigError(f"{path}: writing MP4 needs the video extra: {VIDEO_EXTRA}") from None
    return fmt
