"""The figures of `clipopt analyze`, drawn from `analysis.json` (so they can be redrawn without
encoding anything): response curves with interval bands and fitted curves, text-vs-image
scatter plots, confusion matrices of recognition, and the modality gap of each scorer. Files are
named by probe and scorer, in SVG, PDF and PNG (see `figures.export`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from clipstyler_opt.core.files import ReadSet
from clipstyler_opt.core.naming import slugify
from clipstyler_opt.core.styles import WEIGHTS_SETTING
from clipstyler_opt.figures.charts import Bar, Point, Series, bar_chart, curve_chart, heatmap_chart, scatter_chart
from clipstyler_opt.figures.export import FIGURES_FOLDER, save_figure
from clipstyler_opt.figures.palette import cell_colours

__all__ = ["FIGURES_FOLDER", "analysis_charts", "analysis_figures"]
_MEASURES = {"cos": "cos(ΔI, ΔT)", "along": "ΔI · ΔT (component along ΔT)"}


class _Names:
    """File stems that never collide: two scorers whose labels make the same file name get -2, -3..."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, stem: str) -> str:
        base = slugify(stem, max_length=120)
        name, number = base, 1
        while name in self.used:
            number += 1
            name = f"{base}-{number}"
        self.used.add(name)
        return name


def _response(name: str, setting: str, probe: Mapping[str, Any], names: _Names) -> list[tuple[str, Figure]]:
    charts: list[tuple[str, Figure]] = []
    texts = [k for k, v in probe.items() if isinstance(v, dict) and "cos" in v]
    colours = cell_colours(texts)
    colours.update({f"{text} (fit)": colours[text] for text in texts})
    for measure, ylabel in _MEASURES.items():
        series = []
        for text in texts:
            curve = probe[text][measure]
            levels = curve["levels"]
            x = [row["x"] for row in levels]
            low = [row["ci_low"] if row["ci_low"] is not None else row["mean"] for row in levels]
            high = [row["ci_high"] if row["ci_high"] is not None else row["mean"] for row in levels]
            series.append(Series(text, x, [row["mean"] for row in levels], low, high))
            best = curve.get(curve.get("preferred", ""), {})
            if "a" in best:
                grid = np.linspace(min(x), max(x), 50)
                fitted = best["a"] + best["b"] * np.power(grid, best["gamma"])
                series.append(Series(f"{text} (fit)", list(grid), list(fitted), fitted=True))
        xlabel = "weight of each part (--vary weights)" if setting == WEIGHTS_SETTING else setting
        figure = curve_chart(series, xlabel=xlabel, ylabel=ylabel, colours=colours,
                             title=f"{name}: response to {setting}")
        charts.append((names(f"response-{setting}-{measure}-{name}"), figure))
    return charts


def analysis_charts(summary: Mapping[str, Any]) -> list[tuple[str, Figure]]:
    """Every figure of an analysis summary, with the file stem it is saved under (names never
    collide: a repeat gets -2, -3...). `clipopt report` embeds these; `analysis_figures` saves them.

    Raises KeyError, TypeError or ValueError on a summary that is not `analysis.json`'s shape."""
    charts: list[tuple[str, Figure]] = []
    names = _Names()
    gaps = []
    for name, scorer in summary.get("scorers", {}).items():
        probes = scorer["probes"]
        gap = probes.get("modality_gap", {})
        if "gap" in gap:
            gaps.append(Bar(name, gap["gap"]))
        for setting, probe in (probes.get("response_curves") or {}).items():
            if isinstance(probe, dict) and "skipped" not in probe:
                charts += _response(name, setting, probe, names)
        pairs = probes.get("text_vs_image", {})
        if "pairs" in pairs:
            points = [Point(name, p["text_cos"], p["image_cos"]) for p in pairs["pairs"]]
            figure = scatter_chart(points, xlabel="cos(ΔT_a, ΔT_b): text side", diagonal=True,
                                   ylabel="cos(ΔI_a, ΔI_b): image side", title=f"{name}: pairs of prompts")
            charts.append((names(f"text-vs-image-{name}"), figure))
        recognition = probes.get("recognition", {})
        if "confusion" in recognition:
            labels = recognition["labels"]
            figure = heatmap_chart(recognition["confusion"], row_labels=labels, column_labels=labels,
                                   xlabel="ranked first", ylabel="prompted style",
                                   title=f"{name}: recognition (top-1 {recognition['top1']:.2f})")
            charts.append((names(f"recognition-{name}"), figure))
    if gaps:
        figure = bar_chart(gaps, xlabel="scorer", ylabel="modality gap ‖mean image − mean text‖", title="Modality gap")
        charts.append((names("modality-gap"), figure))
    return charts


def analysis_figures(summary: Mapping[str, Any], folder: Path, reads: ReadSet | None = None) -> list[Path]:
    """Every figure of an analysis summary, into `folder`; returns the files written. A figure
    that would land on a file among `reads` is refused."""
    written: list[Path] = []
    for name, figure in analysis_charts(summary):
        written += save_figure(figure, folder, name, reads=reads)
    return written
