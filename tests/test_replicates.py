"""Seeds are replicates: cells that differ only in the seed are one cell in the report's table and
colours and in eval's per-cell summary; its interval is clustered by content image.

The expected numbers are worked out here by hand (cluster-robust variance, Student t from scipy).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from scipy.stats import t as student_t

from clipstyler_opt.evaluate.stats import scorer_summary
from clipstyler_opt.report.charts import colours_of
from clipstyler_opt.report.evaluation import Evaluation
from clipstyler_opt.report.load import Cell, ResultFolder, RunOutput
from clipstyler_opt.report.tables import metrics_table

# (lambda_content, seed, content image) -> ssim; two seeds x two content images per lambda
VALUES = {(50, 0, "a.png"): 0.2, (50, 1, "a.png"): 0.4, (50, 0, "b.png"): 0.6, (50, 1, "b.png"): 1.0,
          (100, 0, "a.png"): 0.1, (100, 1, "a.png"): 0.5, (100, 0, "b.png"): 0.3, (100, 1, "b.png"): 0.2}


def _by_hand(lam: int) -> tuple[float, float, float]:
    """Mean and 95% t-interval with the two content images as the clusters (n = 4, G = 2)."""
    mine = {(content, seed): v for (la, seed, content), v in VALUES.items() if la == lam}
    n, groups = len(mine), 2
    mean = sum(mine.values()) / n
    sums = [sum(v - mean for (content, _), v in mine.items() if content == c) for c in ("a.png", "b.png")]
    variance = groups / (groups - 1) * sum(s * s for s in sums) / n ** 2
    half = student_t.ppf(0.975, groups - 1) * math.sqrt(variance)
    return mean, mean - half, mean + half


def _name(lam: int, seed: int, content: str) -> str:
    return f"lambda_content={lam},seed={seed}/{content}"


@pytest.fixture(scope="module")
def folder() -> ResultFolder:
    outputs, cells = [], []
    for lam, seed, content in VALUES:
        cell = Cell(f"lambda_content={lam},seed={seed}", (("lambda_content", lam), ("seed", seed)))
        cells.append(cell)
        outputs.append(RunOutput(image=Path("/r") / _name(lam, seed, content), relative=_name(lam, seed, content),
                                 content=Path("/c") / content, prompt="fire", seed=seed, settings={}, losses={},
                                 history=(), cell=cell))
    evaluation = Evaluation(("ssim",), {"ssim": "higher"}, {_name(*key): {"ssim": v} for key, v in VALUES.items()})
    return ResultFolder(Path("/r"), tuple(outputs), tuple(dict.fromkeys(cells)), evaluation)


def test_report_table_pools_seeds_with_content_clusters(folder: ResultFolder) -> None:
    table = metrics_table(folder)
    assert table is not None and table.columns == ["prompt", "cell", "lambda_content", "n", "ssim"]
    assert [row[:4] for row in table.rows] == [["fire", "lambda_content=50", "50", 4],
                                               ["fire", "lambda_content=100", "100", 4]]
    for row, lam in zip(table.rows, (50, 100), strict=True):
        estimate = row[4]
        assert (estimate.mean, estimate.low, estimate.high) == pytest.approx(_by_hand(lam), abs=1e-9)
        assert estimate.n == 4
    assert list(colours_of(folder)) == ["lambda_content=50", "lambda_content=100"]  # one colour per pooled cell


def test_eval_per_cell_pools_seeds_and_rows_keep_their_cell() -> None:
    rows = [{"output": _name(lam, seed, content), "prompt": "fire", "content": content,
             "cell": f"lambda_content={lam},seed={seed}", "settings": {"lambda_content": lam, "seed": seed},
             "setting_labels": {"lambda_content": f"L{lam}", "seed": str(seed)},
             "scores": {"S": {"metrics": {"ssim": v}, "parts": []}}} for (lam, seed, content), v in VALUES.items()]
    per_cell = scorer_summary(rows, "S", ["ssim"])["per_cell"]
    assert sorted(per_cell) == ["lambda_content=L100", "lambda_content=L50"]  # named by the labels
    for lam in (50, 100):
        entry = per_cell[f"lambda_content=L{lam}"]["ssim"]
        assert (entry["n"], entry["n_clusters"]) == (4, 2)
        assert (entry["mean"], entry["ci_low"], entry["ci_high"]) == pytest.approx(_by_hand(lam), abs=1e-9)
    assert rows[1]["cell"] == "lambda_content=50,seed=1"  # the per-output row keeps its own cell


def test_set_metrics_per_cell_pool_seeds() -> None:
    """FID per cell counts every seed's outputs of the cell (n_outputs = 4, not 2 per seed cell)."""
    import numpy as np

    from clipstyler_opt.evaluate.setlevel import set_summary

    rows = [{"cell": f"lambda_content={lam},seed={seed}", "settings": {"lambda_content": lam, "seed": seed},
             "metrics": {}} for lam, seed, _ in VALUES]
    features = np.arange(2.0 * len(rows)).reshape(len(rows), 2) % 5
    summary = set_summary(rows, {"fid": features, "art": features}, {"fid": features, "art": features}, {}, {})
    assert {cell: values["fid"]["n_outputs"] for cell, values in summary["per_cell"].items()} == \
        {"lambda_content=50": 4, "lambda_content=100": 4}
