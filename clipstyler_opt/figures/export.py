"""Writing a figure as SVG, PDF and PNG: whole files only (written beside the target, then renamed),
the same bytes for the same figure (no dates, a fixed SVG id salt), PNG at 300 dpi for print.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from matplotlib import rc_context
from matplotlib.figure import Figure

from clipstyler_opt.core.naming import slugify
from clipstyler_opt.run.outputs import write_atomic

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


def save_figure(figure: Figure, folder: Path, name: str, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write `figure` as `folder/<name>.<fmt>` for each format; returns the paths written.
    `name` is made safe as a file name (see `core.naming.slugify`)."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = slugify(name, max_length=120) or "figure"
    written = []
    for fmt in formats:
        data = figure_bytes(figure, fmt)

        def write(handle: BinaryIO, data: bytes = data) -> None:
            handle.write(data)

        path = folder / f"{stem}.{fmt}"
        write_atomic(path, write)
        written.append(path)
    return written
