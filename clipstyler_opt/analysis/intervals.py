"""Percentile bootstrap over clusters: resample whole clusters (content images), never single points.

Points that share a content image are not independent; resampling the images keeps each image's
points together, so an interval reflects the variation between images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

__all__ = ["CONFIDENCE", "RESAMPLES", "Interval", "cluster_bootstrap"]

RESAMPLES = 2000
CONFIDENCE = 0.95
T = TypeVar("T")


@dataclass(frozen=True)
class Interval:
    """An estimate with its percentile-bootstrap interval, the number of clusters, and how many
    resamples gave a value (a resample can be degenerate, e.g. all points at one level)."""

    estimate: float
    low: float | None
    high: float | None
    clusters: int
    resamples_used: int

    def to_dict(self) -> dict[str, Any]:
        return {"estimate": self.estimate, "ci_low": self.low, "ci_high": self.high, "n_clusters": self.clusters,
                "resamples_used": self.resamples_used, "confidence": CONFIDENCE}


def cluster_bootstrap(clusters: Sequence[T], statistic: Callable[[list[T]], float | None], *,
                      resamples: int = RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0) -> Interval | None:
    """`statistic` of all clusters, with the percentile interval of its value over resamples of clusters.

    Args:
        clusters: one item per cluster (e.g. the points of one content image).
        statistic: the value for a list of clusters, or None where it cannot be computed.
        resamples: bootstrap resamples; a fixed `seed` makes the interval reproducible.

    Returns:
        None when the statistic of all clusters is None; with one cluster the interval is the
        estimate itself (nothing to resample).

    Example:
        >>> result = cluster_bootstrap([[1.0], [2.0], [3.0]], lambda cs: float(np.mean([v for c in cs for v in c])))
        >>> result.estimate, result.clusters
        (2.0, 3)
        >>> 1.0 <= result.low <= 2.0 <= result.high <= 3.0
        True
    """
    items = list(clusters)
    estimate = statistic(items)
    if estimate is None:
        return None
    if len(items) < 2:
        return Interval(float(estimate), float(estimate), float(estimate), len(items), 0)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        chosen = rng.integers(0, len(items), size=len(items))
        value = statistic([items[i] for i in chosen])
        if value is not None and np.isfinite(value):
            values.append(value)
    if not values:
        return Interval(float(estimate), None, None, len(items), 0)  # no resample could be computed
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(np.asarray(values), [tail, 1.0 - tail])
    return Interval(float(estimate), float(low), float(high), len(items), len(values))
