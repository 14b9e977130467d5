"""The study's answers: repeat agreement with two participants counted by hand, inconsistent
answers refused with their line, Bradley–Terry fits that are not fits refused, and text fields
neutralised against spreadsheet formulas read back exactly."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from clipstyler_opt.cli import cli
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.report.analyze import analyze_answers
from clipstyler_opt.report.study import CSV_COLUMNS, escape_csv_field, unescape_csv_field
from clipstyler_opt.stats.pairs import bradley_terry

A, B, C = "lam-50", "lam-150", "lam-300"


def write_answers(path: Path, rows: list[dict[str, object]]) -> Path:
    """rows: the fields that differ from a plain first-showing style answer."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for trial, changes in enumerate(rows, start=1):
            row: dict[str, object] = {"study_id": "s1", "seed": 0, "participant": "ann", "trial": trial, "pair": "p1",
                                      "question": "style", "left_cell": A, "right_cell": B, "chosen_cell": A,
                                      "chosen_side": "", "is_repeat": 0, "is_attention_check": 0,
                                      "expected_cell": "", "response_ms": 800, **changes}
            writer.writerow([row[column] for column in CSV_COLUMNS])
    return path


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    z = 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


# --- 8. repeat agreement ---

def test_repeat_agreement_pairs_each_participants_repeat_with_their_own_first_answer(tmp_path: Path) -> None:
    """ann and bob see the same pairs. p1: ann A then A, bob B then B (both agree); p2: both B then
    C (both disagree). 2 of 4 agree. Matching a repeat with the other participant's first answer
    (either one's) would give 1 of 4."""
    ann = write_answers(tmp_path / "ann.csv", [
        {"pair": "p1", "chosen_cell": A},
        {"pair": "p2", "left_cell": B, "right_cell": C, "chosen_cell": B},
        {"pair": "p1", "left_cell": B, "right_cell": A, "chosen_cell": A, "is_repeat": 1},
        {"pair": "p2", "left_cell": C, "right_cell": B, "chosen_cell": C, "is_repeat": 1},
    ])
    bob = write_answers(tmp_path / "bob.csv", [
        {"participant": "bob", "pair": "p1", "chosen_cell": B},
        {"participant": "bob", "pair": "p2", "left_cell": B, "right_cell": C, "chosen_cell": B},
        {"participant": "bob", "pair": "p1", "left_cell": B, "right_cell": A, "chosen_cell": B, "is_repeat": 1},
        {"participant": "bob", "pair": "p2", "left_cell": C, "right_cell": B, "chosen_cell": C, "is_repeat": 1},
        {"participant": "bob", "pair": "p3", "question": "content", "chosen_cell": A, "is_repeat": 1},  # no first
    ])
    for files in ([ann, bob], [bob, ann]):
        result = analyze_answers(files)
        assert (result.repeat_agree, result.repeat_total) == (2, 4)
        assert result.repeat_ci == pytest.approx(wilson_by_hand(2, 4))
    # Repeats never count twice: the style question saw 4 first showings (p1 twice, p2 twice).
    (style,) = [q for q in result.questions if q.question == "style"]
    assert style.answers == 4
    assert {c.cell: c.wins for c in style.cells} == {A: 1, B: 3, C: 0}


# --- 10. inconsistent answers ---

@pytest.mark.parametrize("changes, message", [
    ({"left_cell": A, "right_cell": A, "chosen_cell": A}, "compared with itself"),
    ({"question": "colour"}, "unknown question 'colour'"),
    ({"question": "Style"}, "unknown question 'Style'"),
    ({"response_ms": "nan"}, "response_ms must be a finite"),
    ({"response_ms": "inf"}, "response_ms must be a finite"),
    ({"response_ms": "-Infinity"}, "response_ms must be a finite"),
    ({"response_ms": "-5"}, ">= 0"),
])
def test_inconsistent_answers_are_refused_with_their_line(tmp_path: Path, changes: dict[str, object],
                                                          message: str) -> None:
    path = write_answers(tmp_path / "a.csv", [{}, {"pair": "p2", **changes}, {"pair": "p3"}])
    with pytest.raises(ConfigError, match=message) as error:
        analyze_answers([path])
    assert f"{path}:3:" in str(error.value)  # the header is line 1
    result = CliRunner().invoke(cli, ["study", "analyze", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert "a.csv:3: " in result.output


def test_bradley_terry_without_a_prior_refuses_data_that_has_no_finite_fit() -> None:
    """prior=0: a cell that never lost (or never won) has no finite maximum-likelihood strength."""
    with pytest.raises(ValueError, match="no finite fit"):
        bradley_terry(np.array([[0, 5, 0], [0, 0, 2], [0, 1, 0]]), prior=0)  # the first never lost
    with pytest.raises(ValueError, match="no finite fit"):
        bradley_terry(np.array([[0, 4], [0, 0]]), prior=0)
    # Every cell won and lost within its group: the fit exists; p1/p2 = 3 (by the two-item likelihood).
    fit = bradley_terry(np.array([[0, 3, 0, 0], [1, 0, 0, 0], [0, 0, 0, 2], [0, 0, 2, 0]]), prior=0)
    assert fit[0] / fit[1] == pytest.approx(3) and fit[2] == pytest.approx(fit[3])


def test_bradley_terry_that_has_not_converged_raises() -> None:
    wins = np.array([[0, 9, 1], [1, 0, 9], [9, 1, 0]])
    assert bradley_terry(wins).sum() == pytest.approx(1)  # the default iterations converge
    with pytest.raises(ValueError, match="did not converge"):
        bradley_terry(np.array([[0, 9, 1], [2, 0, 9], [5, 1, 0]]), max_iterations=2)


# --- 11. formula neutralisation, read back exactly ---

@pytest.mark.parametrize("text, written", [
    ("=1+2", "'=1+2"), ("+1", "'+1"), ("-starry", "'-starry"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("'quoted", "''quoted"), ("ann", "ann"), ("a=b", "a=b"), ("", ""),
])
def test_csv_text_fields_are_neutralised_and_read_back(text: str, written: str) -> None:
    assert escape_csv_field(text) == written
    assert unescape_csv_field(written) == text


def test_analysis_reads_neutralised_participants_and_cells_as_typed(tmp_path: Path) -> None:
    """A file as the study page writes it: every text field starting with a formula character
    carries a leading quote; the analysis names the participant and the cells without it."""
    path = write_answers(tmp_path / "a.csv", [
        {"participant": "'=evil", "left_cell": "'-neg", "right_cell": B, "chosen_cell": "'-neg"},
        {"participant": "'=evil", "pair": "a1", "left_cell": "'-neg", "right_cell": "attention:grey",
         "chosen_cell": "attention:grey", "is_attention_check": 1, "expected_cell": "'-neg"},
    ])
    result = analyze_answers([path])
    assert result.excluded == {"=evil": "failed 1 of 1 attention checks"}
    result = analyze_answers([path], max_attention_failures=1)
    assert [c.cell for c in result.questions[0].cells] == ["-neg", B]
