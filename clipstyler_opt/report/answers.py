"""The answers a study page saved: one row per trial, read from CSV and checked.

Answers that cannot be right are refused with the file and line: an unknown question, a cell
compared with itself, a chosen cell that is neither side, a response time that is not a finite
number of milliseconds >= 0, the same trial answered twice by one participant. Text fields that
the study page wrote with a leading `'` (spreadsheet formula neutralisation, see study.py) are
read without it. An empty `chosen_cell` is a tie ("can't decide").
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.files import read_text
from clipstyler_opt.report.study import CSV_COLUMNS, QUESTIONS, unescape_csv_field

__all__ = ["REQUIRED_COLUMNS", "Answer", "read_answers"]

REQUIRED_COLUMNS = tuple(c for c in CSV_COLUMNS if c not in ("seed", "chosen_side"))
_TRUE, _FALSE = {"1", "true", "yes"}, {"0", "false", "no", ""}


@dataclass(frozen=True)
class Answer:
    """One row of an answers file (`who` names the participant: study id and participant id)."""

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
