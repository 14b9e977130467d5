"""Set-level metrics: distances between the distribution of a set of outputs and a reference set
of images (`--reference-dir`, e.g. paintings of the style), per cell and overall.

  fid     Fréchet distance between Gaussians fitted to the pytorch-fid Inception features of the
          outputs and of the reference images: ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½)   lower is better
  artfid  ArtFID as its authors' art-fid package computes it (Wright & Ommer 2022):
          (1 + LPIPS) · (1 + FID_art), LPIPS the mean `lpips` of the set's outputs against their
          content images (LPIPS-AlexNet v0.1 on [−1, 1], as art-fid's own) and FID_art art-fid's
          `compute_frechet_distance` of its art-trained Inception's features           lower is better

Means are np.mean and covariances np.cov (unbiased) of the features; the Fréchet distance is
pytorch-fid's own `calculate_frechet_distance` for fid and art-fid's for artfid. With n images
the covariance has rank ≤ n − 1, so small sets bias FID upwards (the published ArtFID∞
extrapolates from thousands of images); a set needs at least MIN_IMAGES images on each side,
otherwise its value is null with the reason. Each entry is a `SetMetric`; each value records n on
each side, the implementation, the network and its weights.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.evaluate.names import MetricUnavailable
from clipstyler_opt.evaluate.stats import pooled_cell

__all__ = ["MIN_IMAGES", "SET_METRICS", "SetInputs", "SetMetric", "art_frechet_distance", "format_set_metrics",
           "frechet_distance", "reference_images", "set_metric_values", "set_summary"]

MIN_IMAGES = 2  # a covariance needs two images; far more are needed for an unbiased FID


@dataclass(frozen=True)
class SetInputs:
    """One set: the outputs' features, the reference features (both (n, D)) and the outputs' rows."""

    outputs: np.ndarray
    reference: np.ndarray
    rows: Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class SetMetric:
    """One set-level metric's entry.

    Args:
        name: the key in eval.json's `set_metrics`.
        direction: "higher" or "lower".
        network: the feature network it uses ("fid" or "art"); never another's.
        compute: `compute(inputs) -> float`, raising MetricUnavailable with the reason.
        definition: what it computes, in one line.

    Example:
        >>> SET_METRICS[0].name, SET_METRICS[0].network
        ('fid', 'fid')
    """

    name: str
    direction: str
    network: str
    compute: Callable[[SetInputs], float]
    definition: str


def _fitted_distance(a: np.ndarray, b: np.ndarray,
                     distance: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], float]) -> float:
    """`distance(μ_a, Σ_a, μ_b, Σ_b)` of Gaussians fitted (np.mean, unbiased np.cov) to the rows of a and b."""
    for features in (a, b):
        if features.ndim != 2 or features.shape[0] < MIN_IMAGES:
            raise MetricUnavailable(f"needs at least {MIN_IMAGES} images on each side, has {features.shape[0]}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    sigma_a, sigma_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    try:
        # a singular product (few images) is expected: scipy's deprecation warnings and art-fid's
        # printed notice of it are kept off the terminal
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return float(distance(mu_a, sigma_a, mu_b, sigma_b))
    except ValueError as exc:  # a large imaginary part of the matrix square root
        raise MetricUnavailable(f"the Fréchet distance is not defined here ({exc})") from None


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """pytorch-fid's Fréchet distance between Gaussians fitted to the rows of `a` and of `b`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(5, 3))
        >>> abs(round(frechet_distance(x, x), 6))
        0.0
    """
    from pytorch_fid.fid_score import calculate_frechet_distance

    return _fitted_distance(a, b, calculate_frechet_distance)


def art_frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The art-fid package's own Fréchet distance (`compute_frechet_distance`), same fitting.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(5, 3))
        >>> abs(round(art_frechet_distance(x, x), 6))  # doctest: +SKIP
        0.0
    """
    from art_fid.art_fid import compute_frechet_distance

    return _fitted_distance(a, b, compute_frechet_distance)


def _fid(inputs: SetInputs) -> float:
    return frechet_distance(inputs.outputs, inputs.reference)


def _artfid(inputs: SetInputs) -> float:
    values = [row["metrics"].get("lpips") for row in inputs.rows]
    missing = [row for row, value in zip(inputs.rows, values, strict=True) if not isinstance(value, (int, float))]
    if missing:
        why = missing[0].get("unavailable", {}).get("lpips", "no value")
        raise MetricUnavailable(f"needs lpips for every output ({len(missing)} without: {why})")
    # art-fid's compute_art_fid: (content distance + 1) * (fid + 1), content distance the mean LPIPS
    return (1.0 + float(np.mean(values))) * (1.0 + art_frechet_distance(inputs.outputs, inputs.reference))


SET_METRICS = (
    SetMetric("fid", "lower", "fid", _fid, "Fréchet distance of pytorch-fid Inception pool3 features, outputs vs "
              "reference images"),
    SetMetric("artfid", "lower", "art", _artfid, "art-fid's ArtFID: (1 + mean LPIPS-AlexNet(output, content)) * "
              "(1 + art-fid's Fréchet distance of its art-trained Inception's features, outputs vs reference images)"),
)


def set_metric_values(features: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray],
                      rows: Sequence[Mapping[str, Any]], unavailable: Mapping[str, str],
                      provenance: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every set metric for one set: {name: {value, n_outputs, n_reference, (reason), provenance}}.

    `features[network]` holds the outputs' rows in the order of `rows`; a network named in
    `unavailable` gives null with that reason.

    Example:
        >>> rows = [{"metrics": {"lpips": 0.5}}, {"metrics": {"lpips": 0.5}}]
        >>> same = np.array([[0.0, 1.0], [1.0, 0.0]])
        >>> values = set_metric_values({"fid": same, "art": same}, {"fid": same, "art": same}, rows, {}, {})
        >>> abs(round(values["fid"]["value"], 6)), abs(round(values["artfid"]["value"], 6)), values["fid"]["n_outputs"]
        (0.0, 1.5, 2)
    """
    entries: dict[str, dict[str, Any]] = {}
    for metric in SET_METRICS:
        entry: dict[str, Any] = {"value": None, "n_outputs": len(rows),
                                 "n_reference": int(reference[metric.network].shape[0])
                                 if metric.network in reference else 0}
        if metric.network in unavailable:
            entry["reason"] = unavailable[metric.network]
        elif metric.network not in features or metric.network not in reference:
            entry["reason"] = f"the {metric.network} feature network was not loaded"
        else:
            try:
                value = metric.compute(SetInputs(features[metric.network], reference[metric.network], rows))
            except MetricUnavailable as why:
                entry["reason"] = str(why)
            else:
                if math.isfinite(value):
                    entry["value"] = value
                else:
                    entry["reason"] = f"not finite ({value})"
        entries[metric.name] = {**entry, **provenance.get(metric.network, {})}
    return entries


def set_summary(rows: Sequence[Mapping[str, Any]], features: Mapping[str, np.ndarray],
                reference: Mapping[str, np.ndarray], unavailable: Mapping[str, str],
                provenance: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """{"overall": values, "per_cell": {cell: values}} (per_cell when the rows span several cells;
    cells that differ only in the seed are one, see `stats.pooled_cell`);
    `features[network]` holds one row per element of `rows`.

    Example:
        >>> rows = [{"cell": cell, "metrics": {"lpips": 0.1}} for cell in "aab"]
        >>> x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
        >>> summary = set_summary(rows, {"fid": x, "art": x}, {"fid": x, "art": x}, {}, {})
        >>> summary["per_cell"]["a"]["fid"]["n_outputs"], summary["per_cell"]["b"]["fid"]["reason"]
        (2, 'needs at least 2 images on each side, has 1')
    """
    summary: dict[str, Any] = {"overall": set_metric_values(features, reference, rows, unavailable, provenance)}
    cells = sorted({pooled_cell(row) for row in rows if row.get("cell") is not None})
    if len(cells) > 1:
        summary["per_cell"] = {}
        for cell in cells:
            chosen = [i for i, row in enumerate(rows) if row.get("cell") is not None and pooled_cell(row) == cell]
            summary["per_cell"][cell] = set_metric_values(
                {name: array[chosen] for name, array in features.items()}, reference, [rows[i] for i in chosen],
                unavailable, provenance)
    return summary


def reference_images(folder: Path) -> list[Path]:
    """The images in `folder` (not below it), in a stable order.

    Raises:
        ConfigError: `folder` is not a folder, or holds no image (exit 2).

    Example:
        >>> reference_images(Path("no-such-folder"))
        Traceback (most recent call last):
        ...
        clipstyler_opt.core.errors.ConfigError: --reference-dir no-such-folder: not a folder
    """
    from clipstyler_opt.batch.discovery import scan_inputs

    if not Path(folder).is_dir():
        raise ConfigError(f"--reference-dir {folder}: not a folder")
    found = scan_inputs([str(folder)])
    if not found.inputs:
        raise ConfigError(f"--reference-dir {folder}: no image in it")
    return [item.path for item in found.inputs]


def format_set_metrics(block: Mapping[str, Any] | None) -> list[str]:
    """Table lines for eval.json's `set_metrics` ([] without one).

    Example:
        >>> block = {"reference": {"folder": "refs", "n": 3}, "overall": {
        ...     "fid": {"value": 12.5, "n_outputs": 4, "n_reference": 3},
        ...     "artfid": {"value": None, "n_outputs": 4, "n_reference": 3, "reason": "no weights"}}}
        >>> format_set_metrics(block)  # doctest: +NORMALIZE_WHITESPACE
        ['', 'set metrics against refs (3 images):', '  overall: fid 12.5 (4 vs 3); artfid n/a: no weights']
    """
    if not block:
        return []
    lines = ["", f"set metrics against {block['reference']['folder']} ({block['reference']['n']} images):"]
    groups = [("overall", block["overall"]), *((f"cell {cell}", values)
                                               for cell, values in block.get("per_cell", {}).items())]
    for label, values in groups:
        parts = [f"{name} {entry['value']:.4g} ({entry['n_outputs']} vs {entry['n_reference']})"
                 if entry["value"] is not None else f"{name} n/a: {entry.get('reason', '')}"
                 for name, entry in values.items()]
        lines.append(f"  {label}: {'; '.join(parts)}")
    return lines
