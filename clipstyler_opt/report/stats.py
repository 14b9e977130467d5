"""The study's statistics live in `clipstyler_opt.stats`; this module keeps the old names."""

from __future__ import annotations

from clipstyler_opt.stats.binomial import Z_95, wilson_interval
from clipstyler_opt.stats.pairs import bradley_terry, connected_components

__all__ = ["Z_95", "bradley_terry", "connected_components", "wilson_interval"]
