"""Looking at results: the HTML report of a result folder, and the subjective A/B study.

`load` reads a folder (manifest, sidecars, eval.json); `html`, `sections` and `svg` build the
report; `study` plans the study, `study_page` writes its page; `answers` reads what participants
saved, and `analyze` with `preferences` turns it into preference rates, Bradley–Terry strengths
with intervals, pair tests and agreement (the statistics themselves are `clipstyler_opt.stats`).
"""

from __future__ import annotations

from clipstyler_opt.report.analyze import StudyAnalysis, analyze, analyze_answers, format_analysis, read_answers
from clipstyler_opt.report.html import REPORT_NAME, render_report, write_report
from clipstyler_opt.report.load import Cell, Evaluation, ResultFolder, RunOutput, load_results
from clipstyler_opt.report.study import CSV_COLUMNS, GREY_CELL, StudyPlan, Trial, plan_study
from clipstyler_opt.report.study_page import render_study, write_study
from clipstyler_opt.stats import bradley_terry, wilson_interval

__all__ = [
    "CSV_COLUMNS",
    "GREY_CELL",
    "REPORT_NAME",
    "Cell",
    "Evaluation",
    "ResultFolder",
    "RunOutput",
    "StudyAnalysis",
    "StudyPlan",
    "Trial",
    "analyze",
    "analyze_answers",
    "bradley_terry",
    "format_analysis",
    "load_results",
    "plan_study",
    "read_answers",
    "render_report",
    "render_study",
    "wilson_interval",
    "write_report",
    "write_study",
]
