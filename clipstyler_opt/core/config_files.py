"""Config files: flat TOML files of options, type-checked against `StyleConfig` before use."""

from __future__ import annotations

import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

from clipstyler_opt.core.config import StyleConfig, unknown_setting_message
from clipstyler_opt.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

__all__ = ["load_toml"]


def load_toml(path: Path, known_keys: tuple[str, ...]) -> dict[str, Any]:
    """Read a flat TOML file of options. Keys may use '-' or '_'. Unknown keys are an error,
    never ignored, and so is a value whose TOML type does not fit its StyleConfig field
    (`size = 600.7`, `contrast = 1`); keys that are not fields are left to the command."""
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    hints = typing.get_type_hints(StyleConfig)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in known_keys:
            raise ConfigError(f"{path}: {unknown_setting_message(name, known_keys)}")
        if name in values:
            raise ConfigError(f"{path}: {name.replace('_', '-')} is given twice (as '-' and '_' spellings)")
        expected = _toml_type_mismatch(value, hints[name]) if name in hints else None
        if expected is not None:
            raise ConfigError(f"{path}: {key} must be {expected}, got {_toml_shown(value)}")
        values[name] = value
    return values


_TOML_EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
                  Path: "a path (a string)"}


def _toml_type_mismatch(value: Any, hint: Any) -> str | None:
    """None when a TOML value fits a StyleConfig field's type hint, else the type expected.
    bool is not accepted as a number (TOML keeps them apart even though Python does not); an
    integer is a valid float. Hints other than these are left to StyleConfig's own checks."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):  # TOML has no null, so None never matches
        options = [option for option in typing.get_args(hint) if option is not type(None)]
        expected = [_toml_type_mismatch(value, option) for option in options]
        return None if None in expected else " or ".join(e for e in expected if e)
    if origin in (tuple, list):  # a repeatable option: an array, or one item alone
        item = (typing.get_args(hint) or (Any,))[0]
        items = value if isinstance(value, list) else [value]
        mismatch = next((e for e in (_toml_type_mismatch(v, item) for v in items) if e), None)
        return None if mismatch is None else f"{mismatch} or an array of them"
    if hint is bool:
        fits = isinstance(value, bool)
    elif hint is int:
        fits = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        fits = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif hint in (str, Path):
        fits = isinstance(value, str)
    else:
        return None
    return None if fits else _TOML_EXPECTED[hint]


def _toml_shown(value: Any) -> str:
    """A TOML value as written in the file, and its TOML type: `600.7 (a float)`."""
    kinds = ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"),
             (list, "an array"), (dict, "a table"))
    kind = next((name for cls, name in kinds if isinstance(value, cls)), "a date/time")
    shown = str(value) if kind == "a date/time" else json.dumps(value, default=str, ensure_ascii=False)
    return f"{shown if len(shown) <= 60 else shown[:57] + '...'} ({kind})"
