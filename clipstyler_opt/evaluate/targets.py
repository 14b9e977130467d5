"""What to evaluate: output images, or result folders, with what each was made from.

An output's content image, prompt, source text, optimising backbones and style images come from
its provenance record (the JSON sidecar, else the metadata embedded in the image; see
`run.record.read_record`); `Overrides` replace them. A folder holding `manifest.jsonl` stands for
all its finished outputs (`report.load_results`), each named by its path below the folder; an
output of a folder whose content image is gone is left out with a note, while a single output
in that state is an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipstyler_opt.batch.manifest import MANIFEST_NAME
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ConfigError, InputImageError
from clipstyler_opt.core.styles import StyleImage, StyleSpec
from clipstyler_opt.evaluate.scorer import Record, optimiser_records
from clipstyler_opt.report.load import load_results
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


def _target(image: Path, label: str, record: Mapping[str, Any] | None, overrides: Overrides, *,
            root: Path | None = None, cell: str | None = None, content: Path | None = None,
            prompt: str | None = None) -> EvalTarget:
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
    return EvalTarget(
        image=image, label=label, root=root, content=content_path, prompt=prompt,
        style=StyleSpec.parse(prompt) if prompt.strip() else None, source_text=str(source_text),
        optimisers=optimiser_records(record) or None, style_images=styles, style_images_missing=missing,
        cell=cell, content_sha256=None if overrides.content else recorded_input.get("sha256"))


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
                                   prompt=output.effective_prompt or output.prompt))
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
