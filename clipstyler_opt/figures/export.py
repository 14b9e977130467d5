"""Writing a figure as SVG, PDF and PNG: whole files only (written beside the target, then renamed),
the same bytes for the same figure (no dates, a fixed SVG id salt), PNG at 300 dpi for print.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from matplotlib import rc_context
from matplotlib.figure import Figure

from clipstyler_opt.core.files import ReadSet, write_bytes
from clipstyler_opt.core.naming import slugify

__all__ = ["DPI", "FORMATS", "figure_bytes", "save_figure"]

FORMATS = ("svg", "pdf", "png")
DPI = 300
_METADATA = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}, "png": {}}


def figure_bytes(figure: Figure, fmt: str) -> bytes:
    """The figure in one format ("svg", "pdf" or "png"), reproducibly.

    Example:
        >>> from clipstyler_opt.figures.charts import Bar, bar_chart
        >>> figure = bar_chart([Bar("a", 1.0)], xlabel="x", ylabel="y")
        >>> figure_bytes(figure, "svg") == figure_bytes(figure, "svg"), figure_bytes(figure, "pdf")[:5]
        (True, b'%PDF-')
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}; use one of {', '.join(FORMATS)}")
    buffer = io.BytesIO()
    with rc_context({"svg.hashsalt": "clipstyler_opt", "svg.fonttype": "none"}):
        figure.savefig(buffer, format=fmt, dpi=DPI, metadata=_METADATA[fmt])
    return buffer.getvalue()


def save_figure(figure: Figure, folder: Path, name: str, formats: Sequence[str] = FORMATS, *,
                reads: ReadSet | None = None) -> list[Path]:
    """Write `figure` as `folder/<name>.<fmt>` for each format; returns the paths written.
    `name` is made safe as a file name (see `core.naming.slugify`); a target among `reads` (the
    files the command reads) is refused before anything is written."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = slugify(name, max_length=120) or "figure"
    targets = [folder / f"{stem}.{fmt}" for fmt in formats]
    if reads is not None:
        reads.refuse(*targets)
    return [write_bytes(path, figure_bytes(figure, fmt)) for path, fmt in zip(targets, formats, strict=True)]
