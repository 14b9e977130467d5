"""Reading the file `clipopt study analyze --json` writes (`StudyAnalysis.to_dict`), for a result
folder: `clipopt analyze --study` takes the Bradley–Terry strengths from it, `clipopt report
--study` shows all of it.

Only `questions` (each with `question` and `cells`, each cell with its `cell` id) is required;
every other key that the analysis writes is optional, but when present it must have its type (a
number, or null where the analysis writes null for "not defined"). A cell, in a question or in a
pair test, that the folder does not have means the study was made from another folder: a
one-line ConfigError (exit 2).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.files import read_text

__all__ = ["StudyStrengths", "read_study"]

_MAX_STUDY_BYTES = 64 << 20
_TOP_NUMBERS = ("files", "participants", "repeat_agree", "repeat_total", "min_ms", "fast_answers", "resamples")
_QUESTION_NUMBERS = ("answers", "median_response_ms", "comparison_groups", "agreement_alpha", "agreement_units")
_CELL_NUMBERS = ("comparisons", "wins", "rate", "ci_low", "ci_high", "bradley_terry", "bt_ci_low", "bt_ci_high")
_PAIR_NUMBERS = ("a_wins", "b_wins", "ties", "p_value", "p_holm")


@dataclass(frozen=True)
class StudyStrengths:
    """Per question, each cell's Bradley–Terry strength, as `study analyze --json` wrote them;
    `details` keeps the file's other checked keys (rates, intervals, pair tests, agreement,
    exclusions, fast answers) for the report.

    Example:
        >>> StudyStrengths("s.json", {"style": {"a": 0.6, "b": 0.4}}).cells()
        ['a', 'b']
    """

    source: str  # the study file's name (never a folder path)
    questions: Mapping[str, Mapping[str, float]]  # question -> cell id -> strength
    path: Path | None = None  # the file read: what analyze or report writes may never be it
    details: Mapping[str, Any] = field(default_factory=dict)  # the checked document

    def cells(self) -> list[str]:
        """Every cell id the study names, sorted."""
        return sorted({cell for strengths in self.questions.values() for cell in strengths})


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None  # study analyze writes null for what is not defined (a cell never compared)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ConfigError(f"{where} must be a number or null, got {value!r}")
    return float(value)


def _numbers(entry: Mapping[str, Any], keys: Sequence[str], where: str) -> dict[str, float | None]:
    return {key: _number(entry[key], f"{where}: {key}") for key in keys if key in entry}


def _text_map(value: Any, where: str, number: bool = False) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"{where} must be an object")
    if number:
        return {k: _number(v, f"{where}[{k!r}]") for k, v in value.items()}
    if not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{where} must map names to texts")
    return dict(value)


def _question(entry: Any, where: str) -> dict[str, Any]:
    if not isinstance(entry, dict) or not isinstance(entry.get("question"), str) \
            or not isinstance(entry.get("cells"), list):
        raise ConfigError(f"{where}: expected {{'question': text, 'cells': [...]}}")
    cells = []
    for row in entry["cells"]:
        if not isinstance(row, dict) or not isinstance(row.get("cell"), str):
            raise ConfigError(f"{where}: every cell needs a 'cell' id")
        cells.append({"cell": row["cell"], **_numbers(row, _CELL_NUMBERS, f"{where}, cell {row['cell']!r}")})
    pairs = []
    for i, pair in enumerate(entry.get("pairs") or []):
        if not isinstance(pair, dict) or not isinstance(pair.get("cell_a"), str) \
                or not isinstance(pair.get("cell_b"), str):
            raise ConfigError(f"{where}: pairs[{i}] needs 'cell_a' and 'cell_b'")
        pairs.append({"cell_a": pair["cell_a"], "cell_b": pair["cell_b"],
                      **_numbers(pair, _PAIR_NUMBERS, f"{where}: pairs[{i}]")})
    return {"question": entry["question"], "cells": cells, "pairs": pairs,
            **_numbers(entry, _QUESTION_NUMBERS, where)}


def _details(document: Mapping[str, Any], path: Path) -> dict[str, Any]:
    where = str(path)
    details: dict[str, Any] = {"questions": [_question(entry, f"{where}: questions[{index}]")
                                             for index, entry in enumerate(document["questions"])]}
    details.update(_numbers(document, _TOP_NUMBERS, where))
    details["excluded"] = _text_map(document.get("excluded"), f"{where}: excluded")
    details["fast_by_participant"] = _text_map(document.get("fast_by_participant"),
                                               f"{where}: fast_by_participant", number=True)
    if "exclude_fast" in document:
        if not isinstance(document["exclude_fast"], bool):
            raise ConfigError(f"{where}: exclude_fast must be true or false")
        details["exclude_fast"] = document["exclude_fast"]
    ids = document.get("study_ids", [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ConfigError(f"{where}: study_ids must be a list of texts")
    details["study_ids"] = ids
    interval = document.get("repeat_ci")
    if interval is not None:
        if not isinstance(interval, list) or len(interval) != 2:
            raise ConfigError(f"{where}: repeat_ci must be [low, high]")
        details["repeat_ci"] = [_number(v, f"{where}: repeat_ci") for v in interval]
    return details


def read_study(path: Path, cell_ids: Sequence[str]) -> StudyStrengths:
    """Read `study analyze --json` output and check it belongs to a folder with these cells.

    Raises:
        ConfigError: not such a file, or a cell the folder does not have (the study was made from
            another folder).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "study.json"
        >>> _ = path.write_text('{"questions": [{"question": "style", "cells": ['
        ...                     '{"cell": "a", "bradley_terry": 0.7}, {"cell": "b", "bradley_terry": 0.3}]}]}')
        >>> read_study(path, ["a", "b"]).questions["style"]["a"]
        0.7
    """
    text = read_text(path, limit=_MAX_STUDY_BYTES)
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ConfigError(f"{path}: not JSON ({error}); pass the file `clipopt study analyze --json` wrote") from None
    if not isinstance(document, dict) or not isinstance(document.get("questions"), list):
        raise ConfigError(f"{path}: no 'questions' list; pass the file `clipopt study analyze --json` wrote")
    details = _details(document, path)
    questions: dict[str, dict[str, float]] = {}
    named: set[str] = set()
    for entry in details["questions"]:
        questions[entry["question"]] = {row["cell"]: math.nan if row.get("bradley_terry") is None
                                        else row["bradley_terry"] for row in entry["cells"]}
        named.update(row["cell"] for row in entry["cells"])
        named.update(cell for pair in entry["pairs"] for cell in (pair["cell_a"], pair["cell_b"]))
    known = set(cell_ids)
    unknown = sorted(named - known)
    if unknown:
        raise ConfigError(f"{path}: cell {unknown[0]!r} is not a cell of this folder (its cells: "
                          f"{', '.join(sorted(known))}); the study was made from another folder")
    return StudyStrengths(path.name, questions, path, details)
