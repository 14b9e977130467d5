"""The charts: curves with interval bands (one panel or several), scatter plots with interval
bars, heat maps and bars with interval bars.

Every chart labels both axes, puts its legend outside the data (to the right, long labels
wrapped, never cut), and uses the colours it is given (see `palette.cell_colours`), so that a
cell looks the same everywhere.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from clipstyler_opt.figures.palette import cell_colours

__all__ = ["LEGEND_WRAP", "Bar", "Panel", "Point", "Series", "bar_chart", "curve_chart", "curve_panels",
           "heatmap_chart", "legend_text", "scatter_chart"]

WIDTH_IN, HEIGHT_IN = 6.4, 4.0
PANEL_IN = 3.0  # the width and height of one panel of `curve_panels`
LEGEND_WRAP = 28  # characters per legend line; longer labels wrap (never cut)


@dataclass(frozen=True)
class Series:
    """One labelled curve; `low` and `high`, when given, draw an interval band around it. A
    `fitted` curve (a model through the data) is drawn dashed, without markers."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    low: Sequence[float] | None = None
    high: Sequence[float] | None = None
    fitted: bool = False


@dataclass(frozen=True)
class Point:
    """One labelled point of a scatter plot; the intervals [x_low, x_high] and [y_low, y_high],
    when given, are drawn as interval bars."""

    label: str
    x: float
    y: float
    x_low: float | None = None
    x_high: float | None = None
    y_low: float | None = None
    y_high: float | None = None


@dataclass(frozen=True)
class Panel:
    """One panel of `curve_panels`: its y-axis label and its curves."""

    ylabel: str
    series: Sequence[Series]


@dataclass(frozen=True)
class Bar:
    """One labelled bar with an optional interval [low, high]."""

    label: str
    value: float
    low: float | None = None
    high: float | None = None


def _axes(xlabel: str, ylabel: str, title: str | None) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), layout="constrained")
    FigureCanvasAgg(figure)  # files only (no pyplot, no display): the canvas that draws and measures
    axes = figure.add_subplot()
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if title:
        axes.set_title(title, fontsize="medium", loc="left")
    return figure, axes


def legend_text(label: str) -> str:
    """A legend entry as drawn: wrapped at `LEGEND_WRAP` characters per line, nothing dropped.

    Example:
        >>> legend_text("lambda_content=50, style_strength=0.5")
        'lambda_content=50,\\nstyle_strength=0.5'
    """
    return "\n".join(textwrap.wrap(label, LEGEND_WRAP, break_long_words=True, break_on_hyphens=False)) or label


def _legend(figure: Figure, *axes: Axes) -> None:
    """One legend for the figure, right of every panel; an entry shared by panels is listed once."""
    entries: dict[str, Artist] = {}
    for each in axes:
        for handle, label in zip(*each.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if entries:
        figure.legend(list(entries.values()), [legend_text(label) for label in entries],
                      loc="outside right upper", frameon=False)


def curve_chart(series: Sequence[Series], *, xlabel: str, ylabel: str, title: str | None = None,
                integer_x: bool = False, colours: Mapping[str, str] | None = None) -> Figure:
    """Lines with markers, one per series, with shaded interval bands where given.

    Args:
        integer_x: ticks at whole numbers only (steps, counts).
        colours: label -> colour; default `cell_colours` of the series' labels.

    Example:
        >>> figure = curve_chart([Series("a", [0, 1], [0.0, 1.0], [0.0, 0.8], [0.0, 1.2])], xlabel="x", ylabel="y")
        >>> len(figure.axes[0].lines), len(figure.axes[0].collections)
        (1, 1)
    """
    colours = colours or cell_colours([s.label for s in series])
    figure, axes = _axes(xlabel, ylabel, title)
    _draw_curves(axes, series, colours, integer_x)
    _legend(figure, axes)
    return figure


def _draw_curves(axes: Axes, series: Sequence[Series], colours: Mapping[str, str], integer_x: bool) -> None:
    for s in series:
        markers = {} if len(s.x) > 30 else {"marker": "o", "markersize": 3}
        if s.fitted:
            axes.plot(s.x, s.y, linestyle="--", linewidth=1, color=colours[s.label], label=s.label)
        else:
            axes.plot(s.x, s.y, linewidth=1.2, color=colours[s.label], label=s.label, **markers)  # type: ignore[arg-type]
        if s.low is not None and s.high is not None:
            axes.fill_between(s.x, s.low, s.high, color=colours[s.label], alpha=0.2, linewidth=0)
    if integer_x:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def curve_panels(panels: Sequence[Panel], *, xlabel: str, title: str | None = None, integer_x: bool = False,
                 colours: Mapping[str, str] | None = None, columns: int = 3) -> Figure:
    """Several panels of curves side by side (up to `columns` a row), one shared legend on the right.

    Example:
        >>> figure = curve_panels([Panel("total", [Series("a", [1, 2], [3.0, 2.0])]),
        ...                        Panel("content", [Series("a", [1, 2], [1.0, 0.5])])], xlabel="step")
        >>> [a.get_ylabel() for a in figure.axes], len(figure.legends[0].get_texts())
        (['total', 'content'], 1)
    """
    if not panels:
        raise ValueError("curve_panels needs at least one panel")
    colours = colours or cell_colours([s.label for p in panels for s in p.series])
    wide = min(columns, len(panels))
    rows = -(-len(panels) // wide)
    figure = Figure(figsize=(PANEL_IN * wide + 2.2, PANEL_IN * rows + (0.4 if title else 0.0)), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(rows, wide, squeeze=False)
    for index, axes in enumerate(grid.flat):
        if index >= len(panels):
            axes.set_visible(False)
            continue
        axes.set_xlabel(xlabel)
        axes.set_ylabel(panels[index].ylabel)
        _draw_curves(axes, panels[index].series, colours, integer_x)
    if title:
        figure.suptitle(title, fontsize="medium", x=0.02, ha="left")
    _legend(figure, *[a for a in grid.flat if a.get_visible()])
    return figure


def scatter_chart(points: Sequence[Point], *, xlabel: str, ylabel: str, title: str | None = None,
                  colours: Mapping[str, str] | None = None, diagonal: bool = False) -> Figure:
    """Points coloured by label; `diagonal` draws y = x for reference.

    Example:
        >>> figure = scatter_chart([Point("a", 0.1, 0.2), Point("b", 0.3, 0.1)], xlabel="text", ylabel="image")
        >>> len(figure.axes[0].collections)
        2
    """
    labels = list(dict.fromkeys(p.label for p in points))
    colours = colours or cell_colours(labels)
    figure, axes = _axes(xlabel, ylabel, title)
    for label in labels:
        chosen = [p for p in points if p.label == label]
        axes.scatter([p.x for p in chosen], [p.y for p in chosen], s=14, color=colours[label], label=label, zorder=3)
        for p in chosen:
            xerr = [[p.x - p.x_low], [p.x_high - p.x]] if p.x_low is not None and p.x_high is not None else None
            yerr = [[p.y - p.y_low], [p.y_high - p.y]] if p.y_low is not None and p.y_high is not None else None
            if xerr or yerr:
                axes.errorbar([p.x], [p.y], xerr=xerr, yerr=yerr, color=colours[label], linewidth=1, capsize=2)
    if diagonal and points:
        ends = [min(min(p.x, p.y) for p in points), max(max(p.x, p.y) for p in points)]
        axes.plot(ends, ends, color="#888888", linewidth=0.8, linestyle="--")
    _legend(figure, axes)
    return figure


def heatmap_chart(matrix: Sequence[Sequence[float]], *, row_labels: Sequence[str], column_labels: Sequence[str],
                  xlabel: str, ylabel: str, title: str | None = None, annotate: bool = True) -> Figure:
    """A matrix as coloured cells (viridis) with a colour bar, values written in the cells.

    Example:
        >>> figure = heatmap_chart([[2, 0], [1, 1]], row_labels=["a", "b"], column_labels=["a", "b"],
        ...                        xlabel="predicted", ylabel="true")
        >>> [t.get_text() for t in figure.axes[0].texts]
        ['2', '0', '1', '1']
    """
    figure, axes = _axes(xlabel, ylabel, title)
    image = axes.imshow(matrix, cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(column_labels)), labels=list(column_labels), rotation=45, ha="right")
    axes.set_yticks(range(len(row_labels)), labels=list(row_labels))
    figure.colorbar(image, ax=axes)
    if annotate:
        peak = max((max(row) for row in matrix), default=0)
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                text = f"{value:g}" if isinstance(value, int) or float(value).is_integer() else f"{value:.2f}"
                axes.text(j, i, text, ha="center", va="center", fontsize=8,
                          color="black" if peak and value > 0.6 * peak else "white")
    return figure


def bar_chart(bars: Sequence[Bar], *, xlabel: str, ylabel: str, title: str | None = None,
              colours: Mapping[str, str] | None = None) -> Figure:
    """One bar per label, with interval bars where `low` and `high` are given.

    Example:
        >>> figure = bar_chart([Bar("CLIP", 0.8, 0.7, 0.9), Bar("SigLIP", 0.6)], xlabel="scorer", ylabel="gap")
        >>> len(figure.axes[0].patches)
        2
    """
    colours = colours or cell_colours([b.label for b in bars])
    figure, axes = _axes(xlabel, ylabel, title)
    positions = range(len(bars))
    axes.bar(positions, [b.value for b in bars], color=[colours[b.label] for b in bars])
    for position, b in zip(positions, bars, strict=True):
        if b.low is not None and b.high is not None:
            axes.errorbar([position], [b.value], yerr=[[b.value - b.low], [b.high - b.value]], color="#333333",
                          capsize=3, linewidth=1)
    axes.set_xticks(list(positions), labels=[b.label for b in bars], rotation=30, ha="right")
    return figure
