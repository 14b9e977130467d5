"""Reading `eval.json`, the file `clipopt eval` writes into a result folder: both layouts.

Schema version 1 (no `schema_version` key) holds one scorer: `scorer` (its provenance record),
`directions`, `rows` (one per output: `output`, `metrics`, `unavailable`, ...) and `summary`.

Schema version 2 keeps every key of version 1 with the same meaning (`metrics`, `summary` and
`scorer` are those of the first scorer, so a version-1 reader still works) and adds:

- `scorers`: one entry per scorer, in `--scorer` order: `label`, `spec`, `weights_sha256`,
  `optimised_outputs` (how many of the outputs it optimised itself), with its provenance record;
- per row, `scores`: per scorer label, that scorer's `metrics` and `unavailable` for the metrics
  that need a scorer, its `scorer_was_optimiser`, and `parts`: one entry per part of the prompt
  (`text`, `weight`, `metrics`, `unavailable`) with the metrics that need a style text;
  `parts_from` says whether the parts are the sweep's declared ones or the output's prompt;
- `summaries`: per scorer label, the intervals of its metrics (`overall`, `per_prompt`,
  `per_cell`) and of each part (`parts`: part text -> the same groups).

Keys a reader does not know are ignored, so later additions (set-level metrics under
`set_metrics`, evaluation protocols under `protocols`) extend version 2 without a new version;
the version changes only when an existing key changes its meaning. `set_metrics` is read into
`SetMetrics` (per set and metric: value or reason, the images on each side, implementation,
network), which the report shows.

`read_evaluation` returns an `Evaluation`: one value per output and column, where the columns
are the first scorer's metrics, then `METRIC[PART]` for the first scorer's metrics against each
part of the prompt, then `METRIC@LABEL` for the scorer metrics of every further scorer, so every
view (the report's table, `analyze --study`) shows each part and each scorer. A damaged or forged
file is a one-line ConfigError, never a traceback.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.files import describe_os_error, read_regular
from clipstyler_opt.core.labels import short_label

__all__ = ["EVAL_NAME", "SCHEMA_VERSION", "Evaluation", "PartScore", "ScorerInfo", "SetMetrics", "SetValue",
           "column_name", "part_column", "read_evaluation"]

EVAL_NAME = "eval.json"
SCHEMA_VERSION = 2  # what `clipopt eval` writes; this module reads 1 and 2
_MAX_JSON_BYTES = 256 << 20


def column_name(metric: str, label: str) -> str:
    """A scorer's metric as one column: `METRIC@LABEL`.

    Example:
        >>> column_name("clip_score", "SigLIP")
        'clip_score@SigLIP'
    """
    return f"{metric}@{label}"


def part_column(metric: str, part: str) -> str:
    """The first scorer's metric against one part of the prompt as one column: `METRIC[PART]`.

    Example:
        >>> part_column("clip_score", "starry night")
        'clip_score[starry night]'
    """
    return f"{metric}[{part}]"


@dataclass(frozen=True)
class ScorerInfo:
    """One scorer of an evaluation (version 1 files have one, labelled by its spec)."""

    label: str
    spec: str | None
    weights_sha256: str | None
    optimised_outputs: int | None = None


@dataclass(frozen=True)
class PartScore:
    """An output scored against one part of its prompt."""

    text: str
    weight: float
    metrics: Mapping[str, float | None]


@dataclass(frozen=True)
class SetValue:
    """One set-level metric of one set (`set_metrics`): its value or the reason it has none, the
    images on each side, and what computed it."""

    value: float | None
    n_outputs: int | None
    n_reference: int | None
    reason: str | None = None
    implementation: str | None = None
    network: str | None = None


@dataclass(frozen=True)
class SetMetrics:
    """eval.json's `set_metrics`: the reference folder (its name as recorded), its image count,
    each metric's direction, and per set ("overall", then each cell id) each metric's `SetValue`."""

    reference: str | None
    n_reference: int | None
    directions: Mapping[str, str]
    overall: Mapping[str, SetValue]
    per_cell: Mapping[str, Mapping[str, SetValue]]


@dataclass(frozen=True)
class Evaluation:
    """The values of an eval.json, per output (its path below the folder) and column.

    Example:
        >>> evaluation = Evaluation(("ssim",), {"ssim": "higher"}, {"a.png": {"ssim": 0.5}})
        >>> evaluation.rows["a.png"]["ssim"], evaluation.schema_version
        (0.5, 1)
    """

    metrics: tuple[str, ...]  # column order
    directions: Mapping[str, str]  # column -> "higher" | "lower"
    rows: Mapping[str, Mapping[str, float | None]]  # output path below the folder -> column -> value
    schema_version: int = 1
    scorers: tuple[ScorerInfo, ...] = ()
    parts: Mapping[str, Mapping[str, tuple[PartScore, ...]]] = field(default_factory=dict)  # label -> output
    set_metrics: SetMetrics | None = None

    def value(self, output: Any, metric: str) -> float | None:
        """A finite value of `metric` (a column) for `output` (a RunOutput, or its relative path)."""
        relative = output if isinstance(output, str) else output.relative
        value = self.rows.get(relative, {}).get(metric)
        return value if value is not None and math.isfinite(value) else None


class _Bad(Exception):
    """The file is not an eval.json: the message says where."""


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(f"{where} is not an object")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{where} is not a text")
    return value


def _optional_text(value: Any, where: str) -> str | None:
    return None if value is None else _text(value, where)


def _values(value: Any, where: str) -> dict[str, float | None]:
    """metric -> a float or None (a non-number, NaN or infinity reads as no value)."""
    result: dict[str, float | None] = {}
    for key, number in _mapping(value if value is not None else {}, where).items():
        ok = isinstance(number, (int, float)) and not isinstance(number, bool) and math.isfinite(number)
        result[str(key)] = float(number) if ok else None
    return result


def _version(data: Mapping[str, Any]) -> int:
    version = data.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise _Bad("schema_version is not a whole number")
    if version > SCHEMA_VERSION:
        raise _Bad(f"schema_version {version} is newer than this clipopt reads (1 to {SCHEMA_VERSION}); "
                   "update clipopt")
    if version < 1:
        raise _Bad(f"schema_version {version} does not exist")
    return version


def _scorers(data: Mapping[str, Any], version: int) -> tuple[ScorerInfo, ...]:
    if version == 1:
        record = data.get("scorer")
        record = record if isinstance(record, dict) else {}
        spec = record.get("spec") if isinstance(record.get("spec"), str) else None
        sha = record.get("weights_sha256") if isinstance(record.get("weights_sha256"), str) else None
        return (ScorerInfo(short_label(spec, "backbone") if spec else "scorer", spec, sha),)
    entries = data.get("scorers")
    if not isinstance(entries, list) or not entries:
        raise _Bad("scorers is not a non-empty list")
    found = []
    for i, entry in enumerate(entries):
        entry = _mapping(entry, f"scorers[{i}]")
        count = entry.get("optimised_outputs")
        found.append(ScorerInfo(_text(entry.get("label"), f"scorers[{i}].label"),
                                _optional_text(entry.get("spec"), f"scorers[{i}].spec"),
                                _optional_text(entry.get("weights_sha256"), f"scorers[{i}].weights_sha256"),
                                count if isinstance(count, int) and not isinstance(count, bool) else None))
    labels = [scorer.label for scorer in found]
    if len(set(labels)) != len(labels):
        raise _Bad("two scorers have one label")
    return tuple(found)


def _parts(value: Any, where: str) -> tuple[PartScore, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Bad(f"{where} is not a list")
    parts = []
    for i, entry in enumerate(value):
        entry = _mapping(entry, f"{where}[{i}]")
        weight = entry.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise _Bad(f"{where}[{i}].weight is not a number")
        parts.append(PartScore(_text(entry.get("text"), f"{where}[{i}].text"), float(weight),
                               _values(entry.get("metrics"), f"{where}[{i}].metrics")))
    return tuple(parts)


def _count(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Bad(f"{where} is not a count")
    return value


def _set_values(value: Any, where: str) -> dict[str, SetValue]:
    found = {}
    for name, entry in _mapping(value, where).items():
        entry = _mapping(entry, f"{where}.{name}")
        number = _values({"value": entry.get("value")}, f"{where}.{name}")["value"]
        found[str(name)] = SetValue(number, _count(entry.get("n_outputs"), f"{where}.{name}.n_outputs"),
                                    _count(entry.get("n_reference"), f"{where}.{name}.n_reference"),
                                    _optional_text(entry.get("reason"), f"{where}.{name}.reason"),
                                    _optional_text(entry.get("implementation"), f"{where}.{name}.implementation"),
                                    _optional_text(entry.get("network"), f"{where}.{name}.network"))
    return found


def _set_metrics(value: Any) -> SetMetrics | None:
    if value is None:
        return None
    block = _mapping(value, "set_metrics")
    reference = _mapping(block.get("reference") or {}, "set_metrics.reference")
    per_cell = _mapping(block.get("per_cell") or {}, "set_metrics.per_cell")
    return SetMetrics(_optional_text(reference.get("folder"), "set_metrics.reference.folder"),
                      _count(reference.get("n"), "set_metrics.reference.n"),
                      {str(k): str(v) for k, v in _mapping(block.get("directions") or {},
                                                           "set_metrics.directions").items()},
                      _set_values(block.get("overall") or {}, "set_metrics.overall"),
                      {str(cell): _set_values(values, f"set_metrics.per_cell[{cell!r}]")
                       for cell, values in per_cell.items()})


def _parse(data: Any) -> Evaluation:
    data = _mapping(data, "the document")
    version = _version(data)
    scorers = _scorers(data, version)
    directions = {str(k): str(v) for k, v in _mapping(data.get("directions") or {}, "directions").items()}
    rows_in = data.get("rows")
    if not isinstance(rows_in, list):
        raise _Bad("rows is not a list")
    rows: dict[str, dict[str, float | None]] = {}
    parts: dict[str, dict[str, tuple[PartScore, ...]]] = {scorer.label: {} for scorer in scorers}
    by_part: list[str] = []  # METRIC[PART] columns of the first scorer
    by_scorer: list[str] = []  # METRIC@LABEL columns of the further scorers

    def add(values: dict[str, float | None], columns: list[str], column: str, metric: str,
            value: float | None) -> None:
        values[column] = value
        if column not in columns:
            columns.append(column)
            if metric in directions:
                directions[column] = directions[metric]

    for i, row in enumerate(rows_in):
        row = _mapping(row, f"rows[{i}]")
        output = PurePosixPath(_text(row.get("output"), f"rows[{i}].output")).as_posix()
        values = _values(row.get("metrics"), f"rows[{i}].metrics")
        if version >= 2:
            scores = _mapping(row.get("scores") or {}, f"rows[{i}].scores")
            for rank, scorer in enumerate(scorers):
                where = f"rows[{i}].scores[{scorer.label!r}]"
                entry = _mapping(scores.get(scorer.label) or {}, where)
                parts[scorer.label][output] = _parts(entry.get("parts"), f"{where}.parts")
                if rank == 0:
                    for part in parts[scorer.label][output]:
                        for metric, value in part.metrics.items():
                            add(values, by_part, part_column(metric, part.text), metric, value)
                    continue
                for metric, value in _values(entry.get("metrics"), f"{where}.metrics").items():
                    add(values, by_scorer, column_name(metric, scorer.label), metric, value)
        rows[output] = values
    extra = [*by_part, *by_scorer]
    order = [m for m in directions if m not in extra]
    for metrics in rows.values():
        order.extend(k for k in metrics if k not in order and k not in extra)
    return Evaluation(metrics=tuple(order + extra), directions=directions, rows=rows, schema_version=version,
                      scorers=scorers, parts=parts if version >= 2 else {},
                      set_metrics=_set_metrics(data.get("set_metrics")))


def read_evaluation(path: Path) -> Evaluation | None:
    """The eval.json at `path` (version 1 or 2); None when there is none.

    Raises:
        ConfigError: unreadable, not JSON, or not an eval.json (one line naming what is wrong).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / EVAL_NAME
        >>> _ = path.write_text('{"schema_version": 2, "scorers": [{"label": "S"}], "rows": [{"output": "a.png",'
        ...                     ' "metrics": {"ssim": 0.5}, "scores": {"S": {"parts": []}}}]}')
        >>> evaluation = read_evaluation(path)
        >>> evaluation.value("a.png", "ssim"), [scorer.label for scorer in evaluation.scorers]
        (0.5, ['S'])
        >>> _ = path.write_text('{"schema_version": 3, "rows": []}')
        >>> read_evaluation(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        clipstyler_opt.core.errors.ConfigError: ...: not a readable eval.json (schema_version 3 is newer than ...
    """
    if not path.exists():
        return None
    hint = "rewrite it with clipopt eval"
    try:
        return _parse(json.loads(read_regular(path, _MAX_JSON_BYTES).decode("utf-8")))
    except RecursionError:
        raise ConfigError(f"{path}: not a readable {EVAL_NAME} (JSON nested too deeply); {hint}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({describe_os_error(exc)})") from None
    except _Bad as exc:
        raise ConfigError(f"{path}: not a readable {EVAL_NAME} ({exc}); {hint}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable {EVAL_NAME} ({type(exc).__name__}: {exc}); {hint}") from None
