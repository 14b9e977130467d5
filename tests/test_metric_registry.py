"""The metric registry: every metric meets the contract and agrees with the README's table; a
metric declared but not wired is refused; a metric without values says why in the summary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from clipstyler_opt.evaluate import METRICS, MetricUnavailable, metrics, register_metric
from clipstyler_opt.evaluate.content import ssim
from clipstyler_opt.evaluate.registry import GROUPS, NEEDS, Metric, contract_problems
from clipstyler_opt.evaluate.setlevel import SET_METRICS
from clipstyler_opt.evaluate.table import format_summary
from clipstyler_opt.stats.means import mean_interval

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def readme_metric_table() -> dict[str, str]:
    """metric -> "higher"/"lower", read from the README's table under ### Metrics."""
    block = README[README.index("### Metrics"):README.index("**The scorer.**")]
    rows = re.findall(r"^\| `(\w+)` \| ([↑↓]) \|", block, re.M)
    return {name: "higher" if arrow == "↑" else "lower" for name, arrow in rows}


def test_every_metric_meets_the_contract_and_matches_the_readme() -> None:
    entries = metrics()
    assert [m.name for m in entries][:len(METRICS)] == list(METRICS)
    for metric in entries:
        assert contract_problems(metric) == [], metric.name
        assert metric.group in GROUPS and set(metric.needs) <= set(NEEDS)
    set_level = {m.name: m.direction for m in SET_METRICS}
    assert {m.name: m.direction for m in entries if m.name in METRICS} | set_level == readme_metric_table()


def test_a_declared_but_unwired_metric_is_refused_naming_what_is_missing() -> None:
    declared = Metric("sharpness", "up", "colour", ("a tripod",), None, "", "edges")  # type: ignore[arg-type]
    problems = contract_problems(declared)
    assert "compute is missing: the metric is declared but not wired" in problems
    assert "direction must be 'higher' or 'lower', not 'up'" in problems
    assert any(p.startswith("group must be one of") for p in problems)
    assert any("unknown requirements 'a tripod'" in p for p in problems)
    assert "unavailable_when is empty" in problems
    with pytest.raises(ValueError, match=r"'sharpness' is half-wired: .*declared but not wired"):
        register_metric(declared)
    wrong_signature = Metric("two_args", "higher", "content", ("content image",),
                             lambda sample, extra: 0.0, "never", "x")  # type: ignore[arg-type,misc]
    assert contract_problems(wrong_signature) == ["compute has the wrong signature (expected compute(sample) -> float)"]
    assert "sharpness" not in [m.name for m in metrics()]


def summary_of(values: dict[str, list[float]], cell: str | None = None) -> dict[str, object]:
    entries = {metric: mean_interval(v).to_dict() for metric, v in values.items()}
    summary: dict[str, object] = {"overall": entries, "per_prompt": {"p": entries}}
    if cell:
        summary["per_cell"] = {cell: entries, "a": entries}
    return summary


def test_the_summary_gives_the_reason_for_a_metric_without_values_and_pads_no_line_to_a_cell_id() -> None:
    rows = [{"unavailable": {"lpips": "no AlexNet weights", "gram_distance": "no style image"}},
            {"unavailable": {"lpips": "no AlexNet weights", "gram_distance": "flat"}},
            {"unavailable": {"lpips": "no AlexNet weights", "gram_distance": "no style image"}}]
    values = {metric: [0.5, 0.25] for metric in METRICS if metric not in ("lpips", "gram_distance")}
    lines = format_summary(summary_of(values), rows)
    lpips = next(line for line in lines if line.strip().startswith("lpips"))
    gram = next(line for line in lines if line.strip().startswith("gram_distance"))
    assert lpips.endswith("n/a: no AlexNet weights") and gram.endswith("n/a: no style image")
    assert not any(line.rstrip().endswith("n/a") for line in lines)
    plain = format_summary(summary_of(values, "short"), rows)
    long = format_summary(summary_of(values, "lambda_content=" + "9" * 80), rows)
    metric_lines = [line for line in plain if line.startswith("  ")]
    assert metric_lines and metric_lines == [line for line in long if line.startswith("  ")]


def test_ssim_of_an_image_of_5_px_or_less_is_unavailable_with_the_reason() -> None:
    for side in (1, 5):
        image = torch.rand(1, 3, side, side)
        with pytest.raises(MetricUnavailable, match=f"{side} px a side"):
            ssim(image, image)
    image = torch.rand(1, 3, 6, 6)
    assert ssim(image, image) == pytest.approx(1.0)


def test_one_content_image_is_shown_without_an_interval() -> None:
    """A mean over outputs of one content image has nothing to compare: the table says so instead
    of printing the mean twice as if it were an interval."""
    entry = {"mean": 0.25, "ci_low": 0.25, "ci_high": 0.25, "n": 3, "n_clusters": 1}
    (line,) = [line for line in format_summary({"overall": {"ssim": entry}}) if "ssim" in line]
    assert "no interval" in line and "[0.2500, 0.2500]" not in line and "n=3" in line
