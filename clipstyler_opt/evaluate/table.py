"""Showing and writing evaluation results: the terminal table, CSV and JSON (written atomically)."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clipstyler_opt.core.files import ReadSet, write_atomic
from clipstyler_opt.evaluate.registry import METRICS, metric_named, metrics

__all__ = [
    "ARROWS",
    "CSV_COLUMNS",
    "csv_text",
    "format_rows",
    "format_scorers",
    "format_summary",
    "format_unavailable",
    "format_value",
    "neutral_text",
    "unavailable_reasons",
    "write_csv",
    "write_json",
]

ARROWS = {"higher": "↑", "lower": "↓"}
MISSING = "n/a"
_CSV_HEAD = ("output", "content", "prompt", "cell")
_CSV_TAIL = ("scorer_was_optimiser", "seconds", "unavailable")
CSV_COLUMNS = (*_CSV_HEAD, *METRICS, *_CSV_TAIL)  # with the built-in metrics; csv_text uses the registry
OPTIMISER_MARK = " *"


def format_value(value: float | None) -> str:
    return MISSING if value is None else f"{value:.4f}"


def _names() -> list[str]:
    return [metric.name for metric in metrics()]


def _header(metric: str) -> str:
    return f"{metric} {ARROWS[metric_named(metric).direction]}"


def _align(table: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Columns padded to one width: the first `left` ones left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return ["  ".join(cell.ljust(width) if i < left else cell.rjust(width) for i, (cell, width)
                      in enumerate(zip(row, widths, strict=True))).rstrip() for row in table]


def format_rows(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per output, a column per metric (↑ higher is better, ↓ lower is better)."""
    names = _names()
    table = [["output", *(_header(m) for m in names), "seconds"]]
    for row in rows:
        mark = OPTIMISER_MARK if row.get("scorer_was_optimiser") else ""
        table.append([f"{row['output']}{mark}", *(format_value(row["metrics"].get(m)) for m in names),
                      f"{row['seconds']:.2f}"])
    lines = _align(table)
    if any(row.get("scorer_was_optimiser") for row in rows):
        lines.append(f"{OPTIMISER_MARK.strip()} the scorer also optimised this output: its style metrics favour it")
    return lines


def format_scorers(scorers: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line naming the scorers (label, and spec when it differs); with several, which one
    fills the plain metric columns.

    Example:
        >>> format_scorers([{"label": "CLIP", "spec": "ViT-B-32/openai"}, {"label": "B", "spec": "B"}])
        ["scorers: CLIP (ViT-B-32/openai), B; the plain columns are CLIP's"]
    """
    if len(scorers) == 1:
        return [f"scorer: {scorers[0].get('spec')}"]
    named = [str(s["label"]) if s.get("spec") == s["label"] else f"{s['label']} ({s.get('spec')})" for s in scorers]
    return [f"scorers: {', '.join(named)}; the plain columns are {scorers[0]['label']}'s"]


def _interval_lines(title: str, summary: Mapping[str, Mapping[str, Any]], reasons: Mapping[str, str],
                    names: Sequence[str] | None = None) -> list[str]:
    """The title on its own line (a long cell id pads nothing), then one aligned line a metric;
    a metric without values says why."""
    table = []
    for metric in _names() if names is None else names:
        entry = summary.get(metric)
        if entry is not None and entry.get("n_clusters") == 1:  # one content image: nothing to compare
            value = f"{entry['mean']:.4f}  (no interval: one content image)  n={entry['n']}"
        elif entry is not None:
            value = f"{entry['mean']:.4f}  [{entry['ci_low']:.4f}, {entry['ci_high']:.4f}]  n={entry['n']}"
        else:
            value = f"{MISSING}: {reasons[metric]}" if metric in reasons else MISSING
        table.append([f"  {_header(metric)}", value])
    return [title, *_align(table, left=2)]


def unavailable_reasons(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Per metric, the reason most of `rows` give for having no value (ties: the first seen)."""
    counts = Counter((metric, reason) for row in rows for metric, reason in row.get("unavailable", {}).items())
    reasons: dict[str, str] = {}
    for (metric, reason), _ in counts.most_common():
        reasons.setdefault(metric, reason)
    return reasons


def format_summary(summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]] = (),
                   summaries: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """Means with 95% t-intervals clustered by content image: overall, per prompt, per cell; one
    line a metric. A metric with no value in a group shows the reason `rows` give for it. With
    `summaries` (eval.json's, per scorer), each further scorer's metrics and each part's follow,
    overall."""
    reasons = unavailable_reasons(rows)
    lines = ["mean  [95% t-interval, clustered by content image]  n = images (one content image gives no "
             "interval)"]
    lines += _interval_lines("overall", summary["overall"], reasons)
    if len(summary.get("per_prompt", {})) > 1:
        for prompt, entries in summary["per_prompt"].items():
            lines += _interval_lines(f"prompt {prompt!r}", entries, reasons)
    for cell, entries in (summary.get("per_cell") or {}).items():
        lines += _interval_lines(f"cell {cell}", entries, reasons)
    scored = [metric.name for metric in metrics() if "scorer" in metric.needs]
    per_part = [metric.name for metric in metrics() if "scorer" in metric.needs and "style text" in metric.needs]
    for rank, (label, own) in enumerate((summaries or {}).items()):
        if rank:
            lines += _interval_lines(f"scorer {label}", own["overall"], reasons, scored)
        for text, entries in (own.get("parts") or {}).items():
            lines += _interval_lines(f"scorer {label}, part {text!r}", entries["overall"], reasons, per_part)
    return lines


def format_unavailable(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each distinct reason a metric is missing, with how many outputs it concerns."""
    counts = Counter((metric, reason) for row in rows for metric, reason in row["unavailable"].items())
    return [f"{metric} unavailable for {count} of {len(rows)} output{'s' if len(rows) != 1 else ''}: {reason}"
            for (metric, reason), count in counts.items()]


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutral_text(text: str) -> str:
    """A text as a CSV cell that no spreadsheet runs as a formula: one starting with = + - @, tab or
    CR gets a leading single quote (the OWASP convention against CSV injection). Numbers are written
    as they are.

    Example:
        >>> neutral_text("=cmd|' /C calc'!A0"), neutral_text("-starry night"), neutral_text("oil")
        ("'=cmd|' /C calc'!A0", "'-starry night", 'oil')
    """
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _setting_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The varied settings' field names, in first-seen order (a name clashing with a fixed column
    gets a `setting_` prefix in the header)."""
    return list(dict.fromkeys(key for row in rows for key in (row.get("setting_labels") or {})))


def csv_text(rows: Sequence[Mapping[str, Any]], scorers: Sequence[str] = ()) -> str:
    """One CSV row per output: its names, one column per varied setting (named by its field, its
    values labelled as core/labels.py labels them: never an absolute path), the metrics (the first
    scorer's), then, with several `scorers`, METRIC@LABEL for each scorer's metrics. Text fields
    are neutralised against spreadsheet formulas (`neutral_text`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = _names()
    settings = _setting_names(rows)
    scored = [metric.name for metric in metrics() if "scorer" in metric.needs] if len(scorers) > 1 else []
    fixed = {*_CSV_HEAD, *names, *_CSV_TAIL}
    writer.writerow((*_CSV_HEAD, *(f"setting_{key}" if key in fixed else key for key in settings), *names,
                     *(f"{metric}@{label}" for label in scorers for metric in scored), *_CSV_TAIL))
    for row in rows:
        values = row["metrics"]
        texts = (row["output"], row["content"], row["prompt"], row.get("cell") or "")
        own = row.get("setting_labels") or {}
        by_scorer = [((row.get("scores") or {}).get(label) or {}).get("metrics") or {} for label in scorers]
        writer.writerow([*(neutral_text("" if text is None else str(text)) for text in texts),
                         *(neutral_text(str(own[key])) if key in own else "" for key in settings),
                         *("" if values.get(m) is None else repr(values[m]) for m in names),
                         *("" if scores.get(m) is None else repr(scores[m]) for scores in by_scorer for m in scored),
                         "" if row.get("scorer_was_optimiser") is None else str(row["scorer_was_optimiser"]).lower(),
                         f"{row['seconds']:.4f}",
                         neutral_text("; ".join(f"{k}: {v}" for k, v in row["unavailable"].items()))])
    return buffer.getvalue()


def write_json(path: Path, document: Mapping[str, Any], *, reads: ReadSet | None = None) -> None:
    """JSON (non-ASCII and undecodable file-name bytes as \\u escapes), written atomically through
    the file gate; never onto one of `reads`, the files the command read."""
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    write_atomic(path, lambda fh: fh.write(text.encode("ascii")), reads=reads)


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], *, reads: ReadSet | None = None,
              scorers: Sequence[str] = ()) -> None:
    """`csv_text(rows, scorers)`, written atomically through the file gate; never onto one of `reads`."""
    data = csv_text(rows, scorers).encode("utf-8", "surrogateescape")
    write_atomic(path, lambda fh: fh.write(data), reads=reads)
