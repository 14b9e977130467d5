"""The bootstrap over clusters: resample whole clusters (content images, participants), never
single points, and read the interval off the resampled statistics as BCa or percentile limits.

Points that share a content image (several seeds of one image, one image under several prompts) or
a participant are not independent; resampling the clusters keeps each one's points together, so
an interval reflects the variation between clusters.

BCa (Efron 1987): with θ̂ the estimate, θ*_b the resampled values and θ_(g) the jackknife values
(cluster g left out), z₀ = Φ⁻¹(share of θ*_b below θ̂, ties counted half; clipped to
[1/2B, 1 − 1/2B] so that it stays finite), a = Σ(θ̄ − θ_(g))³ / (6·(Σ(θ̄ − θ_(g))²)^1.5), and the
limits are the percentiles Φ(z₀ + (z₀ + z_α)/(1 − a(z₀ + z_α))) of the θ*_b. The percentile method
takes the α/2 and 1 − α/2 percentiles directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal, TypeVar

import numpy as np

__all__ = ["CONFIDENCE", "METHODS", "MIN_CLUSTERS", "RESAMPLES", "Interval", "bootstrap_limits",
           "cluster_bootstrap", "jackknife_values", "resampled_values"]

RESAMPLES = 2000
CONFIDENCE = 0.95
MIN_CLUSTERS = 3  # fewer clusters have too few distinct resamples (2 clusters: 3) to give an interval
METHODS = ("bca", "percentile")
Method = Literal["bca", "percentile"]
T = TypeVar("T")
_NORMAL = NormalDist()


@dataclass(frozen=True)
class Interval:
    """An estimate with its bootstrap interval, the number of clusters, how many resamples gave a
    value (a resample can be degenerate, e.g. all points at one level) and the method."""

    estimate: float
    low: float | None
    high: float | None
    clusters: int
    resamples_used: int
    method: str = "bca"

    def to_dict(self) -> dict[str, Any]:
        """The JSON entry: estimate, ci_low, ci_high, n_clusters, resamples_used, confidence, method,
        and a note saying why the limits are null when they are."""
        entry = {"estimate": self.estimate, "ci_low": self.low, "ci_high": self.high, "n_clusters": self.clusters,
                 "resamples_used": self.resamples_used, "confidence": CONFIDENCE, "method": self.method}
        if self.low is None and self.clusters < MIN_CLUSTERS:
            entry["note"] = f"{self.clusters} cluster(s): an interval needs {MIN_CLUSTERS} or more"
        elif self.low is None:
            entry["note"] = "no resample gave a value"
        return entry


def resampled_values(clusters: Sequence[T], statistic: Callable[[list[T]], Any], *, resamples: int = RESAMPLES,
                     seed: int = 0) -> np.ndarray:
    """`statistic` of `resamples` resamples of whole clusters, shape (resamples, k) for a
    statistic of k values (a number counts as k = 1); a resample without a value is NaN.

    Example:
        >>> resampled_values([[1.0], [1.0]], lambda cs: cs[0][0], resamples=3).tolist()
        [[1.0], [1.0], [1.0]]
    """
    items = list(clusters)
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(resamples):
        value = statistic([items[i] for i in rng.integers(0, len(items), size=len(items))])
        rows.append(np.atleast_1d(np.asarray(np.nan if value is None else value, dtype=np.float64)))
    return np.vstack(rows) if rows else np.zeros((0, 1))


def jackknife_values(clusters: Sequence[T], statistic: Callable[[list[T]], Any]) -> np.ndarray:
    """`statistic` with each cluster left out in turn, shape (clusters, k); NaN where it has no value.

    Example:
        >>> jackknife_values([[1.0], [2.0], [4.0]], lambda cs: sum(c[0] for c in cs)).ravel().tolist()
        [6.0, 5.0, 3.0]
    """
    items = list(clusters)
    rows = []
    for left_out in range(len(items)):
        value = statistic(items[:left_out] + items[left_out + 1:])
        rows.append(np.atleast_1d(np.asarray(np.nan if value is None else value, dtype=np.float64)))
    return np.vstack(rows)


def bootstrap_limits(values: np.ndarray, estimate: float, *, confidence: float = CONFIDENCE,
                     method: Method = "bca", jackknife: np.ndarray | None = None) -> tuple[float, float] | None:
    """The interval's limits from the finite resampled `values` of one statistic (None when none is
    finite); BCa needs the `jackknife` values (one per cluster).

    Example:
        >>> [round(v, 6) for v in bootstrap_limits(np.arange(1001.0), 500.0, method="percentile")]
        [25.0, 975.0]
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    tail = (1.0 - confidence) / 2.0
    if method == "percentile":
        low, high = np.quantile(finite, [tail, 1.0 - tail])
        return float(low), float(high)
    if jackknife is None:
        raise ValueError("BCa needs the jackknife values")
    if np.all(finite == estimate):
        return float(estimate), float(estimate)
    share = (np.sum(finite < estimate) + 0.5 * np.sum(finite == estimate)) / finite.size
    share = min(max(share, 0.5 / finite.size), 1.0 - 0.5 / finite.size)
    z0 = _NORMAL.inv_cdf(share)
    jack = jackknife[np.isfinite(jackknife)]
    spread = jack.mean() - jack if jack.size else np.zeros(1)
    denominator = 6.0 * float((spread ** 2).sum()) ** 1.5
    acceleration = float((spread ** 3).sum()) / denominator if denominator > 0 else 0.0
    levels = []
    for z in (_NORMAL.inv_cdf(tail), _NORMAL.inv_cdf(1.0 - tail)):
        levels.append(_NORMAL.cdf(z0 + (z0 + z) / (1.0 - acceleration * (z0 + z))))
    low, high = np.quantile(finite, levels)
    return float(low), float(high)


def cluster_bootstrap(clusters: Sequence[T], statistic: Callable[[list[T]], float | None], *,
                      resamples: int = RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0,
                      method: Method = "bca") -> Interval | None:
    """`statistic` of all clusters, with its bootstrap interval over resamples of whole clusters.

    Args:
        clusters: one item per cluster (e.g. the points of one content image).
        statistic: the value for a list of clusters, or None where it cannot be computed.
        resamples: bootstrap resamples; a fixed `seed` makes the interval reproducible.
        method: "bca" (bias-corrected and accelerated) or "percentile".

    Returns:
        None when the statistic of all clusters is None; with fewer than `MIN_CLUSTERS` clusters
        the limits are None (two clusters give three distinct resamples: no interval to speak of).

    Example:
        >>> result = cluster_bootstrap([[1.0], [2.0], [3.0]], lambda cs: float(np.mean([v for c in cs for v in c])))
        >>> result.estimate, result.clusters, result.method
        (2.0, 3, 'bca')
        >>> 1.0 <= result.low <= 2.0 <= result.high <= 3.0
        True
        >>> cluster_bootstrap([[1.0], [2.0]], lambda cs: 1.5).to_dict()["note"]
        '2 cluster(s): an interval needs 3 or more'
    """
    if method not in METHODS:
        raise ValueError(f"unknown bootstrap method {method!r} (expected one of {', '.join(METHODS)})")
    items = list(clusters)
    estimate = statistic(items)
    if estimate is None:
        return None
    if len(items) < MIN_CLUSTERS:
        return Interval(float(estimate), None, None, len(items), 0, method)
    values = resampled_values(items, statistic, resamples=resamples, seed=seed)[:, 0]
    jackknife = jackknife_values(items, statistic)[:, 0] if method == "bca" else None
    limits = bootstrap_limits(values, float(estimate), confidence=confidence, method=method, jackknife=jackknife)
    used = int(np.isfinite(values).sum())
    if limits is None:
        return Interval(float(estimate), None, None, len(items), 0, method)  # no resample could be computed
    return Interval(float(estimate), limits[0], limits[1], len(items), used, method)
