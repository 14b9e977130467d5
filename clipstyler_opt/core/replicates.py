"""Replicates: the settings whose cells repeat a run rather than change it (today the seed).

Cells that differ only in a replicate setting are one cell for every summary: the report's rows,
colours and series and `eval`'s `per_cell` intervals pool their outputs, and `analyze` never
takes them for a setting along which the outputs respond. The interval of such a pooled cell
stays clustered by content image, so one image's seeds share a cluster. Per-output records
(sidecars, eval.json rows) keep their own cell id and seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from clipstyler_opt.core.labels import short_label

__all__ = ["POOLED_DEFAULT", "REPLICATE_SETTINGS", "pooled_cell_id"]

REPLICATE_SETTINGS = ("seed",)  # cells that repeat a run, not a setting along which it responds
POOLED_DEFAULT = "default"  # the id of a cell that varied nothing but replicate settings


def pooled_cell_id(cell_id: str, values: Iterable[tuple[str, Any]], labels: Mapping[str, str] | None = None) -> str:
    """The id of the cell that pools `cell_id`'s replicates: `cell_id` itself when its values
    hold no replicate setting, else `setting=label,...` over the other values (each its label
    in `labels`, else its short form: never an absolute path; labels of one setting never
    collide, core/labels.py), or `POOLED_DEFAULT` when nothing else varies.

    Example:
        >>> pooled_cell_id("lambda_content=50,seed=1", [("lambda_content", 50.0), ("seed", 1)])
        'lambda_content=50'
        >>> pooled_cell_id("a", [("lambda_content", 50.0)]), pooled_cell_id("seed=1", [("seed", 1)])
        ('a', 'default')
    """
    pairs, named = list(values), dict(labels or {})
    kept = [(key, value) for key, value in pairs if key not in REPLICATE_SETTINGS]
    if len(kept) == len(pairs):
        return cell_id
    if not kept:
        return POOLED_DEFAULT
    return ",".join(f"{key}={named.get(key) or short_label(value, key)}" for key, value in kept)
