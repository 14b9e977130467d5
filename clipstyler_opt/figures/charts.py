"""The charts: curves with interval bands, scatter plots, heat maps and bars with interval bars.

Every chart labels both axes, puts its legend outside the data (to the right), and uses the
colours it is given (see `palette.cell_colours`), so that a cell looks the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from clipstyler_opt.figures.palette import cell_colours

__all__ = ["Bar", "Point", "Series", "bar_chart", "curve_chart", "heatmap_chart", "scatter_chart"]

WIDTH_IN, HEIGHT_IN = 6.4, 4.0


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
    """One labelled point of a scatter plot."""

    label: str
    x: float
    y: float


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


def _legend(figure: Figure, axes: Axes) -> None:
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside right upper", frameon=False)


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
    for s in series:
        if s.fitted:
            axes.plot(s.x, s.y, linestyle="--", linewidth=1, color=colours[s.label], label=s.label)
        else:
            axes.plot(s.x, s.y, marker="o", markersize=3, color=colours[s.label], label=s.label)
        if s.low is not None and s.high is not None:
            axes.fill_between(s.x, s.low, s.high, color=colours[s.label], alpha=0.2, linewidth=0)
    if integer_x:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(figure, axes)
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
        axes.scatter([p.x for p in chosen], [p.y for p in chosen], s=14, color=colours[label], label=label)
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
