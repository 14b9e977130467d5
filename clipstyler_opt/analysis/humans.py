"""Probe 6, humans against metrics: which metric predicts the people?

`clipopt study analyze --json STUDY.json` gives, per question, each cell's Bradley–Terry strength
(read by `report.study_file.read_study`, the one reader of that file).
For every metric (each `eval.json` metric, and each scorer's own cos(ΔI, ΔT_prompt)), the cells'
mean values are set against those strengths with Kendall's τ-b over the cells.

Conventions:
- τ is oriented so that +1 means the metric orders the cells as the people did: a metric where
  lower is better (e.g. `content_loss`) is negated first.
- A cell's mean is over its outputs; the interval is a BCa bootstrap over content images
  (the metric's cell means are recomputed from resampled images), with the strengths held fixed:
  it shows how much the metric's verdict depends on which images were shown, not the participants'
  own variation (that is in the study's strength intervals).
- A question needs 3 or more cells with finite strengths; with fewer, τ says nothing and the
  question is skipped with the reason.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clipstyler_opt.analysis.fits import Skipped
from clipstyler_opt.analysis.ranks import kendall_tau_b
from clipstyler_opt.report.study_file import StudyStrengths, read_study
from clipstyler_opt.stats.bootstrap import cluster_bootstrap

__all__ = ["MIN_CELLS", "StudyStrengths", "human_probe", "read_study"]

MIN_CELLS = 3


@dataclass(frozen=True)
class MetricValues:
    """One metric's value per output, with each output's cell and content image."""

    name: str
    higher_is_better: bool
    values: Sequence[tuple[str, str, float]]  # (cell id, content image id, value), finite values only


def _cell_means(points: Sequence[tuple[str, str, float]]) -> dict[str, float]:
    sums: dict[str, list[float]] = defaultdict(list)
    for cell, _, value in points:
        sums[cell].append(value)
    return {cell: sum(v) / len(v) for cell, v in sums.items()}


def _one_metric(strengths: Mapping[str, float], metric: MetricValues, seed: int) -> dict[str, Any]:
    sign = 1.0 if metric.higher_is_better else -1.0
    cells = sorted(c for c, s in strengths.items() if math.isfinite(s))
    by_content: dict[str, list[tuple[str, str, float]]] = defaultdict(list)
    for point in metric.values:
        if point[0] in cells:
            by_content[point[1]].append(point)

    def tau(clusters: list[list[tuple[str, str, float]]]) -> float | None:
        means = _cell_means([p for cluster in clusters for p in cluster])
        shared = [c for c in cells if c in means]
        if len(shared) < MIN_CELLS:
            return None
        return kendall_tau_b([strengths[c] for c in shared], [sign * means[c] for c in shared])

    interval = cluster_bootstrap(list(by_content.values()), tau, seed=seed)
    n_cells = len([c for c in cells if c in _cell_means(list(metric.values))])
    if interval is None:
        return Skipped(f"{n_cells} cell(s) with both a strength and a value of {metric.name}, or a constant "
                       f"value; τ needs {MIN_CELLS} or more cells that differ").to_dict()
    return {"tau": interval.to_dict(), "n_cells": n_cells, "n_outputs": len(metric.values),
            "oriented": "higher is better" if metric.higher_is_better else "negated: lower is better"}


def human_probe(study: StudyStrengths, metrics: Sequence[MetricValues], *, seed: int = 0
                ) -> dict[str, Any] | Skipped:
    """Kendall's τ-b, per question and metric, between the cells' strengths and metric means.

    Example:
        >>> study = StudyStrengths("s.json", {"style": {"a": 0.5, "b": 0.3, "c": 0.2}})
        >>> points = [("a", "x.png", 3.0), ("b", "x.png", 2.0), ("c", "x.png", 1.0)]
        >>> human_probe(study, [MetricValues("m", True, points)])["questions"]["style"]["m"]["tau"]["estimate"]
        1.0
    """
    if not metrics:
        return Skipped("no metric to compare with: run clipopt eval on the folder first, or give a scorer")
    questions: dict[str, Any] = {}
    for question, strengths in sorted(study.questions.items()):
        finite = [c for c, s in strengths.items() if math.isfinite(s)]
        if len(finite) < MIN_CELLS:
            questions[question] = Skipped(f"{len(finite)} cell(s) with a finite Bradley–Terry strength; "
                                          f"τ needs {MIN_CELLS} or more").to_dict()
            continue
        questions[question] = {m.name: _one_metric(strengths, m, seed) for m in metrics}
    return {"study": study.source, "questions": questions,
            "computed_from": "Kendall's τ-b over cells between Bradley–Terry strengths and metric cell means; "
                             "interval: bootstrap over content images, strengths held fixed"}
