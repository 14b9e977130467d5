"""The report's "Study" section (`report --study`, the file of `study analyze --json`) and its
"Set metrics" table (eval.json's `set_metrics`): the numbers of the files, by cell label."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from clipstyler_opt.cli import cli
from clipstyler_opt.report.analyze import analyze
from clipstyler_opt.report.answers import Answer
from tests.test_report import PLAIN_PROMPT, make_result_folder

LABELS = {"c50": "lambda_content=50", "c300": "lambda_content=300"}


def _study(cells: tuple[str, str] = ("c50", "c300")) -> dict[str, Any]:
    first, second = cells
    return {
        "files": 2, "study_ids": ["s1"], "participants": 4, "excluded": {"<mallory>": "failed 2 of 2 attention checks"},
        "min_ms": 500, "exclude_fast": True, "fast_answers": 3, "fast_by_participant": {"ann": 2, "bob": 1},
        "repeat_agree": 3, "repeat_total": 4, "repeat_ci": [0.3006, 0.9544], "resamples": 200,
        "questions": [{
            "question": "style", "answers": 8, "median_response_ms": 1234.0, "comparison_groups": 1,
            "agreement_alpha": 0.4167, "agreement_units": 5,
            "cells": [
                {"cell": first, "comparisons": 8, "wins": 5.5, "rate": 0.6875, "ci_low": 0.3874, "ci_high": 0.8786,
                 "bradley_terry": 0.6667, "bt_ci_low": 0.5123, "bt_ci_high": 0.8456},
                {"cell": second, "comparisons": 8, "wins": 2.5, "rate": 0.3125, "ci_low": 0.1216, "ci_high": 0.6126,
                 "bradley_terry": 0.3333, "bt_ci_low": None, "bt_ci_high": None}],
            "pairs": [{"cell_a": second, "cell_b": first, "a_wins": 2, "b_wins": 5, "ties": 1,
                       "p_value": 0.4531, "p_holm": 0.9062}]}]}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_result_folder(tmp_path_factory.mktemp("study"), sweep=True, prompts=(PLAIN_PROMPT,),
                              contents=("a.png",), history=False)
    document = json.loads((root / "eval.json").read_text())
    document["set_metrics"] = {
        "reference": {"folder": str(root.parent / "paintings"), "n": 5}, "min_images": 2,
        "directions": {"fid": "lower", "artfid": "lower"},
        "overall": {"fid": {"value": 123.456, "n_outputs": 2, "n_reference": 5, "implementation": "pytorch-fid 0.3.0",
                            "network": "pytorch-fid InceptionV3"},
                    "artfid": {"value": None, "n_outputs": 2, "n_reference": 5, "reason": "no <art> weights"}},
        "per_cell": {"c50": {"fid": {"value": None, "n_outputs": 1, "n_reference": 5,
                                     "reason": "needs at least 2 images on each side, has 1"}}}}
    (root / "eval.json").write_text(json.dumps(document))
    return root


def _rows(page: str) -> list[list[str]]:
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in re.findall(r"<tr>(.*?)</tr>", page)]


def _report(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["report", str(root), "-o", str(root.parent / "r.html"), *args])
    return result.exit_code, result.output


def test_the_study_section_shows_the_files_numbers_by_cell_label(folder: Path) -> None:
    study = folder.parent / "study.json"
    study.write_text(json.dumps(_study()))
    code, output = _report(folder, "--study", str(study))
    assert code == 0, output
    page = (folder.parent / "r.html").read_text(encoding="utf-8")
    section = page[page.index('<h2 id="study">'):]
    rows = _rows(section)
    assert ["lambda_content=50", "8", "5.5", "0.688", "[0.387, 0.879]", "0.667", "[0.512, 0.846]"] in rows
    assert ["lambda_content=300", "8", "2.5", "0.312", "[0.122, 0.613]", "0.333", "n/a"] in rows
    assert ["lambda_content=300", "lambda_content=50", "2", "5", "1", "0.4531", "0.9062"] in rows
    assert "Krippendorff's α = 0.417 over 5 pair(s)" in section
    assert "4 participant(s), 3 analysed." in section
    assert "Excluded &lt;mallory&gt;: failed 2 of 2 attention checks." in section  # escaped
    assert "3 answer(s) faster than 500 ms, left out: ann 2, bob 1." in section
    assert "Repeat agreement: 3/4 = 0.75 [0.301, 0.954]." in section
    assert "median response 1234 ms" in section and '<a href="#study">Study</a>' in page
    assert ">c50<" not in section and str(folder.parent) not in page  # labels, never ids or paths


def test_a_study_analyze_document_reads_back_whole(folder: Path) -> None:
    """What `study analyze --json` writes (StudyAnalysis.to_dict) is what the report reads."""
    answers = [Answer("s", who, 1, f"p{i}", "style", "c50", "c300", "c50" if i < 2 else "c300", False, False, "",
                      900.0) for who in ("ann", "bob") for i in range(3)]
    study = folder.parent / "analysed.json"
    study.write_text(json.dumps(analyze(answers, resamples=50).to_dict()))
    code, output = _report(folder, "--study", str(study))
    assert code == 0, output
    rows = _rows((folder.parent / "r.html").read_text(encoding="utf-8"))
    # 4 of 6 answers chose c50 (the hand count); the pair test is exact binomial, 4 of 6: p = 0.6875
    assert any(row[:4] == ["lambda_content=50", "6", "4", "0.667"] for row in rows)
    assert any(row[:5] == ["lambda_content=300", "lambda_content=50", "2", "4", "0"] and row[5] == "0.6875"
               for row in rows)


def test_a_study_of_another_folder_is_one_line_and_exit_2(folder: Path) -> None:
    foreign = folder.parent / "foreign.json"
    foreign.write_text(json.dumps(_study(("c50", "c999"))))
    (folder.parent / "r.html").unlink(missing_ok=True)
    code, output = _report(folder, "--study", str(foreign))
    assert code == 2 and output.count("\n") == 1 and "'c999' is not a cell of this folder" in output
    assert not (folder.parent / "r.html").exists()


def test_the_report_never_writes_over_the_study_file(folder: Path) -> None:
    study = folder.parent / "kept.json"
    study.write_text(json.dumps(_study()))
    before = study.read_bytes()
    result = CliRunner().invoke(cli, ["report", str(folder), "--study", str(study), "-o", str(study)])
    assert result.exit_code == 2 and "refusing to overwrite" in result.output
    assert study.read_bytes() == before


def test_set_metrics_rows_show_values_counts_and_reasons(folder: Path) -> None:
    code, output = _report(folder)
    assert code == 0, output
    page = (folder.parent / "r.html").read_text(encoding="utf-8")
    rows = _rows(page[page.index('id="set-metrics"'):])
    assert ["overall", "fid ↓", "123.5", "2", "5", "pytorch-fid 0.3.0", "pytorch-fid InceptionV3"] in rows
    assert ["overall", "artfid ↓", "unavailable: no &lt;art&gt; weights", "2", "5", "", ""] in rows
    assert ["lambda_content=50", "fid ↓", "unavailable: needs at least 2 images on each side, has 1", "1", "5",
            "", ""] in rows
    assert "<code>paintings</code> (5 images)" in page and '<h2 id="study">' not in page
