"""Two sections of the report that show files other commands wrote, as they wrote them:

- "Set metrics": eval.json's `set_metrics` (`clipopt eval --reference-dir`), a row per set
  (overall, then each cell) and metric: the value, or "unavailable" with the reason; the images
  on each side; the implementation and network that computed it.
- "Study": the file of `clipopt study analyze --json` (`report --study`): who was analysed and
  left out, fast answers, repeat agreement, and per question each cell's win rate and
  Bradley–Terry strength with their intervals, the pair tests with Holm-adjusted p-values and
  Krippendorff's α.

Cells are shown by their labels (`report.labels`), never by a path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from clipstyler_opt.figures.tables import Table, Value
from clipstyler_opt.report.evaluation import SetMetrics
from clipstyler_opt.report.markup import escape, format_number
from clipstyler_opt.report.sections import table_html
from clipstyler_opt.report.study_file import StudyStrengths

__all__ = ["set_metrics_section", "study_section"]

_ARROWS = {"higher": " ↑", "lower": " ↓"}


def _interval(low: float | None, high: float | None) -> str:
    return "n/a" if low is None or high is None else f"[{format_number(low, 3)}, {format_number(high, 3)}]"


def _number(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else format_number(value, digits)


def _count(value: float | None) -> Value:
    return None if value is None else int(value) if float(value).is_integer() else format_number(value)


def set_metrics_section(block: SetMetrics | None, labels: Mapping[str, str]) -> str:
    """The "Set metrics" table ('' without `set_metrics`); `labels`: cell id -> its label.

    Example:
        >>> from clipstyler_opt.report.evaluation import SetValue
        >>> block = SetMetrics("/data/refs", 3, {"fid": "lower"}, {"fid": SetValue(12.5, 4, 3, None, "pytorch-fid")},
        ...                    {"c1": {"fid": SetValue(None, 1, 3, "needs 2 images")}})
        >>> html = set_metrics_section(block, {"c1": "lr=0.1"})
        >>> "<td>lr=0.1</td>" in html, "unavailable: needs 2 images" in html, "/data" in html
        (True, True, False)
    """
    if block is None:
        return ""
    sets = [("overall", block.overall), *((labels.get(cell, cell), values) for cell, values in block.per_cell.items())]
    rows: list[list[Value]] = []
    for name, values in sets:
        for metric, entry in values.items():
            shown = format_number(entry.value) if entry.value is not None else f"unavailable: {entry.reason or '?'}"
            rows.append([name, metric + _ARROWS.get(block.directions.get(metric, ""), ""), shown,
                         entry.n_outputs, entry.n_reference, entry.implementation or "", entry.network or ""])
    reference = PurePath(block.reference).name if block.reference else "the reference folder"
    count = "" if block.n_reference is None else f" ({block.n_reference} images)"
    table = Table(["set", "metric", "value", "n outputs", "n reference", "implementation", "network"], rows)
    return (f'<h3 id="set-metrics">Set metrics</h3><p>Outputs against <code>{escape(reference)}</code>{escape(count)} '
            "(<code>clipopt eval --reference-dir</code>); ↓ lower is better. Small sets bias FID upwards: compare "
            "only values from sets of the same size.</p>" + table_html(table))


def _overview(details: Mapping[str, Any]) -> str:
    lines = []
    people, excluded = details.get("participants"), details.get("excluded", {})
    if people is not None:
        lines.append(f"{_count(people)} participant(s), {int(people) - len(excluded)} analysed.")
    for who, why in excluded.items():
        lines.append(f"Excluded {who}: {why}.")
    fast = details.get("fast_answers")
    if fast:
        what = "left out" if details.get("exclude_fast") else "kept"
        who = ", ".join(f"{name} {_count(n)}" for name, n in details.get("fast_by_participant", {}).items())
        lines.append(f"{_count(fast)} answer(s) faster than {_number(details.get('min_ms'))} ms, {what}"
                     + (f": {who}." if who else "."))
    if details.get("repeat_total"):
        agree, total = details.get("repeat_agree") or 0, details["repeat_total"]
        low, high = (details.get("repeat_ci") or [None, None])
        lines.append(f"Repeat agreement: {_count(agree)}/{_count(total)} = {format_number(agree / total, 3)} "
                     f"{_interval(low, high)}.")
    return "".join(f"<p>{escape(line)}</p>" for line in lines)


def _question(entry: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    def label(cell: str) -> str:
        return labels.get(cell, cell)

    median, answers = entry.get("median_response_ms"), entry.get("answers")
    head = (f"Question: {entry['question']} ({'?' if answers is None else _count(answers)} answers, "
            f"median response {'n/a' if median is None else format_number(median, 4) + ' ms'})")
    cells = Table(["cell", "comparisons", "wins", "win rate", "95% CI (Wilson)", "Bradley–Terry",
                   "95% CI (bootstrap over participants)"],
                  [[label(c["cell"]), _count(c.get("comparisons")), _count(c.get("wins")), _number(c.get("rate"), 3),
                    _interval(c.get("ci_low"), c.get("ci_high")), _number(c.get("bradley_terry"), 3),
                    _interval(c.get("bt_ci_low"), c.get("bt_ci_high"))] for c in entry["cells"]])
    html = f"<h3>{escape(head)}</h3>" + table_html(cells)
    if (entry.get("comparison_groups") or 0) > 1:
        html += (f'<p class="missing">The cells fall into {_count(entry["comparison_groups"])} groups never compared '
                 "with each other: Bradley–Terry strengths compare only within a group.</p>")
    if entry["pairs"]:
        pairs = Table(["cell A", "cell B", "A preferred", "B preferred", "ties", "p", "Holm p"],
                      [[label(p["cell_a"]), label(p["cell_b"]), _count(p.get("a_wins")), _count(p.get("b_wins")),
                        _count(p.get("ties")), _number(p.get("p_value")), _number(p.get("p_holm"))]
                       for p in entry["pairs"]])
        html += ("<p>Each pair against 50% (exact binomial test, ties left out; Holm's correction over the pairs "
                 "of this question):</p>" + table_html(pairs))
    alpha, units = entry.get("agreement_alpha"), _count(entry.get("agreement_units"))
    if alpha is None:
        html += f"<p>Agreement: Krippendorff's α n/a ({units if units is not None else '?'} pair(s) answered by two "
        html += "or more).</p>"
    else:
        html += f"<p>Agreement: Krippendorff's α = {format_number(alpha, 3)} over {units} pair(s).</p>"
    return html


def study_section(study: StudyStrengths, labels: Mapping[str, str]) -> str:
    """The "Study" section of `study analyze --json`'s file; `labels`: cell id -> its label.

    Example:
        >>> study = StudyStrengths("s.json", {}, None, {"participants": 3.0, "excluded": {"bo": "failed 2 of 2"},
        ...     "questions": [{"question": "style", "answers": 4.0, "cells": [{"cell": "c1", "rate": 0.75}],
        ...                    "pairs": [], "agreement_alpha": 0.5, "agreement_units": 2.0}]})
        >>> html = study_section(study, {"c1": "lr=0.1"})
        >>> "<td>lr=0.1</td>" in html, "3 participant(s), 2 analysed." in html, "α = 0.5 over 2" in html
        (True, True, True)
    """
    details = study.details
    questions = details.get("questions", [])
    body = "".join(_question(entry, labels) for entry in questions) or '<p class="missing">No question analysed.</p>'
    return (f"<p>From <code>{escape(study.source)}</code> (<code>clipopt study analyze --json</code>). "
            "Win rates count a tie as half a win to each side.</p>" + _overview(details) + body)
