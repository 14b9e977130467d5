"""Reading a result folder written by `clipopt batch` or `clipopt sweep`: outputs, cells, metrics.

A *cell* is one combination of settings. Sweep sidecars name their cell (`sweep.cell`), its
values (`sweep.values`) and their labels (`sweep.labels`); without them, the varied settings are
the settings keys whose values differ between outputs of the same content image and prompt, and
a cell is one combination of their values. Values without a recorded label are labelled by the
one rule of core/labels.py (short forms, never a folder path).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from clipstyler_opt.batch.manifest import MANIFEST_NAME, read_records
from clipstyler_opt.core.errors import ConfigError, InputImageError
from clipstyler_opt.core.files import not_a_file
from clipstyler_opt.core.labels import cell_labels, short_label
from clipstyler_opt.core.replicates import POOLED_DEFAULT, REPLICATE_SETTINGS, pooled_cell_id
from clipstyler_opt.report.evaluation import EVAL_NAME, Evaluation, read_evaluation
from clipstyler_opt.report.markup import clean_text, format_value
from clipstyler_opt.run.outputs import sidecar_path
from clipstyler_opt.run.record import read_record, recorded_input

__all__ = ["DEFAULT_CELL", "EVAL_NAME", "Cell", "Evaluation", "ResultFolder", "RunOutput", "load_results"]

DEFAULT_CELL = POOLED_DEFAULT


@dataclass(frozen=True)
class Cell:
    """One combination of the varied settings."""

    id: str
    values: tuple[tuple[str, Any], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()  # (setting, label) per value; see core/labels.py

    @property
    def label(self) -> str:
        """`setting=label, ...`: what reports, figures and tables call the cell (never an absolute path)."""
        if not self.values:
            return self.id
        return ", ".join(f"{key}={label}" for key, label in self.labelled().items())

    def labelled(self) -> dict[str, str]:
        """Each varied setting's label: the one recorded, else the value's short form.

        Example:
            >>> Cell("x", (("backbone", ["ViT-B-32/openai"]), ("mix", 0.5)), (("backbone", "CLIP"),)).labelled()
            {'backbone': 'CLIP', 'mix': '0.5'}
        """
        named = dict(self.labels)
        return {key: named.get(key) or short_label(value, key) for key, value in self.values}

    def pooled(self) -> Cell:
        """The cell that pools this one's replicates (core/replicates.py): the same cell without
        its replicate settings (the seed), so cells that differ only in the seed pool to one.

        Example:
            >>> Cell("lambda_content=50,seed=1", (("lambda_content", 50.0), ("seed", 1))).pooled()
            Cell(id='lambda_content=50', values=(('lambda_content', 50.0),), labels=())
        """
        kept = tuple((key, value) for key, value in self.values if key not in REPLICATE_SETTINGS)
        if len(kept) == len(self.values):
            return self
        return Cell(pooled_cell_id(self.id, self.values, self.labelled()), kept,
                    tuple((key, label) for key, label in self.labels if key not in REPLICATE_SETTINGS))


@dataclass(frozen=True)
class RunOutput:
    image: Path  # absolute
    relative: str  # below the result folder, with "/" separators
    content: Path  # the content image the output was made from
    prompt: str  # the prompt as declared: outputs are grouped by it (every cell of a mix sweep has the same)
    seed: int | None
    settings: Mapping[str, Any]
    losses: Mapping[str, float]
    history: tuple[Mapping[str, float], ...]
    cell: Cell
    effective_prompt: str = ""  # the prompt the output was made with (a mix sweep's cell reweights it)
    weights: tuple[float, ...] | None = None  # the weights a mix sweep's cell gave the declared parts


@dataclass(frozen=True)
class ResultFolder:
    root: Path
    outputs: tuple[RunOutput, ...]
    cells: tuple[Cell, ...]  # sorted by their values
    evaluation: Evaluation | None
    notes: tuple[str, ...] = field(default=())  # what was skipped and why

    @property
    def pooled_cells(self) -> tuple[Cell, ...]:
        """The cells with their replicates pooled (`Cell.pooled`), in the folder's order: what the
        report's rows, colours and series show."""
        return tuple(dict.fromkeys(cell.pooled() for cell in self.cells))

    def cell_ids(self) -> list[str]:
        """Every cell id a study of this folder may name: each cell's, and each pooled cell's
        (studies pool seeds; those made before they did name the seed cells)."""
        return list(dict.fromkeys([cell.id for cell in self.cells] + [cell.id for cell in self.pooled_cells]))

    @property
    def prompts(self) -> list[str]:
        return list(dict.fromkeys(o.prompt for o in self.outputs))

    def input_files(self) -> list[Path]:
        """Every file the folder was read from (a page written over one of them is refused)."""
        files = [self.root / MANIFEST_NAME, self.root / EVAL_NAME]
        for output in self.outputs:
            files += [output.image, sidecar_path(output.image), output.content]
        return files

    def groups(self) -> dict[tuple[Path, str], list[RunOutput]]:
        """Outputs per (content image, prompt), in first-seen order."""
        grouped: dict[tuple[Path, str], list[RunOutput]] = defaultdict(list)
        for output in self.outputs:
            grouped[(output.content, output.prompt)].append(output)
        return dict(grouped)


def load_results(root: Path, *, with_evaluation: bool = True) -> ResultFolder:
    """Every finished output listed in `root/manifest.jsonl`, with its sidecar and `eval.json` rows.

    Args:
        root: the result folder.
        with_evaluation: read `root/eval.json` too. Commands that do not show metrics (`study
            make`) or that write it anew (`eval DIR`) pass False, so a damaged one never blocks them.

    Raises:
        ConfigError: not a result folder, no finished output, or (when read) a damaged eval.json.

    Example:
        >>> import tempfile
        >>> try:
        ...     load_results(Path(tempfile.mkdtemp()))
        ... except ConfigError as error:
        ...     print(str(error).split(": ")[1])
        no manifest.jsonl (write the folder with clipopt batch or clipopt sweep)
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder")
    manifest = root / MANIFEST_NAME
    why = not_a_file(manifest)
    if why == "no such file":
        raise ConfigError(f"{root}: no {MANIFEST_NAME} (write the folder with clipopt batch or clipopt sweep)")
    if why is not None:
        raise ConfigError(f"{manifest}: {why}")
    notes: list[str] = []
    latest: dict[str, dict[str, Any]] = {}
    for record in read_records(manifest):
        if (record.get("record") == "job" and record.get("status") in ("done", "skipped")
                and isinstance(record.get("output"), str)):
            latest[PurePosixPath(record["output"]).as_posix()] = record
    raw = [item for item in (_read_output(root, rel, rec, notes) for rel, rec in latest.items()) if item]
    if not raw:
        raise ConfigError(f"{root}: {MANIFEST_NAME} lists no finished output that exists")
    outputs = _assign_cells(raw)
    cells = sorted({o.cell for o in outputs}, key=_cell_order)
    evaluation = read_evaluation(root / EVAL_NAME) if with_evaluation else None
    return ResultFolder(root=root, outputs=tuple(outputs), cells=tuple(cells), evaluation=evaluation,
                        notes=tuple(notes))


def _read_output(root: Path, relative: str, record: Mapping[str, Any], notes: list[str]) -> dict[str, Any] | None:
    image = (root / relative).resolve()
    if not image.is_relative_to(root.resolve()):
        notes.append(f"{relative}: outside the folder; left out")
        return None
    if not image.is_file():
        notes.append(f"{relative}: listed in the manifest but missing; left out")
        return None
    try:
        sidecar = read_record(sidecar_path(image))[0]
        listed = record.get("input")  # the manifest records it by absolute path
        content = Path(listed) if isinstance(listed, str) and Path(listed).is_absolute() \
            else recorded_input(sidecar, image)
    except InputImageError as exc:
        notes.append(f"{relative}: {_after_path(str(exc))}; left out")
        return None
    return {"image": image, "relative": relative, "content": content, "record": record, "sidecar": sidecar}


def _after_path(message: str) -> str:
    """A reader's message without the absolute path it starts with (the note names the output)."""
    return message.split(": ", 1)[-1]


def _numbers(mapping: Any) -> dict[str, float]:
    if not isinstance(mapping, dict):
        return {}
    return {str(k): float(v) for k, v in mapping.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _varied_keys(raw: Iterable[Mapping[str, Any]]) -> list[str]:
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for item in raw:
        sidecar = item["sidecar"]
        groups[(str(item["content"]), str(sidecar.get("prompt", item["record"].get("prompt"))))].append(
            sidecar.get("settings") if isinstance(sidecar.get("settings"), dict) else {})
    varied: set[str] = set()
    for settings in groups.values():
        keys = set().union(*settings)
        varied |= {k for k in keys if len({json.dumps(s.get(k), sort_keys=True) for s in settings}) > 1}
    return sorted(varied)


def _values_id(values: Iterable[tuple[str, Any]]) -> str:
    """The id of a cell that no sweep named: its values, as reports have always written them."""
    return clean_text(", ".join(f"{key}={format_value(value)}" for key, value in values))


def _recorded_labels(sweep: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, str] | None:
    labels = sweep.get("labels")
    if not isinstance(labels, dict) or set(labels) != set(values) or \
            not all(isinstance(v, str) and v and not Path(v).is_absolute() for v in labels.values()):
        return None  # absent (written before labels) or not what this toolkit writes: labelled anew
    return {str(k): clean_text(v) for k, v in labels.items()}


def _assign_cells(raw: list[dict[str, Any]]) -> list[RunOutput]:
    varied = _varied_keys(item for item in raw if not isinstance(item["sidecar"].get("sweep"), dict))
    cells: list[tuple[str, dict[str, Any], dict[str, str] | None]] = []  # id, raw values, recorded labels
    for item in raw:
        sidecar = item["sidecar"]
        settings = sidecar.get("settings") if isinstance(sidecar.get("settings"), dict) else {}
        sweep = sidecar.get("sweep")
        if isinstance(sweep, dict) and isinstance(sweep.get("values"), dict):
            plain = {str(k): v for k, v in sweep["values"].items()}
            cell_name = sweep.get("cell") or _values_id((k, _hashable(v)) for k, v in plain.items())
            cells.append((clean_text(cell_name), plain, _recorded_labels(sweep, plain)))
        else:
            plain = {key: settings.get(key) for key in varied}
            cells.append((_values_id((k, _hashable(v)) for k, v in plain.items()) if plain else DEFAULT_CELL,
                          plain, None))
    computed = cell_labels({name: list(plain.items()) for name, plain, labels in cells if labels is None})
    outputs = []
    for item, (name, plain, labels) in zip(raw, cells, strict=True):
        sidecar, record = item["sidecar"], item["record"]
        settings = sidecar.get("settings") if isinstance(sidecar.get("settings"), dict) else {}
        chosen = labels if labels is not None else computed.get(name, {})
        values = tuple((key, _hashable(value)) for key, value in plain.items())
        cell = Cell(name, values, tuple((key, chosen[key]) for key in plain if key in chosen))
        seed = sidecar.get("seed", record.get("seed"))
        history = sidecar.get("history") if isinstance(sidecar.get("history"), list) else []
        effective = str(sidecar.get("prompt", record.get("prompt", "")))
        declared, weights = _declared_prompt(sidecar.get("sweep"))
        outputs.append(RunOutput(
            image=item["image"], relative=item["relative"], content=item["content"],
            prompt=declared if declared is not None else effective,
            seed=seed if isinstance(seed, int) else None, settings=settings,
            losses=_numbers(sidecar.get("losses")), history=tuple(_numbers(step) for step in history),
            cell=cell, effective_prompt=effective, weights=weights))
    return outputs


def _declared_prompt(sweep: Any) -> tuple[str | None, tuple[float, ...] | None]:
    """A mix sweep's declared prompt and the weights its cell gave the parts (`sweep.prompt`), or
    (None, None) for any other output or a record that does not hold both."""
    entry = sweep.get("prompt") if isinstance(sweep, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("declared"), str):
        return None, None
    weights = entry.get("weights")
    if not isinstance(weights, list) or not all(isinstance(w, (int, float)) and not isinstance(w, bool)
                                                and math.isfinite(w) for w in weights):
        return None, None
    return entry["declared"], tuple(float(w) for w in weights)


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def _cell_order(cell: Cell) -> tuple[Any, ...]:
    """Numbers numerically, then everything else as text."""
    return (*((0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool)
              else (1, 0, format_value(value)) for _, value in cell.values), (2, 0, cell.id))
