"""The report's figures, drawn by the shared figure module (`clipstyler_opt.figures`): a trade-off
plot and loss curves per prompt, and (for `--figures`) an image grid per prompt.

Every cell has one label (`cell_labels`) and one colour (`cell_colours` over the folder's cells in
their order), the same in every chart, table and the page; cells that differ only in the seed are
one cell (`ResultFolder.pooled_cells`), whose outputs pool every seed. Means carry the 95% cluster-robust
t-interval of `stats.mean_interval` over the outputs they average, clustered by content image (a
content image's seeds stay together), as `eval` computes them. Figure names start with `report-`,
so they never collide with those of `clipopt analyze` in `figures/`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from clipstyler_opt.core.naming import slugify
from clipstyler_opt.figures.charts import Panel, Point, Series, curve_panels, scatter_chart
from clipstyler_opt.figures.grid import image_grid
from clipstyler_opt.figures.palette import cell_colours
from clipstyler_opt.figures.tables import Estimate
from clipstyler_opt.report.labels import cell_labels
from clipstyler_opt.report.load import Evaluation, ResultFolder, RunOutput
from clipstyler_opt.stats import mean_interval

__all__ = ["CONTENT_METRICS", "PREFIX", "STYLE_METRICS", "NamedFigure", "axis_label", "colours_of", "estimate",
           "grid_figures", "loss_figures", "tradeoff_figures"]

PREFIX = "report-"
CONTENT_METRICS = ("ssim", "vgg_content_distance")  # first available is the trade-off plot's x axis
STYLE_METRICS = ("directional_similarity", "clip_score")  # first available is its y axis
GRID_SIDE = 480  # pixels per picture of the grid figure: 1.6 in at 300 dpi


@dataclass(frozen=True)
class NamedFigure:
    """A figure with its file stem (always starting with `PREFIX`) and the caption the page shows."""

    name: str
    caption: str
    figure: Figure


def estimate(values: Iterable[tuple[float | None, Hashable]]) -> Estimate | None:
    """Mean, 95% cluster-robust t-interval and n of the finite values, given as (value, cluster)
    pairs (the cluster: the output's content image); None when there are none.

    Example:
        >>> estimate([(1.0, "a.png"), (None, "b.png"), (float("nan"), "b.png")])
        Estimate(mean=1.0, low=1.0, high=1.0, n=1)
    """
    kept = [(float(v), cluster) for v, cluster in values if v is not None and math.isfinite(v)]
    if not kept:
        return None
    interval = mean_interval([v for v, _ in kept], [cluster for _, cluster in kept])
    return Estimate(interval.mean, interval.ci_low, interval.ci_high, interval.n)


def colours_of(results: ResultFolder) -> dict[str, str]:
    """Cell label -> colour, for every cell of the folder in its order (the same in every chart).

    Example::

        colours_of(load_results(Path("out")))  # {'lambda_content=50': '#E69F00', ...}
    """
    return cell_colours(list(cell_labels(results.pooled_cells).values()))


def _stem(kind: str, index: int, prompt: str) -> str:
    return slugify(f"{PREFIX}{kind}-{index + 1}-{prompt}", max_length=80)


def _first_available(evaluation: Evaluation, names: Sequence[str], outputs: Sequence[RunOutput]) -> str | None:
    return next((m for m in names if any(evaluation.value(o, m) is not None for o in outputs)), None)


def axis_label(evaluation: Evaluation, metric: str) -> str:
    """A metric's name and which way is better, for an axis.

    Example:
        >>> axis_label(Evaluation(("ssim",), {"ssim": "higher"}, {}), "ssim")
        'ssim (higher is better)'
    """
    direction = evaluation.directions.get(metric)
    return f"{metric} ({direction} is better)" if direction else metric


def tradeoff_figures(results: ResultFolder) -> tuple[list[NamedFigure], list[str]]:
    """Per prompt: a content metric against a style metric, one point per cell (the mean over its
    outputs) with interval bars both ways. Returns the figures and, per prompt left out, why.

    Example::

        figures, missing = tradeoff_figures(load_results(Path("out")))
        figures[0].name  # 'report-tradeoff-1-starry-night'
    """
    evaluation = results.evaluation
    if evaluation is None:
        return [], []
    labels, colours = cell_labels(results.pooled_cells), colours_of(results)
    figures, missing = [], []
    for index, prompt in enumerate(results.prompts):
        outputs = [o for o in results.outputs if o.prompt == prompt]
        x_metric = _first_available(evaluation, CONTENT_METRICS, outputs)
        y_metric = _first_available(evaluation, STYLE_METRICS, outputs)
        if x_metric is None or y_metric is None:
            missing.append(f"{prompt}: no content and style metric to plot.")
            continue
        points = []
        for cell in results.pooled_cells:
            in_cell = [o for o in outputs if o.cell.pooled() == cell]
            x = estimate((evaluation.value(o, x_metric), o.content) for o in in_cell)
            y = estimate((evaluation.value(o, y_metric), o.content) for o in in_cell)
            if x is not None and y is not None:
                points.append(Point(labels[cell], x.mean, y.mean, x.low, x.high, y.low, y.high))
        if not points:
            missing.append(f"{prompt}: no cell has both metrics.")
            continue
        figure = scatter_chart(points, xlabel=axis_label(evaluation, x_metric), colours=colours,
                               ylabel=axis_label(evaluation, y_metric), title=prompt)
        figures.append(NamedFigure(_stem("tradeoff", index, prompt), "One point per cell: the mean over this "
                                   "prompt's outputs, with 95% intervals both ways.", figure))
    return figures, missing


def _step_series(label: str, outputs: Sequence[RunOutput], name: str) -> Series | None:
    """Per step, the mean of loss `name` over the outputs, with its interval band."""
    longest = max(len(o.history) for o in outputs)
    x, y, low, high = [], [], [], []
    for step in range(longest):
        found = estimate((o.history[step].get(name), o.content) for o in outputs if step < len(o.history))
        if found is not None:
            x.append(step + 1)
            y.append(found.mean)
            low.append(found.low if found.low is not None else found.mean)
            high.append(found.high if found.high is not None else found.mean)
    return Series(label, x, y, low, high) if x else None


def loss_figures(results: ResultFolder) -> list[NamedFigure]:
    """Per prompt: a panel per loss term (total first), one curve per cell, the mean over its
    outputs at each step with a 95% interval band.

    Example::

        [f.name for f in loss_figures(load_results(Path("out")))]  # ['report-losses-1-starry-night']
    """
    labels, colours = cell_labels(results.pooled_cells), colours_of(results)
    figures = []
    for index, prompt in enumerate(results.prompts):
        outputs = [o for o in results.outputs if o.prompt == prompt and o.history]
        if not outputs:
            continue
        names = list(dict.fromkeys(n for o in outputs for step in o.history for n in step))
        names.sort(key=lambda n: n != "total")
        panels = []
        for name in names:
            series = []
            for cell in results.pooled_cells:
                in_cell = [o for o in outputs if o.cell.pooled() == cell]
                curve = _step_series(labels[cell], in_cell, name) if in_cell else None
                if curve is not None:
                    series.append(curve)
            if series:
                panels.append(Panel(name, series))
        if panels:
            figure = curve_panels(panels, xlabel="step", integer_x=True, colours=colours, title=prompt)
            figures.append(NamedFigure(_stem("losses", index, prompt), "Per step, the mean over this prompt's "
                                       "outputs of each cell, with a 95% interval band.", figure))
    return figures


def _pixels(path: Path) -> np.ndarray:
    """The picture through the file gate and the format allow-list, at most `GRID_SIDE` pixels a side."""
    from PIL import Image

    from clipstyler_opt.run.images import load_image

    image = load_image(path).rgb
    image.thumbnail((GRID_SIDE, GRID_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(image)


def grid_figures(results: ResultFolder) -> list[NamedFigure]:
    """Per prompt, the image grid for print: a row per content image (the content first), a column
    per cell (its first output, by seed), headed by the cell's label in its colour.

    Example::

        grid = grid_figures(load_results(Path("out")))[0]
        save_figure(grid.figure, Path("out/figures"), grid.name)  # report-grid-1-....svg|pdf|png
    """
    labels, colours = cell_labels(results.pooled_cells), colours_of(results)
    figures = []
    for index, prompt in enumerate(results.prompts):
        groups = {content: outputs for (content, p), outputs in results.groups().items() if p == prompt}
        cells = [c for c in results.pooled_cells
                 if any(o.cell.pooled() == c for outputs in groups.values() for o in outputs)]
        rows, names = [], []
        for content, outputs in groups.items():
            row: list[np.ndarray | None] = [_pixels(content) if content.is_file() else None]
            for cell in cells:
                chosen = sorted((o for o in outputs if o.cell.pooled() == cell),
                                key=lambda o: (o.seed is None, o.seed or 0))
                row.append(_pixels(chosen[0].image) if chosen else None)
            rows.append(row)
            names.append(content.name)
        figure = image_grid(rows, row_labels=names, column_labels=["content", *(labels[c] for c in cells)],
                            colours=colours, title=prompt)
        figures.append(NamedFigure(_stem("grid", index, prompt), "Content and one output per cell.", figure))
    return figures

