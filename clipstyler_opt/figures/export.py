"""Writing a figure as SVG, PDF and PNG: whole files only (written beside the target, then renamed),
the same bytes for the same figure (no dates, a fixed SVG id salt), PNG at 300 dpi for print.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from matplotlib import rc_context
from matplotlib.figure import Figure

from clipstyler_opt.core.errors import ConfigError, OutputError
from clipstyler_opt.core.files import ReadSet, write_bytes
from clipstyler_opt.core.naming import slugify

__all__ = ["DPI", "FIGURES_FOLDER", "FORMATS", "check_figures_folder", "figure_bytes", "save_figure"]

FIGURES_FOLDER = "figures"  # inside a result folder: what analyze and report --figures write

FORMATS = ("svg", "pdf", "png")
DPI = 300
_METADATA = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}, "png": {}}


def check_figures_folder(root: Path) -> Path:
    """`root/figures`, checked before any work: a symbolic link there (which would send the files
    elsewhere) is refused (ConfigError, exit 2), and so is a file or anything else that is not a
    folder (OutputError). Returns the folder's path; it need not exist yet.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> _ = (root / "figures").write_bytes(b"")
        >>> check_figures_folder(root)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        clipstyler_opt.core.errors.OutputError: .../figures: is not a folder; cannot write figures there
    """
    folder = Path(root) / FIGURES_FOLDER
    if folder.is_symlink():
        raise ConfigError(f"{folder}: is a symbolic link; figures are written only inside {root}, never through a link")
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: is not a folder; cannot write figures there")
    return folder


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
    written = []
    for path, fmt in zip(targets, formats, strict=True):
        written.append(write_bytes(path, figure_bytes(figure, fmt)))
        figure.set_layout_engine("none")  # the layout is settled by the first format: the others keep it
    return written
