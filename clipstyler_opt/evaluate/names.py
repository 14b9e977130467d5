"""`MetricUnavailable`: why a metric has no value for an output (the metrics themselves are
entries of `evaluate/registry.py`)."""

from __future__ import annotations

__all__ = ["MetricUnavailable"]


class MetricUnavailable(Exception):
    """A metric cannot be computed for this output; the message says why (it is recorded, never dropped)."""
