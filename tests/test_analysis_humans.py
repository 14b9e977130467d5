"""Probe 6, humans against metrics: Kendall's τ-b between the people's Bradley–Terry strengths and
each metric's cell means, checked against scipy; the study file's checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from clipstyler_opt.analysis.humans import MetricValues, StudyStrengths, human_probe, read_study
from clipstyler_opt.core.errors import ConfigError

CELLS = ["a", "b", "c", "d", "e"]


def _points(means: dict[str, float], contents: int = 4, seed: int = 0) -> list[tuple[str, str, float]]:
    rng = np.random.default_rng(seed)
    return [(cell, f"img{i}.png", mean + float(rng.normal(0, 0.01))) for cell, mean in means.items()
            for i in range(contents)]


def test_tau_matches_scipy_on_the_cell_means() -> None:
    strengths = {"a": 0.4, "b": 0.25, "c": 0.2, "d": 0.1, "e": 0.05}
    points = _points({"a": 0.9, "b": 0.5, "c": 0.7, "d": 0.2, "e": 0.1})
    result = human_probe(StudyStrengths("s.json", {"style": strengths}), [MetricValues("clip", True, points)])
    assert isinstance(result, dict)
    row = result["questions"]["style"]["clip"]
    means = {c: np.mean([v for cell, _, v in points if cell == c]) for c in CELLS}
    expected = stats.kendalltau([strengths[c] for c in CELLS], [means[c] for c in CELLS]).statistic
    assert row["tau"]["estimate"] == pytest.approx(expected)
    assert row["n_cells"] == 5 and row["n_outputs"] == 20
    assert row["tau"]["ci_low"] <= row["tau"]["estimate"] <= row["tau"]["ci_high"]
    assert row["tau"]["n_clusters"] == 4


def test_a_lower_is_better_metric_is_negated_so_agreement_is_positive() -> None:
    strengths = {"a": 0.5, "b": 0.3, "c": 0.2}
    loss = _points({"a": 0.1, "b": 0.2, "c": 0.3})  # the best cell has the lowest loss
    result = human_probe(StudyStrengths("s.json", {"q": strengths}), [MetricValues("loss", False, loss)])
    assert isinstance(result, dict)
    assert result["questions"]["q"]["loss"]["tau"]["estimate"] == pytest.approx(1.0)
    assert result["questions"]["q"]["loss"]["oriented"].startswith("negated")


def test_fewer_than_three_cells_with_strengths_is_skipped_with_the_reason() -> None:
    study = StudyStrengths("s.json", {"q": {"a": 0.6, "b": 0.4, "c": float("nan")}})
    result = human_probe(study, [MetricValues("m", True, _points({"a": 1.0, "b": 0.0, "c": 0.5}))])
    assert isinstance(result, dict)
    assert "2 cell(s)" in result["questions"]["q"]["skipped"]


def test_a_constant_metric_is_skipped_not_nan() -> None:
    study = StudyStrengths("s.json", {"q": {"a": 0.5, "b": 0.3, "c": 0.2}})
    flat = [(c, "x.png", 1.0) for c in "abc"]
    row = human_probe(study, [MetricValues("m", True, flat)])["questions"]["q"]["m"]  # type: ignore[index]
    assert "skipped" in row and "nan" not in json.dumps(row).lower()


def _study_file(tmp_path: Path, cells: dict[str, float | None]) -> Path:
    path = tmp_path / "study.json"
    path.write_text(json.dumps({"questions": [{"question": "style", "cells": [
        {"cell": c, "bradley_terry": s} for c, s in cells.items()]}]}))
    return path


def test_read_study_refuses_a_cell_the_folder_does_not_have(tmp_path: Path) -> None:
    path = _study_file(tmp_path, {"a": 0.5, "zz": 0.5})
    with pytest.raises(ConfigError, match="'zz' is not a cell of this folder"):
        read_study(path, ["a", "b"])
    assert read_study(_study_file(tmp_path, {"a": 0.5, "b": None}), ["a", "b"]).questions["style"]["a"] == 0.5


@pytest.mark.parametrize("text", ["not json", "[]", '{"questions": [{"question": 1}]}',
                                  '{"questions": [{"question": "q", "cells": [{"cell": "a", "bradley_terry": "x"}]}]}'])
def test_read_study_refuses_forged_files_with_one_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "study.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        read_study(path, ["a"])
    assert "\n" not in str(caught.value)
