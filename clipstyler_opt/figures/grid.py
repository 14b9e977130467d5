"""The image-grid figure: a row per content image, the content first, then a column per cell,
each cell's header underlined in its colour (the same as in every chart), sized for print.

At `CELL_IN` inches a picture and 300 dpi (see `export.DPI`), each image gets about 480 pixels
across in the PNG; the PDF and SVG keep the pixels as they are given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from clipstyler_opt.figures.charts import legend_text

__all__ = ["CELL_IN", "image_grid"]

CELL_IN = 1.6  # inches per picture


def image_grid(images: Sequence[Sequence[np.ndarray | None]], *, row_labels: Sequence[str],
               column_labels: Sequence[str], colours: Mapping[str, str] | None = None,
               title: str | None = None) -> Figure:
    """Pictures in rows and columns (None leaves a grey "none" box), labelled on the left and on top.

    Args:
        images: rows of H×W×3 uint8 arrays, one per column.
        row_labels: one per row (the content image's name).
        column_labels: one per column; a label found in `colours` gets a bar of its colour.

    Example:
        >>> pixel = np.zeros((8, 8, 3), dtype=np.uint8)
        >>> figure = image_grid([[pixel, None]], row_labels=["a.png"], column_labels=["content", "cell"])
        >>> len(figure.axes), figure.get_size_inches().round(2).tolist()
        (2, [3.6, 2.0])
    """
    if not images or any(len(row) != len(column_labels) for row in images) or len(row_labels) != len(images):
        raise ValueError("image_grid needs one label per row and per column, and rows of equal length")
    colours = colours or {}
    rows, columns = len(images), len(column_labels)
    head = 0.4 if title else 0.0
    figure = Figure(figsize=(CELL_IN * columns + 0.4, CELL_IN * rows + 0.4 + head), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(rows, columns, squeeze=False)
    for r, row in enumerate(images):
        for c, picture in enumerate(row):
            axes = grid[r][c]
            axes.set_xticks([])
            axes.set_yticks([])
            if picture is None:
                axes.set_facecolor("#eeeeee")
                axes.text(0.5, 0.5, "none", ha="center", va="center", color="#777777", transform=axes.transAxes)
            else:
                axes.imshow(picture, interpolation="antialiased")
            if r == 0:
                axes.set_title(legend_text(column_labels[c]), fontsize="small")
            colour = colours.get(column_labels[c])
            if colour is not None:
                for spine in axes.spines.values():
                    spine.set_edgecolor(colour)
                    spine.set_linewidth(3)
            if c == 0:
                axes.set_ylabel(legend_text(row_labels[r]), fontsize="small")
    if title:
        figure.suptitle(title, fontsize="medium", x=0.02, ha="left")
    return figure
