"""Objective metrics of stylised outputs, scored by a backbone independent of the optimisers.

`names` lists the metrics and their directions; `style`, `content`, `gram` and `perceptual`
compute them (reusing the project's losses, crops, text embeddings and VGG19); `scorer` picks the
scoring backbone; `targets` finds what to evaluate; `evaluate` drives it; `stats` summarises
with bootstrap intervals; `table` shows and writes the results.
"""

from __future__ import annotations

from clipstyler_opt.evaluate.evaluate import EvalOptions, EvalReport, EvalRow, Evaluator, evaluate_targets
from clipstyler_opt.evaluate.names import DIRECTIONS, METRICS, MetricUnavailable
from clipstyler_opt.evaluate.scorer import DEFAULT_SCORERS, choose_scorer
from clipstyler_opt.evaluate.stats import MeanInterval, bootstrap_mean, summarise
from clipstyler_opt.evaluate.style import PatchProtocol, StyleScorer
from clipstyler_opt.evaluate.targets import EvalTarget, Overrides, collect_targets

__all__ = ["EvalOptions", "EvalReport", "EvalRow", "Evaluator", "evaluate_targets", "DIRECTIONS", "METRICS",
           "MetricUnavailable", "DEFAULT_SCORERS", "choose_scorer", "MeanInterval", "bootstrap_mean", "summarise",
           "PatchProtocol", "StyleScorer", "EvalTarget", "Overrides", "collect_targets"]
