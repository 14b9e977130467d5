"""Labels: the short names that cells and their values carry in folders, reports, figures and tables.

There is one rule, used by every command that shows a varied setting:

- A value may carry an explicit label, written ``LABEL=VALUE`` where LABEL is a plain word
  (letters, digits, ``-``, ``_``, ``.``): ``CLIP=ViT-B-32-quickgelu/openai``. `split_label` reads it.
- An unlabelled value is labelled by its short form (`short_label`): a backbone by its
  MODEL/TAG, a file by its name (never a folder path), a number as it is usually written
  (50.0 -> ``50``), a boolean as ``on``/``off``, an ensemble's members joined by ``+``.
- Within one setting, two values whose labels collide are told apart by numbered suffixes
  (``ViT-B-32/openai``, ``ViT-B-32/openai-2``): explicit labels keep their names, short forms
  are numbered. One explicit label given to two different values is an error.
- No label ever holds an absolute path.

`cell_labels` applies the rule to a whole grid: cell id -> {setting -> label}.

Example:
    >>> cells = {"a": [("backbone", ("ViT-B-32/openai",), "CLIP")],
    ...          "b": [("backbone", ("ViT-B-16-SigLIP/webli",), None)]}
    >>> cell_labels(cells)
    {'a': {'backbone': 'CLIP'}, 'b': {'backbone': 'ViT-B-16-SigLIP/webli'}}
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from clipstyler_opt.core.errors import ConfigError

__all__ = ["LABEL_PATTERN", "Labelled", "cell_labels", "check_label", "setting_labels", "short_label",
           "split_label"]

LABEL_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
_LABELLED = re.compile(r"^(?P<label>[A-Za-z0-9_.-]+)=(?P<value>.*)$", re.DOTALL)
_BACKBONE_SETTINGS = ("backbone",)  # settings whose texts are backbone specs (see core/backbone_spec.py)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Labelled:
    """A value with the label it was given (`LABEL=VALUE`)."""

    label: str
    value: Any


def check_label(label: str, where: str = "label") -> str:
    """`label` when it is a plain word (letters, digits, '-', '_', '.'; not '.' or '..'), else ConfigError.

    Example:
        >>> check_label("SigLIP")
        'SigLIP'
    """
    if not LABEL_PATTERN.fullmatch(label) or label in (".", ".."):
        raise ConfigError(f"{where}: {label!r} is not a plain word (letters, digits, '-', '_', '.')")
    return label


def split_label(text: str) -> tuple[str | None, str]:
    """``LABEL=VALUE`` -> (LABEL, VALUE) when the part before the first '=' is a plain word;
    otherwise (None, text). A value that must keep such an '=' goes in a JSON list, which is
    taken literally.

    Example:
        >>> split_label("CLIP=ViT-B-32-quickgelu/openai"), split_label("ViT-B-32/openai:file=w.pt")
        (('CLIP', 'ViT-B-32-quickgelu/openai'), (None, 'ViT-B-32/openai:file=w.pt'))
    """
    match = _LABELLED.match(text.strip())
    if match is None or match["label"] in (".", ".."):
        return None, text
    return match["label"], match["value"]


def _number_text(value: float) -> str:
    return f"{value:.10g}"


def _file_name(text: str) -> str:
    """The last component of a path: a file's name, never a folder path."""
    name = PurePath(text.rstrip("/\\")).name
    return name or text.strip("/\\") or "root"


def _backbone_label(text: str) -> str:
    from clipstyler_opt.core.backbone_spec import LOCAL_DIR_PREFIX, BackboneSpec

    try:
        spec = BackboneSpec.parse(text)
    except ConfigError:
        return _file_name(text) if "/" in text or "\\" in text else text  # unreadable: never show a path
    if spec.source.startswith(LOCAL_DIR_PREFIX):
        label = _file_name(spec.model)
    elif spec.file is not None:
        label = f"{spec.source} ({Path(spec.file).stem})"
    else:
        label = f"{spec.source}/{spec.pretrained}" if spec.pretrained else spec.source
    return label if spec.weight == 1.0 else f"{label}:{spec.weight:g}"


def short_label(value: Any, setting: str | None = None) -> str:
    """The short form of one value of `setting` (see the module docstring); never an absolute path.

    Args:
        value: the value as the config holds it, or as JSON holds it (lists for tuples).
        setting: the field name; ``backbone`` values are read as backbone specs.

    Example:
        >>> short_label(50.0), short_label(True), short_label(None), short_label(Path("/data/styles/ref.png"))
        ('50', 'on', 'none', 'ref.png')
        >>> short_label(("ViT-B-32/openai:file=/w/clip.safetensors", "RN50/openai:0.5"), "backbone")
        'ViT-B-32 (clip)+RN50/openai:0.5'
    """
    if isinstance(value, Labelled):
        return value.label
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return _number_text(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (tuple, list)):
        return "+".join(short_label(item, setting) for item in value) or "none"
    if isinstance(value, PurePath):
        return _file_name(str(value))
    text = _CONTROL.sub("?", str(value))
    if setting in _BACKBONE_SETTINGS:
        return _backbone_label(text)
    return _file_name(text) if "/" in text or "\\" in text else text


def _key(value: Any) -> str:
    def plain(item: Any) -> Any:
        if isinstance(item, (tuple, list)):
            return [plain(member) for member in item]
        return str(item) if isinstance(item, PurePath) else item

    return json.dumps(plain(value), sort_keys=True, default=str)


def setting_labels(setting: str, entries: Sequence[tuple[Any, str | None]]) -> list[str]:
    """The label of each (value, explicit label or None) of one setting, in order.

    Equal values get equal labels. Explicit labels are kept as given; short forms that collide
    with another label get ``-2``, ``-3``... in order of first appearance.

    Raises:
        ConfigError: one explicit label given to two different values, or an explicit label
            that is not a plain word.

    Example:
        >>> setting_labels("style_image", [(Path("/a/x.png"), None), (Path("/b/x.png"), None), ("x.png", "x.png")])
        ['x.png-2', 'x.png-3', 'x.png']
    """
    explicit: dict[str, str] = {}  # label -> key of its value
    for value, label in entries:
        if label is None:
            continue
        check_label(label, f"{setting} label")
        other = explicit.setdefault(label, _key(value))
        if other != _key(value):
            raise ConfigError(f"{setting}: the label {label!r} is given to two different values; "
                              f"give each value its own label")
    chosen: dict[str, str] = {}  # key of a value -> its label
    for value, label in entries:
        if label is not None:
            chosen.setdefault(_key(value), label)
    taken = set(chosen.values())
    counts: dict[str, int] = {}
    for value, _ in entries:
        key = _key(value)
        if key in chosen:
            continue
        base = short_label(value, setting)
        candidate, number = base, counts.get(base, 1)
        while candidate in taken:
            number += 1
            candidate = f"{base}-{number}"
        counts[base] = number
        chosen[key] = candidate
        taken.add(candidate)
    return [chosen[_key(value)] for value, _ in entries]


Entry = tuple[str, Any] | tuple[str, Any, str | None]  # (setting, value[, explicit label])


def cell_labels(cells: Mapping[str, Iterable[Entry]]) -> dict[str, dict[str, str]]:
    """Labels for a whole grid: cell id -> {setting -> label}, the rule applied per setting over
    every cell (so a short form is numbered the same way wherever it appears).

    Args:
        cells: cell id -> its (setting, value) or (setting, value, explicit label or None) entries.

    Raises:
        ConfigError: as `setting_labels`.

    Example:
        >>> cell_labels({"x": [("backbone", "/w/a.pt")], "y": [("backbone", "/v/a.pt")], "z": [("steps", 2)]})
        {'x': {'backbone': 'a.pt'}, 'y': {'backbone': 'a.pt-2'}, 'z': {'steps': '2'}}
    """
    per_setting: dict[str, list[tuple[str, Any, str | None]]] = {}
    for cell, entries in cells.items():
        for entry in entries:
            setting, value = entry[0], entry[1]
            label = entry[2] if len(entry) > 2 else None
            if isinstance(value, Labelled):
                value, label = value.value, value.label
            per_setting.setdefault(setting, []).append((cell, value, label))
    result: dict[str, dict[str, str]] = {cell: {} for cell in cells}
    for setting, rows in per_setting.items():
        labels = setting_labels(setting, [(value, label) for _, value, label in rows])
        for (cell, _, _), label in zip(rows, labels, strict=True):
            result[cell][setting] = label
    return result
