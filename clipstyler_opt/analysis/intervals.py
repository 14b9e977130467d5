"""The bootstrap over content images lives in `clipstyler_opt.stats.bootstrap`; this module keeps
the old names for the analysis modules."""

from __future__ import annotations

from clipstyler_opt.stats.bootstrap import CONFIDENCE, RESAMPLES, Interval, cluster_bootstrap

__all__ = ["CONFIDENCE", "RESAMPLES", "Interval", "cluster_bootstrap"]
