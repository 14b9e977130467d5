"""The statistics that eval, analyze, report and study share (numpy only; no torch, no Pillow).

`means` gives means with cluster-robust t-intervals (clusters: content images; a content image's
replicates by seed stay in its cluster); `bootstrap` the bootstrap over whole clusters (content
images, participants) with BCa or percentile limits; `binomial` Wilson intervals, the exact
binomial test and Holm's correction; `pairs` Bradley–Terry strengths; `agreement` Krippendorff's α.
"""

from __future__ import annotations

from clipstyler_opt.stats.agreement import krippendorff_alpha
from clipstyler_opt.stats.binomial import Z_95, binomial_test, holm, wilson_interval
from clipstyler_opt.stats.bootstrap import (
    Interval,
    bootstrap_limits,
    cluster_bootstrap,
    jackknife_values,
    resampled_values,
)
from clipstyler_opt.stats.means import MeanInterval, mean_interval, t_cdf, t_quantile
from clipstyler_opt.stats.pairs import bradley_terry, bradley_terry_many, connected_components, resampled_strengths

__all__ = [
    "Z_95",
    "Interval",
    "MeanInterval",
    "binomial_test",
    "bootstrap_limits",
    "bradley_terry",
    "bradley_terry_many",
    "cluster_bootstrap",
    "connected_components",
    "holm",
    "jackknife_values",
    "krippendorff_alpha",
    "mean_interval",
    "resampled_strengths",
    "resampled_values",
    "t_cdf",
    "t_quantile",
    "wilson_interval",
]
