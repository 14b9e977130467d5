"""What to evaluate: output images, or result folders, with what each was made from.

An output's content image, prompt, source text, optimising backbones and style images come from
its provenance record (the JSON sidecar, else the metadata embedded in the image; see
`run.record.read_record`); `Overrides` replace them. A folder holding `manifest.jsonl` stands for
all its finished outputs (`report.load_results`), each named by its path below the folder; an
output of a folder whose content image is gone is left out with a note, while a single output
in that state is an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipstyler_opt.batch.manifest import MANIFEST_NAME
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ConfigError, InputImageError
from clipstyler_opt.core.labels import short_label
from clipstyler_opt.core.styles import StyleImage, StyleSpec, normalised_weights
from clipstyler_opt.evaluate.scorer import Record, optimiser_records
from clipstyler_opt.report.load import Cell, load_results
from clipstyler_opt.run.record import recorded_file
from clipstyler_opt.run.record import recorded_input as recorded_input_of

__all__ = ["EvalTarget", "Overrides", "collect_targets"]

DEFAULT_SOURCE_TEXT = StyleConfig().source_text


@dataclass(frozen=True)
class Overrides:
    """What the command line says instead of the metadata."""

    content: Path | None = None
    prompt: str | None = None
    source_text: str | None = None
    style_images: tuple[StyleImage, ...] = ()


@dataclass(frozen=True)
class EvalTarget:
    image: Path  # the output image
    label: str  # its name in the rows: the path below its result folder, else as given
    root: Path | None  # the result folder it belongs to
    content: Path
    prompt: str
    style: StyleSpec | None  # the prompt parsed as a style spec; None: style images only
    source_text: str
    optimisers: tuple[Record, ...] | None  # None: not recorded
    style_images: tuple[StyleImage, ...] = ()
    style_images_missing: str | None = None  # why recorded style images cannot be used
    cell: str | None = None
    content_sha256: str | None = None  # as recorded when the output was made
    parts: tuple[tuple[str, float], ...] = ()  # (text, normalised weight) to score one by one; () for one part
    parts_from: str | None = None  # "declared" (a sweep's declared parts) or "prompt"
    settings: tuple[tuple[str, Any], ...] = ()  # the cell's varied settings, as the sidecar records them
    setting_labels: tuple[tuple[str, str], ...] = ()  # their labels (core/labels.py), as the report shows them


def _read_record(path: Path) -> Mapping[str, Any] | None:
    from clipstyler_opt.run.record import read_record

    return read_record(path)[0]


def _style_images(record: Mapping[str, Any], image: Path) -> tuple[tuple[StyleImage, ...], str | None]:
    found, missing = [], []
    for entry in record.get("style_images") or ():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            continue
        sha = entry.get("sha256") if isinstance(entry.get("sha256"), str) else None
        path, weight = recorded_file(entry["path"], image, sha), entry.get("weight", 1.0)
        if path is None or isinstance(weight, bool) or not isinstance(weight, (int, float)):
            missing.append(entry["path"])
        else:
            found.append(StyleImage(path, float(weight)))
    if missing:  # a distance to part of the mix would be a distance to another target
        return (), f"recorded style image {', '.join(missing)} not found or without a weight (give --style-image)"
    return tuple(found), None


def _declared_parts(record: Mapping[str, Any]) -> tuple[tuple[str, float], ...] | None:
    """A sweep's declared parts and this cell's weights (`sweep.prompt.parts` and `.weights`), so
    a part a mix end left out of the run is still scored; None when the record has none."""
    sweep = record.get("sweep")
    prompt = sweep.get("prompt") if isinstance(sweep, dict) else None
    if not isinstance(prompt, dict):
        return None
    texts, weights = prompt.get("parts"), prompt.get("weights")
    if not isinstance(texts, list) or not isinstance(weights, list) or len(texts) != len(weights) or not texts:
        return None
    texts = [t.get("text") if isinstance(t, dict) else t for t in texts]
    if not all(isinstance(t, str) and t.strip() for t in texts) or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in weights):
        return None
    try:
        shares = normalised_weights([float(w) for w in weights])
    except ConfigError:  # weights that sum to 0
        return None
    return tuple(zip(texts, shares, strict=True))


def _parts(record: Mapping[str, Any], style: StyleSpec | None,
           overridden: bool) -> tuple[tuple[tuple[str, float], ...], str | None]:
    """What each output is scored against part by part: the declared parts of a sweep (unless
    --prompt replaces the prompt), else its prompt's parts with their normalised weights; none
    for a one-part prompt (its one part is the whole)."""
    declared = None if overridden else _declared_parts(record)
    if declared is not None:
        return (declared, "declared") if len(declared) > 1 else ((), None)
    if style is None or style.is_single:
        return (), None
    return tuple(zip(style.texts, normalised_weights(style.weights), strict=True)), "prompt"


def _cell_settings(record: Mapping[str, Any], keys: Sequence[str]) -> tuple[tuple[str, Any], ...]:
    """The varied settings as recorded: a sweep's `sweep.values`, else the record's settings."""
    sweep = record.get("sweep")
    if isinstance(sweep, dict) and isinstance(sweep.get("values"), dict):
        return tuple((str(k), v) for k, v in sweep["values"].items())
    settings = record["settings"] if isinstance(record.get("settings"), dict) else {}
    return tuple((key, settings.get(key)) for key in keys)


def _target(image: Path, label: str, record: Mapping[str, Any] | None, overrides: Overrides, *,
            root: Path | None = None, cell: str | None = None, content: Path | None = None,
            prompt: str | None = None, varied: Sequence[str] = (),
            setting_labels: tuple[tuple[str, str], ...] = ()) -> EvalTarget:
    record = record or {}
    prompt = overrides.prompt if overrides.prompt is not None else prompt or record.get("prompt")
    if not isinstance(prompt, str):
        raise ConfigError(f"{label}: no prompt recorded; pass --prompt")
    recorded_input: Mapping[str, Any] = record["input"] if isinstance(record.get("input"), dict) else {}
    if overrides.content is not None:
        content_path = overrides.content
    elif content is None and not recorded_input.get("source"):
        raise ConfigError(f"{label}: no content image recorded; pass --content FILE")
    else:
        try:  # a folder's outputs come with their content image already found (see load_results)
            content_path = content if content is not None else recorded_input_of(dict(record), image)
        except InputImageError as unusable:
            raise InputImageError(f"{label}: {str(unusable).split(': ', 1)[-1]}; pass --content FILE") from None
        if not content_path.is_file():
            raise InputImageError(f"{label}: its content image {content_path} is not found; pass --content FILE")
    settings: Mapping[str, Any] = record["settings"] if isinstance(record.get("settings"), dict) else {}
    source_text = overrides.source_text or settings.get("source_text") or DEFAULT_SOURCE_TEXT
    styles, missing = ((overrides.style_images, None) if overrides.style_images
                       else _style_images(record, image))
    style = StyleSpec.parse(prompt) if prompt.strip() else None
    parts, parts_from = _parts(record, style, overrides.prompt is not None)
    return EvalTarget(
        image=image, label=label, root=root, content=content_path, prompt=prompt,
        style=style, source_text=str(source_text),
        optimisers=optimiser_records(record) or None, style_images=styles, style_images_missing=missing,
        cell=cell, content_sha256=None if overrides.content else recorded_input.get("sha256"),
        parts=parts, parts_from=parts_from, settings=_cell_settings(record, varied), setting_labels=setting_labels)


def _labels(cell: Cell) -> tuple[tuple[str, str], ...]:
    """Each varied setting's label in `cell`, as the report names it (core/labels.py)."""
    named = dict(cell.labels)
    return tuple((key, named.get(key) or short_label(value, key)) for key, value in cell.values)


def _folder_targets(root: Path, overrides: Overrides, notes: list[str]) -> list[EvalTarget]:
    """Every finished output of a result folder; one whose content image is gone is left out and
    listed (as the report leaves out outputs whose files are missing)."""
    results = load_results(root, with_evaluation=False)  # eval writes it anew: a damaged one never blocks
    notes.extend(f"{root}: {note}" for note in results.notes)
    targets = []
    for output in results.outputs:
        try:
            targets.append(_target(output.image, output.relative, _read_record(output.image), overrides, root=root,
                                   cell=output.cell.id, content=output.content,
                                   prompt=output.effective_prompt or output.prompt,
                                   varied=[key for key, _ in output.cell.values],
                                   setting_labels=_labels(output.cell)))
        except InputImageError as missing:
            notes.append(f"{root}: {missing}; left out")
    if not targets:
        raise InputImageError(f"{root}: no output can be evaluated ({notes[-1]})")
    return targets


def _file_target(path: Path, overrides: Overrides) -> EvalTarget:
    from clipstyler_opt.core.files import not_a_file

    reason = not_a_file(path)  # a FIFO is named as one, not as missing
    if reason is not None:
        raise InputImageError(f"{path}: {reason}")
    try:
        record = _read_record(path)
    except InputImageError as missing:
        if overrides.content is None or overrides.prompt is None:
            raise InputImageError(f"{missing}; pass --content and --prompt") from None
        record = None
    return _target(path, str(path), record, overrides)


def collect_targets(paths: Sequence[Path], overrides: Overrides = Overrides()) -> tuple[list[EvalTarget], list[str]]:
    """The outputs to evaluate, in the order given, and notes on what was left out or unknown.

    Raises:
        ConfigError: a folder without a manifest, or no prompt or content image to be had.
        InputImageError: a missing output, or an output without metadata and no --content/--prompt.
    """
    targets: list[EvalTarget] = []
    notes: list[str] = []
    for path in paths:
        if path.is_dir():
            if not (path / MANIFEST_NAME).is_file():
                raise ConfigError(f"{path}: a folder without {MANIFEST_NAME}; give output images or a result "
                                  "folder written by clipopt batch")
            targets += _folder_targets(path, overrides, notes)
        else:
            targets.append(_file_target(path, overrides))
    seen: set[Path] = set()
    for target in targets:
        if target.image.resolve() in seen:
            raise ConfigError(f"{target.label}: given twice")
        seen.add(target.image.resolve())
    return targets, notes
