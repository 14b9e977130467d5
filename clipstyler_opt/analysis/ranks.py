"""Rank correlations: Spearman's ρ and Kendall's τ-b (ties handled), in plain numpy.

- Spearman's ρ: Pearson's correlation of the ranks, tied values sharing their mean rank.
- Kendall's τ-b: (concordant − discordant) / sqrt((n0 − n1)(n0 − n2)), with n0 = n(n−1)/2 and
  n1, n2 the pairs tied in x and in y; it is 1 for identical orderings, −1 for reversed ones.

Both return None when undefined (fewer than 2 points, or one variable constant).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["kendall_tau_b", "ranks", "spearman_rho"]


def ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank.

    Example:
        >>> ranks([10, 30, 20, 20]).tolist()
        [1.0, 4.0, 2.5, 2.5]
    """
    data = np.asarray(values, dtype=np.float64)
    order = np.argsort(data, kind="mergesort")
    result = np.empty(len(data))
    start = 0
    while start < len(data):
        end = start
        while end + 1 < len(data) and data[order[end + 1]] == data[order[start]]:
            end += 1
        result[order[start:end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return result


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation.

    Example:
        >>> spearman_rho([1, 2, 3, 4], [10, 20, 30, 25])
        0.8
    """
    if len(x) != len(y):
        raise ValueError("x and y must have the same length")
    if len(x) < 2:
        return None
    rx, ry = ranks(x) - (len(x) + 1) / 2.0, ranks(y) - (len(y) + 1) / 2.0
    denominator = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry) / denominator if denominator > 0 else None


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's τ-b over all pairs (O(n²): meant for up to a few thousand outputs).

    Example:
        >>> kendall_tau_b([1, 2, 3], [1, 2, 3]), kendall_tau_b([1, 2, 3], [3, 2, 1])
        (1.0, -1.0)
    """
    if len(x) != len(y):
        raise ValueError("x and y must have the same length")
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(a)
    if n < 2:
        return None
    upper = np.triu_indices(n, k=1)
    dx = np.sign(a[:, None] - a[None, :])[upper]
    dy = np.sign(b[:, None] - b[None, :])[upper]
    pairs = len(dx)
    tied_x, tied_y = int(np.sum(dx == 0)), int(np.sum(dy == 0))
    denominator = math.sqrt(float(pairs - tied_x) * float(pairs - tied_y))
    return float(np.sum(dx * dy)) / denominator if denominator > 0 else None
