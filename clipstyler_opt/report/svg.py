"""Small inline-SVG charts: a line chart (loss curves) and a labelled scatter plot (trade-offs).

Each chart has a `<rect class="plot-area">`; data map linearly from the axis domain (the nice
tick range that covers the data) onto that rectangle, y growing upwards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from clipstyler_opt.report.markup import escape

__all__ = ["PALETTE", "Axis", "LabelledPoint", "Series", "format_tick", "line_chart", "nice_axis", "scatter_chart"]

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f", "#bcbd22")
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 20, 30, 46
_LEGEND_ROW = 16


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]


@dataclass(frozen=True)
class LabelledPoint:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Axis:
    low: float
    high: float
    ticks: tuple[float, ...]
    step: float


def nice_axis(low: float, high: float, target_ticks: int = 5) -> Axis:
    """Ticks at multiples of 1, 2 or 5 × 10^k, about `target_ticks` of them, covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("axis limits must be finite")
    if low > high:
        low, high = high, low
    if low == high:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(1, target_ticks)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    ticks = tuple(_tidy(k * step, step) for k in range(first, last + 1))
    return Axis(low=ticks[0], high=ticks[-1], ticks=ticks, step=step)


def _tidy(value: float, step: float) -> float:
    decimals = max(0, -math.floor(math.log10(step))) + 1
    value = round(value, decimals)
    return 0.0 if value == 0 else value


def format_tick(value: float, step: float) -> str:
    """A tick label with as many decimals as the step needs (scientific for extreme magnitudes)."""
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-4):
        return f"{value:.3g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:.{decimals}f}"


class _Frame:
    """Maps data to pixels and draws the axes, ticks, grid and labels."""

    def __init__(self, xs: Sequence[float], ys: Sequence[float], width: int, height: int, legend_rows: int) -> None:
        self.x, self.y = nice_axis(min(xs), max(xs)), nice_axis(min(ys), max(ys))
        self.width, self.height = width, height + legend_rows * _LEGEND_ROW
        self.left, self.top = _LEFT, _TOP
        self.plot_width, self.plot_height = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM

    def px(self, x: float) -> float:
        return self.left + (x - self.x.low) / (self.x.high - self.x.low) * self.plot_width

    def py(self, y: float) -> float:
        return self.top + (self.y.high - y) / (self.y.high - self.y.low) * self.plot_height

    def axes(self, title: str, x_label: str, y_label: str) -> list[str]:
        bottom, right = self.top + self.plot_height, self.left + self.plot_width
        parts = [f'<rect class="plot-area" x="{self.left}" y="{self.top}" width="{self.plot_width}" '
                 f'height="{self.plot_height}" fill="none" stroke="#999"/>',
                 f'<text class="title" x="{self.width / 2:.1f}" y="18" text-anchor="middle" '
                 f'font-weight="bold">{escape(title)}</text>']
        for tick in self.x.ticks:
            x = self.px(tick)
            parts.append(f'<line class="grid" x1="{x:.2f}" y1="{self.top}" x2="{x:.2f}" y2="{bottom}" stroke="#eee"/>')
            parts.append(f'<text class="x-tick" x="{x:.2f}" y="{bottom + 14}" text-anchor="middle">'
                         f'{escape(format_tick(tick, self.x.step))}</text>')
        for tick in self.y.ticks:
            y = self.py(tick)
            parts.append(f'<line class="grid" x1="{self.left}" y1="{y:.2f}" x2="{right}" y2="{y:.2f}" stroke="#eee"/>')
            parts.append(f'<text class="y-tick" x="{self.left - 6}" y="{y + 4:.2f}" text-anchor="end">'
                         f'{escape(format_tick(tick, self.y.step))}</text>')
        parts.append(f'<text class="x-label" x="{self.left + self.plot_width / 2:.1f}" y="{bottom + 34}" '
                     f'text-anchor="middle">{escape(x_label)}</text>')
        mid = self.top + self.plot_height / 2
        parts.append(f'<text class="y-label" x="14" y="{mid:.1f}" text-anchor="middle" '
                     f'transform="rotate(-90 14 {mid:.1f})">{escape(y_label)}</text>')
        return parts

    def svg(self, body: list[str], title: str) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="{escape(title)}" '
                f'width="{self.width}" height="{self.height}" viewBox="0 0 {self.width} {self.height}" '
                f'font-family="sans-serif" font-size="11">' + "".join(body) + "</svg>")


def _finite(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]


def line_chart(series: Sequence[Series], *, title: str, x_label: str, y_label: str,
               width: int = 420, height: int = 240) -> str:
    """One polyline per series (non-finite points dropped), with a legend below the axes."""
    kept = [Series(s.name, _finite(s.points)) for s in series]
    kept = [s for s in kept if s.points]
    if not kept:
        raise ValueError("a line chart needs at least one finite point")
    frame = _Frame([x for s in kept for x, _ in s.points], [y for s in kept for _, y in s.points],
                   width, height, legend_rows=len(kept))
    body = frame.axes(title, x_label, y_label)
    for index, s in enumerate(kept):
        colour = PALETTE[index % len(PALETTE)]
        coords = " ".join(f"{frame.px(x):.2f},{frame.py(y):.2f}" for x, y in s.points)
        body.append(f'<polyline class="series" data-name="{escape(s.name)}" points="{coords}" fill="none" '
                    f'stroke="{colour}" stroke-width="1.5"><title>{escape(s.name)}</title></polyline>')
        legend_y = height + index * _LEGEND_ROW - 4
        body.append(f'<line x1="{_LEFT}" y1="{legend_y - 4}" x2="{_LEFT + 18}" y2="{legend_y - 4}" '
                    f'stroke="{colour}" stroke-width="2"/>')
        body.append(f'<text class="legend" x="{_LEFT + 24}" y="{legend_y}">{escape(s.name)}</text>')
    return frame.svg(body, title)


def _padded(values: Sequence[float], share: float = 0.05) -> list[float]:
    """The range of `values` widened by `share` of its span on each side (points off the frame)."""
    low, high = min(values), max(values)
    pad = (high - low) * share
    return [low - pad, high + pad]


def scatter_chart(points: Sequence[LabelledPoint], *, title: str, x_label: str, y_label: str,
                  width: int = 480, height: int = 320) -> str:
    """One labelled circle per finite point; the axes cover the data plus 5% of its span each side."""
    kept = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y)]
    if not kept:
        raise ValueError("a scatter chart needs at least one finite point")
    xs, ys = _padded([p.x for p in kept]), _padded([p.y for p in kept])
    frame = _Frame(xs, ys, width, height, legend_rows=0)
    body = frame.axes(title, x_label, y_label)
    for index, point in enumerate(kept):
        x, y = frame.px(point.x), frame.py(point.y)
        colour = PALETTE[index % len(PALETTE)]
        anchor, dx = ("end", -7) if x > frame.left + frame.plot_width * 0.6 else ("start", 7)
        body.append(f'<circle class="point" cx="{x:.2f}" cy="{y:.2f}" r="4" fill="{colour}">'
                    f'<title>{escape(point.label)}</title></circle>')
        body.append(f'<text class="point-label" x="{x + dx:.2f}" y="{y - 6:.2f}" text-anchor="{anchor}">'
                    f'{escape(point.label)}</text>')
    return frame.svg(body, title)
