"""Response curves: does the image respond to a setting linearly or sub-linearly?

Two models are fitted by least squares to points (x, y):

- linear: y = a + b·x (2 parameters);
- power law: y = a + b·x^γ (3 parameters, x ≥ 0). For a fixed γ it is linear in (a, b), so γ
  is found by minimising the residual sum of squares over γ (a log grid, then finer grids around
  the best point); γ = 1 is the linear model, γ < 1 a sub-linear (saturating) response.

Both report R² = 1 − RSS/TSS. The models are compared by AIC for Gaussian errors,
AIC = n·ln(RSS/n) + 2k, corrected for small samples (AICc, + 2k(k+1)/(n − k − 1)); the model
with the lower value is preferred. The power law is fitted only with at least `MIN_POWER_LEVELS`
distinct x values: with fewer, three parameters fit any curve and the fit says nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from clipstyler_opt.stats.bootstrap import Interval, cluster_bootstrap
from clipstyler_opt.stats.means import mean_interval

__all__ = ["GAMMA_RANGE", "MIN_POWER_LEVELS", "CurveFit", "Skipped", "fit_linear", "fit_power", "level_means",
           "response_curve"]

MIN_POWER_LEVELS = 4
GAMMA_RANGE = (0.02, 20.0)
_GRID = np.geomspace(*GAMMA_RANGE, 161)
Points = Sequence[tuple[float, float]]


@dataclass(frozen=True)
class CurveFit:
    """A fitted model: y = a + b·x^gamma (gamma 1.0 for the linear model), R², RSS, AICc, n."""

    model: str
    a: float
    b: float
    gamma: float
    r2: float
    rss: float
    aic: float
    n: int

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.a + self.b * np.power(np.asarray(x, dtype=np.float64), self.gamma)

    @property
    def gamma_at_bound(self) -> bool:
        """γ at the edge of the searched range: the data do not identify it (a flat or noisy response)."""
        return self.model == "power" and not GAMMA_RANGE[0] * 1.01 < self.gamma < GAMMA_RANGE[1] / 1.01

    def to_dict(self) -> dict[str, Any]:
        entry = {"model": self.model, "a": self.a, "b": self.b, "gamma": self.gamma, "r2": self.r2, "aic": self.aic,
                 "n": self.n}
        if self.gamma_at_bound:
            entry["note"] = (f"γ at the edge of the searched range {GAMMA_RANGE}: the response does not identify "
                             "it (flat or noisy); read the line instead")
        return entry


@dataclass(frozen=True)
class Skipped:
    """A probe or fit that could not run, and why (never a NaN in its place)."""

    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"skipped": self.reason}


def _arrays(points: Points) -> tuple[np.ndarray, np.ndarray]:
    data = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(data).all():
        raise ValueError("response points must be finite")
    return data[:, 0], data[:, 1]


def _least_squares(basis: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(a, b, RSS) of y ≈ a + b·basis."""
    design = np.stack([np.ones_like(basis), basis], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    rss = float(np.sum((y - a - b * basis) ** 2))
    return float(a), float(b), rss


def _aicc(rss: float, n: int, k: int) -> float:
    rss = max(rss, 1e-300)  # a perfect fit: the AIC is very low, not undefined
    aic = n * math.log(rss / n) + 2 * k
    return aic + (2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else math.inf)


def _r2(rss: float, y: np.ndarray) -> float:
    tss = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - rss / tss if tss > 0 else (1.0 if rss <= 1e-24 else 0.0)


def fit_linear(points: Points) -> CurveFit | Skipped:
    """Least-squares line through (x, y) points.

    Example:
        >>> fit = fit_linear([(0, 1.0), (1, 3.0), (2, 5.0)])
        >>> round(fit.a, 6), round(fit.b, 6), round(fit.r2, 6)
        (1.0, 2.0, 1.0)
    """
    x, y = _arrays(points)
    if len(np.unique(x)) < 2:
        return Skipped("fewer than 2 distinct levels: no line can be fitted")
    a, b, rss = _least_squares(x, y)
    return CurveFit("linear", a, b, 1.0, _r2(rss, y), rss, _aicc(rss, len(x), 2), len(x))


def _rss_over(gammas: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """RSS of the best line through (x^γ, y) for each γ at once: TSS − cov(x^γ, y)² / var(x^γ)."""
    basis = np.power(x[None, :], gammas[:, None])
    centred = basis - basis.mean(axis=1, keepdims=True)
    dy = y - y.mean()
    var = np.sum(centred**2, axis=1)
    cov = centred @ dy
    explained = np.divide(cov**2, var, out=np.zeros_like(var), where=var > 0)
    return np.maximum(float(dy @ dy) - explained, 0.0)


def fit_power(points: Points) -> CurveFit | Skipped:
    """Least-squares power law y = a + b·x^γ with γ in `GAMMA_RANGE` (x must be ≥ 0).

    Example:
        >>> fit = fit_power([(x, 2.0 + 3.0 * x ** 0.5) for x in (0.0, 0.25, 0.5, 0.75, 1.0)])
        >>> round(fit.gamma, 3), round(fit.r2, 6)
        (0.5, 1.0)
    """
    x, y = _arrays(points)
    levels = len(np.unique(x))
    if levels < MIN_POWER_LEVELS:
        return Skipped(f"{levels} levels: a power law has 3 parameters and needs at least {MIN_POWER_LEVELS}")
    if (x < 0).any():
        return Skipped("a power law needs levels ≥ 0")
    grid = _GRID
    for _ in range(3):  # a log grid, then two finer grids around the best point
        best = int(np.argmin(_rss_over(grid, x, y)))
        low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
        grid = np.geomspace(low, high, 65)
    gamma = float(grid[int(np.argmin(_rss_over(grid, x, y)))])
    a, b, rss = _least_squares(np.power(x, gamma), y)
    return CurveFit("power", a, b, gamma, _r2(rss, y), rss, _aicc(rss, len(x), 3), len(x))


def level_means(points_per_image: Sequence[Points]) -> list[dict[str, Any]]:
    """The mean response at each level, with its 95% t-interval over content images (an image with
    several points at one level counts once, by its own mean).

    Example:
        >>> level_means([[(0.0, 1.0), (1.0, 2.0)], [(0.0, 3.0), (1.0, 4.0)]])[0]["mean"]
        2.0
    """
    per_level: dict[float, list[float]] = {}
    for image in points_per_image:
        mine: dict[float, list[float]] = {}
        for x, y in image:
            mine.setdefault(float(x), []).append(float(y))
        for x, ys in mine.items():
            per_level.setdefault(x, []).append(float(np.mean(ys)))
    rows = []
    for x in sorted(per_level):
        level = mean_interval(per_level[x])  # one value per image: the t-interval covers at few images
        rows.append({"x": x, "mean": level.mean, "ci_low": level.ci_low, "ci_high": level.ci_high,
                     "n_images": level.n})
    return rows


def response_curve(points_per_image: Sequence[Points], *, seed: int = 0) -> dict[str, Any]:
    """Both fits on the points of all content images, γ with an interval over content images,
    and the model the data prefer (lower AICc). Each element of `points_per_image` holds one
    content image's (x, y) points.

    Example:
        >>> images = [[(x, 1.0 + 2.0 * x + 0.01 * i) for x in (0, 1, 2, 3)] for i in range(3)]
        >>> summary = response_curve(images)
        >>> summary["linear"]["r2"] > 0.999, summary["preferred"]
        (True, 'linear')
    """
    pooled = [p for image in points_per_image for p in image]
    linear, power = fit_linear(pooled), fit_power(pooled)
    summary: dict[str, Any] = {"n_points": len(pooled), "n_images": len(points_per_image),
                               "levels": level_means(points_per_image),
                               "linear": linear.to_dict(), "power": power.to_dict()}
    if isinstance(power, CurveFit):
        def gamma_of(images: list[Points]) -> float | None:
            fit = fit_power([p for image in images for p in image])
            return fit.gamma if isinstance(fit, CurveFit) else None

        interval = cluster_bootstrap(list(points_per_image), gamma_of, seed=seed)
        summary["gamma"] = interval.to_dict() if isinstance(interval, Interval) else None
    if isinstance(linear, CurveFit) and isinstance(power, CurveFit):
        summary["preferred"] = "power" if power.aic < linear.aic else "linear"
    elif isinstance(linear, CurveFit):
        summary["preferred"] = "linear"
    return summary
