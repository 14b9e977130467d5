""""Add to an experiment plan": a studio result's settings written into an experiment plan.

The file is a plan in the format of `clipopt experiment run` (see clipstyler_opt.experiment.plan):
the result's image goes into `[content] images` (relative to the plan's folder), its prompt into
`[prompts] text`, its backbone into `[backbones]` (LABEL = SPEC), its seed into `[replicates]
seeds`, and each other setting into `[grid]` as a list of the values to try. Adding a result adds
each value to its list (once), so adding two results that differ in one setting gives a plan that
varies exactly that setting. A setting fixed in `[settings]` stays there while the result agrees
with it, and moves to the grid when it differs. Every other table and key of the plan is kept (the
file's comments are not). The whole plan is checked by the experiment's own parser before it is
written, atomically, through the file gate: a file that is not a plan is refused, never rewritten.

Example:
    >>> plan = merge_plan({}, image="inputs/cat.png", prompt="oil", backbone=("CLIP", "ViT-B-32-quickgelu/openai"),
    ...                   seed=0, settings={"steps": 100})
    >>> merge_plan(plan, image="inputs/cat.png", prompt="ink", backbone=("CLIP", "ViT-B-32-quickgelu/openai"),
    ...            seed=1, settings={"steps": 200})["grid"]
    {'steps': [100, 200]}
    >>> print(plan_toml({"prompts": {"text": ["oil"]}, "grid": {"keep_colors": [True]}}))
    # An experiment plan (clipopt experiment run), extended by clipopt studio.
    <BLANKLINE>
    [prompts]
    text = ["oil"]
    <BLANKLINE>
    [grid]
    keep_colors = [true]
    <BLANKLINE>
"""

from __future__ import annotations

import copy
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.files import ReadSet, read_text, write_atomic
from clipstyler_opt.experiment.plan import parse_plan

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["PLAN_NAME", "add_to_plan", "merge_plan", "plan_toml"]

PLAN_NAME = "studio-plan.toml"
MAX_PLAN_BYTES = 1 << 20
# (table, key) of the experiment plan that each of a result's listed values goes into
IMAGES, PROMPTS, SEEDS = ("content", "images"), ("prompts", "text"), ("replicates", "seeds")


def _add(values: list[Any], value: Any) -> list[Any]:
    return values if value in values else [*values, value]


def _table(plan: dict[str, Any], name: str) -> dict[str, Any]:
    table = plan.setdefault(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"experiment plan: '{name}' must be a table ([{name}])")
    return table


def _listed(plan: dict[str, Any], where: tuple[str, str], value: Any) -> None:
    table = _table(plan, where[0])
    current = table.get(where[1], [])
    current = [current] if isinstance(current, str) else current  # a single text is allowed there
    if not isinstance(current, list):
        raise ConfigError(f"experiment plan: '{'.'.join(where)}' must be a list")
    table[where[1]] = _add(current, value)


def backbone_label(label: str) -> str:
    """The studio's backbone name as a plan label (a plain word: letters, digits, '-', '_', '.').

    Example:
        >>> backbone_label("ViT-B-32/openai")
        'ViT-B-32-openai'
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "backbone"


def merge_plan(plan: dict[str, Any], *, image: str, prompt: str, backbone: tuple[str, str], seed: int,
               settings: dict[str, Any]) -> dict[str, Any]:
    """`plan` (an experiment plan's tables) with one result's values added (a new dict)."""
    merged = copy.deepcopy(plan)
    for where, item in ((IMAGES, image), (PROMPTS, prompt), (SEEDS, seed)):
        _listed(merged, where, item)
    fixed = merged.get("settings", {})
    if isinstance(fixed, dict) and "backbone" in fixed:
        raise ConfigError("experiment plan: [settings] fixes the backbone; move it into [backbones] first")
    backbones = _table(merged, "backbones")
    label, spec = backbone_label(backbone[0]), backbone[1]
    if backbones.get(label, spec) != spec:
        raise ConfigError(f"experiment plan: the label {label!r} already names backbone {backbones[label]!r}")
    backbones[label] = spec
    grid = _table(merged, "grid")
    for name, given in sorted(settings.items()):
        value = list(given) if isinstance(given, tuple) else given
        if isinstance(fixed, dict) and name in fixed:
            if fixed[name] == value:
                continue
            grid[name] = [fixed.pop(name), value]  # no longer the same in every cell: varied
        elif isinstance(grid.get(name), dict):
            if value not in grid[name].values():
                raise ConfigError(f"experiment plan: [grid.{name}] labels its values; add {value!r} there by hand")
        else:
            current = grid.get(name, [])
            grid[name] = _add(current if isinstance(current, list) else [current], value)
    if not grid:
        del merged["grid"]  # an empty [grid] is not a plan
    return merged


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"experiment plan: {value} cannot be written")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise ConfigError(f"experiment plan: cannot write {value!r}")


def _key(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() and name.isascii() else json.dumps(name)


def _table_lines(path: tuple[str, ...], table: dict[str, Any]) -> list[str]:
    subtables = {key: value for key, value in table.items() if isinstance(value, dict)}
    lines = ["", "[" + ".".join(map(_key, path)) + "]"]
    lines += [f"{_key(key)} = {_value(value)}" for key, value in table.items() if key not in subtables]
    for key, value in subtables.items():
        lines += _table_lines((*path, key), value)
    return lines


def plan_toml(plan: dict[str, Any]) -> str:
    """The plan as TOML: one table per dict (`[grid.FIELD]` for a nested one), in the plan's order."""
    lines = ["# An experiment plan (clipopt experiment run), extended by clipopt studio."]
    lines += [f"{_key(key)} = {_value(value)}" for key, value in plan.items() if not isinstance(value, dict)]
    for key, value in plan.items():
        if isinstance(value, dict):
            lines += _table_lines((key,), value)
    return "\n".join(lines) + "\n"


def add_to_plan(plan_path: Path, *, image: Path, prompt: str, backbone: tuple[str, str], seed: int,
                settings: dict[str, Any], reads: ReadSet | None = None) -> dict[str, Any]:
    """Read the plan at `plan_path` (if any), add one result, check the whole plan with the
    experiment's parser, write it back atomically; the plan's tables."""
    plan: dict[str, Any] = {}
    if plan_path.exists():
        text = read_text(plan_path, limit=MAX_PLAN_BYTES, what="experiment plan")
        try:
            plan = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"experiment plan {plan_path}: not TOML ({exc})") from None
    try:
        shown = image.relative_to(plan_path.parent).as_posix()
    except ValueError:
        shown = str(image)
    plan = merge_plan(plan, image=shown, prompt=prompt, backbone=backbone, seed=seed, settings=settings)
    text = plan_toml(plan)
    parse_plan(plan_path, text)  # PlanError (one line, FILE:LINE: KEY) when it is not a plan
    write_atomic(plan_path, lambda fh: fh.write(text.encode()), reads=reads)
    return plan
