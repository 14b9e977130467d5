"""`study analyze`: preference rates, Bradley–Terry strengths, repeat agreement, attention checks.

Rules:
- A participant is (study id, participant id). One who picks the wrong image in more than
  `max_attention_failures` attention checks is excluded from everything else, and listed.
- Preference rates and Bradley–Terry use each pair's first presentation only (repeats would
  count one judgement twice); attention checks never count. An answer with an empty
  `chosen_cell` is a tie: half a win to each side.
- Repeat agreement: the share of repeated questions answered with the same cell both times.
- Answers that cannot be right are refused with the file and line: an unknown question, a cell
  compared with itself, a chosen cell that is neither side, a response time that is not a
  finite number of milliseconds >= 0. Text fields that the study page wrote with a leading `'`
  (spreadsheet formula neutralisation, see study.py) are read without it.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.files import read_text
from clipstyler_opt.report.study import CSV_COLUMNS, QUESTIONS, unescape_csv_field
from clipstyler_opt.stats import bradley_terry, connected_components, wilson_interval

__all__ = [
    "REQUIRED_COLUMNS",
    "Answer",
    "CellPreference",
    "QuestionResult",
    "StudyAnalysis",
    "analyze",
    "analyze_answers",
    "format_analysis",
    "read_answers",
]

REQUIRED_COLUMNS = tuple(c for c in CSV_COLUMNS if c not in ("seed", "chosen_side"))
_TRUE, _FALSE = {"1", "true", "yes"}, {"0", "false", "no", ""}


@dataclass(frozen=True)
class Answer:
    study_id: str
    participant: str
    trial: int
    pair: str
    question: str
    left_cell: str
    right_cell: str
    chosen_cell: str  # "" for a tie
    is_repeat: bool
    is_attention_check: bool
    expected_cell: str
    response_ms: float | None

    @property
    def who(self) -> tuple[str, str]:
        return (self.study_id, self.participant)


@dataclass(frozen=True)
class CellPreference:
    cell: str
    comparisons: int
    wins: float
    rate: float
    ci_low: float
    ci_high: float
    bradley_terry: float


@dataclass(frozen=True)
class QuestionResult:
    question: str
    answers: int
    median_response_ms: float | None
    cells: tuple[CellPreference, ...]
    comparison_groups: int  # >1: Bradley-Terry strengths compare only within a group


@dataclass(frozen=True)
class StudyAnalysis:
    files: int
    study_ids: tuple[str, ...]
    participants: int
    excluded: dict[str, str]  # participant -> why
    questions: tuple[QuestionResult, ...]
    repeat_agree: int
    repeat_total: int
    repeat_ci: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return _json_safe(data)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _flag(text: str, where: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE or lowered in _FALSE:
        return lowered in _TRUE
    raise ConfigError(f"{where}: expected 0 or 1, got {text!r}")


def _answer(raw: dict[str, str], where: str) -> Answer:
    row = {column: unescape_csv_field(value) for column, value in raw.items()}
    try:
        trial = int(row["trial"])
    except ValueError:
        raise ConfigError(f"{where}: trial must be a whole number, got {row['trial']!r}") from None
    if row["question"] not in QUESTIONS:
        raise ConfigError(f"{where}: unknown question {row['question']!r} (expected {' or '.join(QUESTIONS)})")
    if row["left_cell"] == row["right_cell"]:
        raise ConfigError(f"{where}: cell {row['left_cell']!r} is compared with itself")
    chosen = row["chosen_cell"]
    if chosen not in ("", row["left_cell"], row["right_cell"]):
        raise ConfigError(f"{where}: chosen_cell {chosen!r} is neither the left nor the right cell")
    try:
        response = float(row["response_ms"]) if row.get("response_ms", "").strip() else None
    except ValueError:
        raise ConfigError(f"{where}: response_ms must be a number, got {row['response_ms']!r}") from None
    if response is not None and not (math.isfinite(response) and response >= 0):
        raise ConfigError(f"{where}: response_ms must be a finite number of milliseconds >= 0, "
                          f"got {row['response_ms']!r}")
    return Answer(study_id=row["study_id"], participant=row["participant"], trial=trial, pair=row["pair"],
                  question=row["question"], left_cell=row["left_cell"], right_cell=row["right_cell"],
                  chosen_cell=chosen, is_repeat=_flag(row["is_repeat"], where),
                  is_attention_check=_flag(row["is_attention_check"], where),
                  expected_cell=row["expected_cell"], response_ms=response)


def read_answers(paths: Sequence[Path]) -> list[Answer]:
    """Every answer of the study CSV files; a malformed file is a one-line error."""
    answers: list[Answer] = []
    seen: set[tuple[str, str, int]] = set()
    for path in paths:
        try:
            with io.StringIO(read_text(path, what="answers file", encoding="utf-8-sig"), newline="") as fh:
                reader = csv.DictReader(fh)
                missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise ConfigError(f"{path}: not a study answers file (missing columns: {', '.join(missing)})")
                for row in reader:
                    if None in row or any(v is None for v in row.values()):
                        raise ConfigError(f"{path}:{reader.line_num}: wrong number of fields")
                    answer = _answer(row, f"{path}:{reader.line_num}")
                    key = (answer.study_id, answer.participant, answer.trial)
                    if key in seen:
                        raise ConfigError(f"{path}:{reader.line_num}: participant {answer.participant!r} answered "
                                          f"trial {answer.trial} twice (the same answers given twice?)")
                    seen.add(key)
                    answers.append(answer)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ConfigError(f"{path}: cannot read answers ({exc})") from None
    return answers


def _question_result(question: str, answers: list[Answer]) -> QuestionResult:
    cells = sorted({c for a in answers for c in (a.left_cell, a.right_cell)})
    index = {cell: i for i, cell in enumerate(cells)}
    wins = np.zeros((len(cells), len(cells)))
    comparisons: Counter[str] = Counter()
    won: defaultdict[str, float] = defaultdict(float)
    for a in answers:
        left, right = index[a.left_cell], index[a.right_cell]
        comparisons[a.left_cell] += 1
        comparisons[a.right_cell] += 1
        if a.chosen_cell:
            loser = a.right_cell if a.chosen_cell == a.left_cell else a.left_cell
            wins[index[a.chosen_cell], index[loser]] += 1
            won[a.chosen_cell] += 1
        else:
            wins[left, right] += 0.5
            wins[right, left] += 0.5
            won[a.left_cell] += 0.5
            won[a.right_cell] += 0.5
    strengths = bradley_terry(wins)
    groups = connected_components((wins + wins.T) > 0)
    rows = []
    for cell in cells:
        n, w = comparisons[cell], won[cell]
        low, high = wilson_interval(w, n)
        rows.append(CellPreference(cell=cell, comparisons=n, wins=w, rate=w / n if n else math.nan,
                                   ci_low=low, ci_high=high, bradley_terry=float(strengths[index[cell]])))
    rows.sort(key=lambda r: -r.bradley_terry)
    times = [a.response_ms for a in answers if a.response_ms is not None]
    return QuestionResult(question=question, answers=len(answers),
                          median_response_ms=statistics.median(times) if times else None,
                          cells=tuple(rows), comparison_groups=len(groups))


def analyze(answers: Sequence[Answer], *, files: int = 0, max_attention_failures: int = 0) -> StudyAnalysis:
    """Apply the module's rules to answers already read (`files`: how many files they came from)."""
    failures: Counter[tuple[str, str]] = Counter()
    checks: Counter[tuple[str, str]] = Counter()
    for a in answers:
        if a.is_attention_check:
            checks[a.who] += 1
            failures[a.who] += a.chosen_cell != a.expected_cell
    people = sorted({a.who for a in answers})
    excluded = {who for who in people if failures[who] > max_attention_failures}
    kept = [a for a in answers if a.who not in excluded]
    first_showings = [a for a in kept if not a.is_attention_check and not a.is_repeat]
    by_question: dict[str, list[Answer]] = defaultdict(list)
    for a in first_showings:
        by_question[a.question].append(a)
    first = {(a.who, a.pair, a.question): a.chosen_cell for a in first_showings}
    repeats = [a for a in kept if a.is_repeat and (a.who, a.pair, a.question) in first]
    agree = sum(first[(a.who, a.pair, a.question)] == a.chosen_cell for a in repeats)
    several_studies = len({study for study, _ in people}) > 1

    def name(who: tuple[str, str]) -> str:
        return f"{who[0]}/{who[1]}" if several_studies else who[1]

    return StudyAnalysis(
        files=files, study_ids=tuple(sorted({a.study_id for a in answers})), participants=len(people),
        excluded={name(who): f"failed {failures[who]} of {checks[who]} attention checks" for who in sorted(excluded)},
        questions=tuple(_question_result(q, by_question[q]) for q in sorted(by_question)),
        repeat_agree=agree, repeat_total=len(repeats), repeat_ci=wilson_interval(agree, len(repeats)))


def analyze_answers(paths: Sequence[Path], *, max_attention_failures: int = 0) -> StudyAnalysis:
    """Read the answer files and analyse them."""
    if not paths:
        raise ConfigError("no answer files given")
    return analyze(read_answers(paths), files=len(paths), max_attention_failures=max_attention_failures)


def _interval(low: float, high: float) -> str:
    return "n/a" if math.isnan(low) else f"[{low:.3f}, {high:.3f}]"


def format_analysis(result: StudyAnalysis) -> str:
    """A plain-text summary with one table per question."""
    lines = [f"{result.files} file(s), study {', '.join(result.study_ids) or '-'}: {result.participants} "
             f"participant(s), {result.participants - len(result.excluded)} analysed"]
    for who, why in result.excluded.items():
        lines.append(f"excluded {who}: {why}")
    for q in result.questions:
        median = "n/a" if q.median_response_ms is None else f"{q.median_response_ms:.0f} ms"
        lines += ["", f"question: {q.question} ({q.answers} answers, median response {median})",
                  f"{'cell':<32}{'n':>6}{'wins':>8}{'rate':>8}  {'95% CI (Wilson)':<18}{'Bradley-Terry':>14}"]
        for c in q.cells:
            lines.append(f"{c.cell:<32}{c.comparisons:>6}{c.wins:>8g}{c.rate:>8.3f}  "
                         f"{_interval(c.ci_low, c.ci_high):<18}{c.bradley_terry:>14.3f}")
        if q.comparison_groups > 1:
            lines.append(f"note: the cells fall into {q.comparison_groups} groups never compared with each other; "
                         "Bradley-Terry strengths compare only within a group")
    if not result.questions:
        lines.append("no answers left to analyse")
    rate = f" = {result.repeat_agree / result.repeat_total:.3f} {_interval(*result.repeat_ci)}" \
        if result.repeat_total else ""
    lines += ["", f"repeat agreement: {result.repeat_agree}/{result.repeat_total}{rate}"]
    return "\n".join(lines)
