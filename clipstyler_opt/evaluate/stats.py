"""Means with bootstrap confidence intervals, overall, per prompt and per cell.

The interval is the percentile bootstrap over images: resample the n values with replacement
`resamples` times (a fixed seed, so the same values give the same interval), take each
resample's mean, and report the 2.5th and 97.5th percentiles of those means. With n = 1 there
is nothing to resample: the interval is [mean, mean] and the entry says so.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CONFIDENCE", "RESAMPLES", "SEED", "MeanInterval", "bootstrap_mean", "summarise"]

RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 0
SINGLE_NOTE = "one image: no interval (ci_low = ci_high = mean)"


@dataclass(frozen=True)
class MeanInterval:
    mean: float
    ci_low: float
    ci_high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n}
        if self.n == 1:
            entry["note"] = SINGLE_NOTE
        return entry


def bootstrap_mean(values: Sequence[float], *, resamples: int = RESAMPLES, confidence: float = CONFIDENCE,
                   seed: int = SEED) -> MeanInterval:
    """Mean and percentile-bootstrap interval of `values` (finite numbers, at least one).

    Example:
        >>> bootstrap_mean([2.0])
        MeanInterval(mean=2.0, ci_low=2.0, ci_high=2.0, n=1)
    """
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1 or data.size == 0 or not np.isfinite(data).all():
        raise ValueError("expected one or more finite values")
    mean = float(data.mean())
    if data.size == 1:
        return MeanInterval(mean, mean, mean, 1)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return MeanInterval(mean, float(low), float(high), int(data.size))


def _means(rows: Iterable[Mapping[str, Any]], metrics: Sequence[str]) -> dict[str, dict[str, Any]]:
    rows = list(rows)
    summary = {}
    for metric in metrics:
        values = [row["metrics"].get(metric) for row in rows]
        finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
        if finite:
            summary[metric] = bootstrap_mean(finite).to_dict()
    return summary


def _grouped(rows: Sequence[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], Any],
             metrics: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[str(key(row))].append(row)
    return {name: _means(members, metrics) for name, members in groups.items()}


def summarise(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> dict[str, Any]:
    """{"overall": {metric: interval}, "per_prompt": {prompt: {...}}}, plus "per_cell" when the
    rows come from more than one cell. Metrics without a value are left out of a group."""
    summary: dict[str, Any] = {"overall": _means(rows, metrics),
                               "per_prompt": _grouped(rows, lambda row: row["prompt"], metrics)}
    cells = {row.get("cell") for row in rows if row.get("cell") is not None}
    if len(cells) > 1:
        summary["per_cell"] = _grouped([row for row in rows if row.get("cell") is not None],
                                       lambda row: row["cell"], metrics)
    return summary
