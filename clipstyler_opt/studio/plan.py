""""Add to an experiment plan": a studio result's settings written into a plan TOML file.

The plan names what an experiment varies: the content images, the prompts, the backbones (by
label), the seeds, and a grid of the other settings, each a list of the values to try. Adding a
result adds each of its values to its list (once), so adding two results that differ in one
setting gives a plan that varies exactly that setting. Images are named relative to the plan's
folder. The file is rewritten atomically through the file gate; keys it does not know are kept.

Example:
    >>> plan = merge_plan({}, image="inputs/cat.png", prompt="oil", backbone=("CLIP", "ViT-B-32-quickgelu/openai"),
    ...                   seed=0, settings={"steps": 100})
    >>> merge_plan(plan, image="inputs/cat.png", prompt="ink", backbone=("CLIP", "ViT-B-32-quickgelu/openai"),
    ...            seed=1, settings={"steps": 200})["grid"]
    {'steps': [100, 200]}
    >>> print(plan_toml({"prompts": ["oil"], "grid": {"keep_colors": [True]}}))
    # An experiment plan, extended by clipopt studio ("add to an experiment plan").
    prompts = ["oil"]
    <BLANKLINE>
    [grid]
    keep_colors = [true]
    <BLANKLINE>
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.files import ReadSet, read_text, write_atomic

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["PLAN_NAME", "add_to_plan", "merge_plan", "plan_toml"]

PLAN_NAME = "studio-plan.toml"
LIST_KEYS = ("images", "prompts", "seeds")
MAX_PLAN_BYTES = 1 << 20


def _add(values: list[Any], value: Any) -> list[Any]:
    return values if value in values else [*values, value]


def merge_plan(plan: dict[str, Any], *, image: str, prompt: str, backbone: tuple[str, str], seed: int,
               settings: dict[str, Any]) -> dict[str, Any]:
    """`plan` with one result's values added to its lists (a new dict)."""
    merged = {key: (dict(value) if isinstance(value, dict) else value) for key, value in plan.items()}
    for key, value in zip(LIST_KEYS, (image, prompt, seed), strict=True):
        current = merged.get(key, [])
        if not isinstance(current, list):
            raise ConfigError(f"experiment plan: '{key}' must be a list")
        merged[key] = _add(current, value)
    backbones = merged.setdefault("backbones", {})
    label, spec = backbone
    if backbones.get(label, spec) != spec:
        raise ConfigError(f"experiment plan: the label {label!r} already names backbone {backbones[label]!r}")
    backbones[label] = spec
    grid = merged.setdefault("grid", {})
    for name, value in sorted(settings.items()):
        grid[name] = _add(list(grid.get(name, [])), list(value) if isinstance(value, tuple) else value)
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


def plan_toml(plan: dict[str, Any]) -> str:
    """The plan as TOML: the lists first, then one table per dict (`backbones`, `grid`)."""
    lines = ['# An experiment plan, extended by clipopt studio ("add to an experiment plan").']
    tables = {key: value for key, value in plan.items() if isinstance(value, dict)}
    lines += [f"{_key(key)} = {_value(value)}" for key, value in plan.items() if key not in tables]
    for table, entries in tables.items():
        lines += ["", f"[{_key(table)}]"] + [f"{_key(name)} = {_value(value)}" for name, value in entries.items()]
    return "\n".join(lines) + "\n"


def add_to_plan(plan_path: Path, *, image: Path, prompt: str, backbone: tuple[str, str], seed: int,
                settings: dict[str, Any], reads: ReadSet | None = None) -> dict[str, Any]:
    """Read the plan at `plan_path` (if any), add one result, write it back atomically; the plan."""
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
    write_atomic(plan_path, lambda fh: fh.write(plan_toml(plan).encode()), reads=reads)
    return plan
