"""Objective metrics of stylised outputs, scored by a backbone independent of the optimisers.

`registry` declares the metrics (name, direction, group, needs, compute, when unavailable);
`style`, `content`, `gram` and `perceptual` compute them (reusing the project's losses, crops,
text embeddings and VGG19); `scorer` picks the scoring backbone; `targets` finds what to
evaluate; `evaluate` drives it; `stats` summarises with t-intervals clustered by content image; `table` shows
and writes the results.
"""

from __future__ import annotations

from clipstyler_opt.evaluate.evaluate import EvalOptions, EvalReport, EvalRow, Evaluator, evaluate_targets
from clipstyler_opt.evaluate.names import MetricUnavailable
from clipstyler_opt.evaluate.registry import DIRECTIONS, METRICS, Metric, metrics, register_metric
from clipstyler_opt.evaluate.scorer import DEFAULT_SCORERS, choose_scorer
from clipstyler_opt.evaluate.stats import MeanInterval, summarise
from clipstyler_opt.evaluate.style import PatchProtocol, StyleScorer
from clipstyler_opt.evaluate.targets import EvalTarget, Overrides, collect_targets

__all__ = [
           "DEFAULT_SCORERS",
           "DIRECTIONS",
           "METRICS",
           "EvalOptions",
           "EvalReport",
           "EvalRow",
           "EvalTarget",
           "Evaluator",
           "MeanInterval",
           "Metric",
           "MetricUnavailable",
           "Overrides",
           "PatchProtocol",
           "StyleScorer",
           "choose_scorer",
           "collect_targets",
           "evaluate_targets",
           "metrics",
           "register_metric",
           "summarise",
]
