"""Means with 95% intervals, overall, per prompt and per cell (the statistics are `clipstyler_opt.stats`).

The interval is the t-interval with a cluster-robust standard error, the clusters being the
content images: the outputs of one content image (its replicates by seed, and in `overall` its
outputs under every prompt) are not independent, so they count as one cluster, and the degrees of
freedom are the number of content images less one. With one content image there is no interval:
it is [mean, mean] and the entry says so.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from clipstyler_opt.core.replicates import pooled_cell_id
from clipstyler_opt.stats.bootstrap import RESAMPLES
from clipstyler_opt.stats.means import CONFIDENCE, SINGLE_NOTE, MeanInterval, mean_interval

__all__ = ["CONFIDENCE", "RESAMPLES", "SEED", "SINGLE_NOTE", "MeanInterval", "pooled_cell",
           "scorer_summary", "summarise"]

SEED = 0


def _cluster(row: Mapping[str, Any], position: int) -> str:
    content = row.get("content")
    return f"content:{content}" if content else f"row:{position}"  # a row without a content image stands alone


def pooled_cell(row: Mapping[str, Any]) -> str:
    """An eval.json row's cell with its replicates pooled (`core.replicates.pooled_cell_id`, the
    seed read from the row's `settings`, the labels from its `setting_labels`): the key of its
    `per_cell` entry.

    Example:
        >>> pooled_cell({"cell": "lambda_content=50,seed=1", "settings": {"lambda_content": 50, "seed": 1}})
        'lambda_content=50'
    """
    settings, labels = row.get("settings"), row.get("setting_labels")
    return pooled_cell_id(str(row["cell"]), settings.items() if isinstance(settings, dict) else (),
                          labels if isinstance(labels, dict) else None)


def _means(rows: Iterable[Mapping[str, Any]], metrics: Sequence[str]) -> dict[str, dict[str, Any]]:
    rows = list(rows)
    summary = {}
    for metric in metrics:
        values, clusters = [], []
        for position, row in enumerate(rows):
            value = row["metrics"].get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                values.append(float(value))
                clusters.append(_cluster(row, position))
        if values:
            summary[metric] = mean_interval(values, clusters).to_dict()
    return summary


def _grouped(rows: Sequence[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], Any],
             metrics: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[str(key(row))].append(row)
    return {name: _means(members, metrics) for name, members in groups.items()}


def summarise(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> dict[str, Any]:
    """{"overall": {metric: interval}, "per_prompt": {prompt: {...}}}, plus "per_cell" when the
    rows come from more than one cell, where cells that differ only in a replicate setting (the
    seed, read from each row's `settings`) are one, keyed by `core.replicates.pooled_cell_id`.
    Metrics without a value are left out of a group.

    Example:
        >>> rows = [{"prompt": "p", "content": c, "metrics": {"ssim": v}} for c, v in [("a", 0.2), ("b", 0.4)]]
        >>> entry = summarise(rows, ["ssim"])["overall"]["ssim"]
        >>> round(entry["mean"], 3), entry["n"], entry["n_clusters"]
        (0.3, 2, 2)
    """
    summary: dict[str, Any] = {"overall": _means(rows, metrics),
                               "per_prompt": _grouped(rows, lambda row: row["prompt"], metrics)}
    cells = {pooled_cell(row) for row in rows if row.get("cell") is not None}
    if len(cells) > 1:
        summary["per_cell"] = _grouped([row for row in rows if row.get("cell") is not None], pooled_cell, metrics)
    return summary


def scorer_summary(rows: Sequence[Mapping[str, Any]], label: str, metrics: Sequence[str]) -> dict[str, Any]:
    """`summarise` of one scorer's values (each row's `scores[label]`), and under "parts" the same
    for each part of the prompts, over the rows that have that part.

    Example:
        >>> rows = [{"prompt": "a | b", "content": c, "scores": {"S": {"metrics": {"clip_score": v},
        ...          "parts": [{"text": "a", "weight": 0.5, "metrics": {"clip_score": v / 2}}]}}}
        ...         for c, v in [("x", 0.2), ("y", 0.4)]]
        >>> summary = scorer_summary(rows, "S", ["clip_score"])
        >>> part = summary["parts"]["a"]["overall"]["clip_score"]
        >>> round(summary["overall"]["clip_score"]["mean"], 3), round(part["mean"], 3), part["n"]
        (0.3, 0.15, 2)
    """
    def own(row: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
        return {"prompt": row["prompt"], "cell": row.get("cell"), "settings": row.get("settings"),
                "setting_labels": row.get("setting_labels"), "content": row.get("content"), "metrics": values}

    summary = summarise([own(row, row["scores"][label]["metrics"]) for row in rows], metrics)
    parts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        for part in row["scores"][label]["parts"]:
            parts[part["text"]].append(own(row, part["metrics"]))
    if parts:
        summary["parts"] = {text: summarise(members, metrics) for text, members in parts.items()}
    return summary
