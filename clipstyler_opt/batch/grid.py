"""The grid of a sweep: `--vary FIELD=V1,V2,...` options -> cells, one per combination.

Values are read with their `StyleConfig` field's type: int, float, bool (true/false, yes/no,
on/off, 1/0), text, a path, or a tuple (`backbone`, `style_image`, `clip_model_config`; one
value per cell, members joined with `+`: `backbone=A+B` is a two-member ensemble). For an
optional field, `none` is the default (unset). A value that holds a comma is written as a
JSON list: `--vary 'backbone=["a,b","c"]'`; there strings are taken literally and a nested
list is a tuple (`[["A","B"],"C"]`: an ensemble A+B, then C).

A value may carry a label, `LABEL=VALUE` with LABEL a plain word (letters, digits, `-`, `_`,
`.`): `--vary backbone=CLIP=ViT-B-32-quickgelu/openai,SigLIP=ViT-B-16-SigLIP/webli`. In the
JSON list form values are taken literally (`'style_image=["ref=x.png"]'` is the file
`ref=x.png`). Every value's label (its own, else its short form) comes from the one rule of
core/labels.py and is recorded in the sidecar (`sweep.labels`).

A cell's id names its values, `lambda_content=50,backbone=ViT-B-16-openai~3f2a9c1e`: the
value text with every character outside `A-Z a-z 0-9 . _ + -` replaced by `-`; when that
changed anything, or the id is longer than 96 characters, it is cut and ends in `~` and a
hash of the values, so ids are unique, safe as one folder name, and depend on nothing but
their own values (adding a value to a grid renames no existing cell). A labelled value is
named by its label instead (`backbone=CLIP`): a new cell, while unlabelled values keep their ids.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipstyler_opt.batch.prompt_weights import PROMPT_SETTINGS, cell_weights, parse_weight_value
from clipstyler_opt.core.coercion import field_hint, text_value, type_mismatch, typed_value, value_mismatch
from clipstyler_opt.core.config import StyleConfig, unknown_setting_message
from clipstyler_opt.core.errors import ClipoptError, ConfigError
from clipstyler_opt.core.labels import Labelled, setting_labels, split_label

__all__ = ["MAX_CELL_ID", "SweepCell", "Variation", "cell_id", "expand_grid", "parse_vary", "plain_value",
           "value_text"]

MAX_CELL_ID = 96
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")

Variation = tuple[str, tuple[Any, ...]]  # (field name, its values in the order given)


@dataclass(frozen=True)
class SweepCell:
    """One combination of the varied settings, applied on top of a base configuration."""

    id: str
    values: tuple[tuple[str, Any], ...]  # (field, value) in --vary order
    labels: tuple[tuple[str, str], ...] = ()  # (field, label) of every value: its own, else its short form

    def apply(self, base: StyleConfig) -> StyleConfig:
        """`base` with this cell's settings; ConfigError naming the cell when they are invalid."""
        try:
            return base.replace(**dict(self.settings))
        except ClipoptError as exc:
            raise ConfigError(f"sweep cell {self.id}: {exc}") from None

    @property
    def settings(self) -> tuple[tuple[str, Any], ...]:
        """The values that are `StyleConfig` settings (all but `mix` and `weights`, which reweight the prompt)."""
        return tuple((name, value) for name, value in self.values if name not in PROMPT_SETTINGS)

    @property
    def weights(self) -> tuple[float, ...] | None:
        """The weights this cell gives each prompt's parts (`mix`, `weights`), or None."""
        return cell_weights(self.values)

    def record(self) -> dict[str, Any]:
        """What the sidecar's `sweep` entry holds: the cell, its values and their labels."""
        entry: dict[str, Any] = {"cell": self.id, "values": {name: plain_value(value) for name, value in self.values}}
        if self.labels:
            entry["labels"] = dict(self.labels)
        return entry


def plain_value(value: Any) -> Any:
    """A value as JSON holds it: tuples as lists, paths as text."""
    if isinstance(value, tuple):
        return [plain_value(item) for item in value]
    return str(value) if isinstance(value, Path) else value


def _varying_field(text: str) -> str:
    name = text.strip().replace("-", "_")
    if name in PROMPT_SETTINGS:
        return name
    if name not in StyleConfig.field_names():
        raise ConfigError(f"--vary {text.strip()}: {unknown_setting_message(name, StyleConfig.field_names())}")
    if not StyleConfig.field_meta(name)["output"]:
        raise ConfigError(f"--vary {name}: this setting does not change the image; give it once as "
                          f"--{name.replace('_', '-')}")
    return name


def _convert(name: str, raw: Any, hint: Any = None) -> Any:
    """`raw` (command-line text, or a JSON value) as a value of field `name` (or of `hint`, one
    member of a tuple): the shared coercion (core/coercion.py), plus --vary's own syntax: `none`,
    yes/no and on/off, `+` between the members of a tuple, and a nested JSON list as a tuple."""
    if name in PROMPT_SETTINGS:
        return parse_weight_value(name, raw)
    hint = field_hint(name) if hint is None else hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if raw is None or (isinstance(raw, str) and raw.strip().lower() == "none"):
            return None
        return _convert(name, raw, next(a for a in args if a is not type(None)))
    if origin is tuple:
        members = raw if isinstance(raw, list) else [raw] if not isinstance(raw, str) else \
            [part for part in raw.split("+") if part.strip()]
        return tuple(_convert(name, member, args[0]) for member in members)
    if isinstance(raw, str):
        if hint is bool:
            text = raw.strip().lower()
            return text in _TRUE if text in _TRUE or text in _FALSE else _refuse(name, raw, "true or false")
        try:
            value = text_value(name, raw, hint)
        except ConfigError as exc:
            raise ConfigError(f"--vary {name}: {exc}") from None
        return value
    # A typed JSON value (true, 3, 0.5): the config file's strict rules.
    if hint is str and value_mismatch(name, raw) is None:  # text that may be given as a number (output_size)
        return typed_value(name, raw)
    expected = type_mismatch(raw, hint)
    return _refuse(name, raw, expected) if expected is not None else float(raw) if hint is float else raw


def _refuse(name: str, raw: Any, wanted: str) -> Any:
    raise ConfigError(f"--vary {name}: {raw!r} is not {wanted}")


def _unlabelled(value: Any) -> Any:
    return value.value if isinstance(value, Labelled) else value


def _label_entries(values: Sequence[Any]) -> list[tuple[Any, str | None]]:
    return [(v.value, v.label) if isinstance(v, Labelled) else (v, None) for v in values]


def parse_vary(text: str) -> Variation:
    """`FIELD=V1,V2,...` (or `FIELD=[JSON list]`) -> (field name, parsed values); a value written
    `LABEL=VALUE` comes as `Labelled(LABEL, value)`.

    Example:
        >>> parse_vary("backbone=CLIP=ViT-B-32/openai,RN50/openai")
        ('backbone', (Labelled(label='CLIP', value=('ViT-B-32/openai',)), ('RN50/openai',)))
    """
    name_text, equals, values_text = text.partition("=")
    if not equals or not name_text.strip():
        raise ConfigError(f"--vary must look like FIELD=V1,V2 (e.g. lambda_content=50,150), got {text!r}")
    name = _varying_field(name_text)
    literal = values_text.strip().startswith("[")  # the JSON list form takes its values literally: no labels
    if literal:
        try:
            raw_values = json.loads(values_text)
        except ValueError as exc:
            raise ConfigError(f"--vary {name}: not a JSON list ({exc})") from None
        if not isinstance(raw_values, list):
            raise ConfigError(f"--vary {name}: not a JSON list")
    else:
        raw_values = values_text.split(",")
    if not raw_values:
        raise ConfigError(f"--vary {name}: no values")
    values = tuple(_convert(name, raw) if literal else _labelled(name, raw) for raw in raw_values)
    plain = [_unlabelled(v) for v in values]
    duplicated = [plain_value(v) for i, v in enumerate(plain) if v in plain[:i]]
    if duplicated:
        raise ConfigError(f"--vary {name}: the value {duplicated[0]!r} is given twice")
    setting_labels(name, _label_entries(values))  # one label given to two values exits here
    return name, values


def _labelled(name: str, raw: str) -> Any:
    """A command-line value, with its label when it is written `LABEL=VALUE`."""
    label, rest = split_label(raw)
    if label is None:
        return _convert(name, raw)
    if not rest.strip():
        raise ConfigError(f"--vary {name}: the label {label!r} has no value after '='")
    return Labelled(label, _convert(name, rest))


def value_text(value: Any) -> str:
    """A typed value as `--vary` text reads it back (tuples joined with `+`).

    Example:
        >>> value_text(50.0), value_text(("A/b", "C/d")), value_text(None), value_text(True)
        ('50', 'A/b+C/d', 'none', 'true')
    """
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, tuple):
        return "+".join(value_text(item) for item in value)
    return str(value)


def cell_id(values: Sequence[tuple[str, Any]]) -> str:
    """A readable folder name for one cell, unique per combination of values (see the module docstring);
    a `Labelled` value is named by its label.

    Example:
        >>> cell_id([("lambda_content", 50.0), ("backbone", Labelled("CLIP", ("ViT-B-32/openai",)))])
        'lambda_content=50,backbone=CLIP'
    """
    parts = [(name, value.label if isinstance(value, Labelled) else value_text(value)) for name, value in values]
    readable = ",".join(f"{name}={_UNSAFE.sub('-', text)}" for name, text in parts)
    exact = ",".join(f"{name}={text}" for name, text in parts)
    if readable == exact and len(readable) <= MAX_CELL_ID:
        return readable
    digest = hashlib.sha256(json.dumps([[n, plain_value(_unlabelled(v))] for n, v in values]).encode()
                            ).hexdigest()[:8]
    return f"{readable[:MAX_CELL_ID - 9].rstrip('-,=')}~{digest}"


def expand_grid(base: StyleConfig, variations: Sequence[Variation]) -> list[SweepCell]:
    """The cartesian product of the variations, in the order given (the last varies fastest).
    Every cell is checked against `base` here; ConfigError names the first bad one."""
    names = [name for name, _ in variations]
    repeated = [name for i, name in enumerate(names) if name in names[:i]]
    if repeated:
        raise ConfigError(f"--vary {repeated[0]} is given twice; list all its values in one --vary")
    if not variations:
        raise ConfigError("nothing to sweep: give --vary FIELD=V1,V2 (repeatable)")
    if all(name in names for name in PROMPT_SETTINGS):
        raise ConfigError("--vary mix and --vary weights both set the prompts' weights; give one of them")
    labels = [setting_labels(name, _label_entries(values)) for name, values in variations]
    cells: list[SweepCell] = []
    by_id: dict[str, SweepCell] = {}
    for indices in itertools.product(*(range(len(values)) for _, values in variations)):
        given = tuple((name, values[i]) for (name, values), i in zip(variations, indices, strict=True))
        cell_labels = tuple((name, labels[axis][i]) for axis, (name, i) in enumerate(zip(names, indices, strict=True)))
        cell = SweepCell(cell_id(given), tuple((name, _unlabelled(value)) for name, value in given), cell_labels)
        other = by_id.setdefault(cell.id, cell)
        if other is not cell:  # ids are never renamed (folders made before must resume), so refuse
            name, first, second = next((n, plain_value(a), plain_value(b)) for (n, a), (_, b)
                                       in zip(other.values, cell.values, strict=True) if a != b)
            raise ConfigError(f"--vary {name}: the values {json.dumps(first)} and {json.dumps(second)} would share "
                              f"the cell folder {cell.id!r}; write one of them differently (e.g. a path as ./NAME)")
        cell.apply(base)
        cells.append(cell)
    return cells
