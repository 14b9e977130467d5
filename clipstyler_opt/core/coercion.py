"""One conversion of option values into `StyleConfig` field types, for every source: the command
line, config files, `sweep --vary` and `run --from` records.

Two kinds of input:

- **typed values** (TOML, JSON records, JSON lists in `--vary`) follow the config file's strict
  rules: a bool is not a number, an integer is a valid float but a float is not an integer, text
  is not a number, a repeatable field takes an array or one item alone. JSON's null is accepted
  where the field is optional (None is its default). `value_mismatch` says what was expected,
  `typed_value` converts or raises.
- **text** (command-line words, `--vary` values) is read with the field's type by `text_value`:
  an integer in digits, any float syntax, a path that is not empty. `--vary` adds its own
  syntax on top (`none`, `yes`/`no`, `+` between the members of a tuple); see batch/grid.py.

A field whose metadata says `numeric_text` (`output_size`) is text that may also be given as an
integer: `1024` and `"1024"` are the same value.

Example:
    >>> typed_value("steps", 3), typed_value("lr", 1), typed_value("backbone", "A/b")
    (3, 1.0, ('A/b',))
    >>> value_mismatch("seed", 1.5), value_mismatch("contrast", "yes")
    ('an integer', 'true or false')
    >>> text_value("lr", "5e-4"), typed_value("output_size", 64)
    (0.0005, '64')
"""

from __future__ import annotations

import functools
import json
import re
import types
import typing
from pathlib import Path
from typing import Any

from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ConfigError

__all__ = ["field_hint", "shown_value", "text_value", "type_mismatch", "typed_value", "value_mismatch"]

_EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             Path: "a path (a string)"}
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(StyleConfig)


def field_hint(name: str) -> Any:
    """The declared type of field `name`. Example: `field_hint("steps")` is `int`."""
    return _hints()[name]


def _optional_parts(hint: Any) -> list[Any] | None:
    """The non-None members of a union hint, or None when `hint` is not a union."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return [option for option in typing.get_args(hint) if option is not type(None)]
    return None


def type_mismatch(value: Any, hint: Any, *, null_ok: bool = False) -> str | None:
    """None when a typed value fits the type `hint` under the strict rules, else what was expected.

    `null_ok`: None fits an optional hint (JSON has null; TOML does not). Hints other than
    bool, int, float, str, Path, their optionals and tuples are left to StyleConfig's checks.

    Example:
        >>> type_mismatch(600.7, int), type_mismatch(1, float), type_mismatch(["a", 3], tuple[str, ...])
        ('an integer', None, 'a string or an array of them')
    """
    options = _optional_parts(hint)
    if options is not None:
        if value is None:
            return None if null_ok else " or ".join(e for e in (type_mismatch(value, o) for o in options) if e)
        expected = [type_mismatch(value, option) for option in options]
        return None if None in expected else " or ".join(e for e in expected if e)
    if typing.get_origin(hint) in (tuple, list):  # a repeatable option: an array, or one item alone
        item = (typing.get_args(hint) or (Any,))[0]
        for member in value if isinstance(value, list) else [value]:
            wrong = type_mismatch(member, item)
            if wrong is not None:
                return f"{wrong} or an array of them"
        return None
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
    return None if fits else _EXPECTED[hint]


def value_mismatch(name: str, value: Any, *, null_ok: bool = False) -> str | None:
    """`type_mismatch` for field `name`, with its declared exceptions (`numeric_text`: an integer
    is accepted as text). Example: `value_mismatch("output_size", 1024)` is None."""
    if StyleConfig.field_meta(name).get("numeric_text") and isinstance(value, int) and not isinstance(value, bool):
        return None
    return type_mismatch(value, field_hint(name), null_ok=null_ok)


def _converted(value: Any, hint: Any) -> Any:
    """A value that fits `hint` (see `type_mismatch`) as the field's type: floats as float, a
    repeatable field as a tuple."""
    options = _optional_parts(hint)
    if options is not None:
        return None if value is None else _converted(value, options[0])
    if typing.get_origin(hint) in (tuple, list):
        item = (typing.get_args(hint) or (Any,))[0]
        return tuple(_converted(v, item) for v in (value if isinstance(value, list) else [value]))
    if hint is float:
        return float(value)
    return Path(value) if hint is Path else value


def typed_value(name: str, value: Any, *, null_ok: bool = True, label: str | None = None) -> Any:
    """A typed value (TOML, JSON) for field `name`, converted to the field's type under the strict
    rules; ConfigError `"<label> must be <type>, got <value> (<kind>)"` otherwise (`label`: the
    name as the user wrote it; default the option's name).

    Example:
        >>> typed_value("seed", 1.5)
        Traceback (most recent call last):
        ...
        clipstyler_opt.core.errors.ConfigError: seed must be an integer, got 1.5 (a float)
    """
    expected = value_mismatch(name, value, null_ok=null_ok)
    if expected is not None:
        raise ConfigError(f"{label or name.replace('_', '-')} must be {expected}, got {shown_value(value)}")
    if StyleConfig.field_meta(name).get("numeric_text") and value is not None:
        return str(value)
    return _converted(value, field_hint(name))


def text_value(name: str, text: str, hint: Any = None) -> Any:
    """A word of text (command line, `--vary`) as a value of field `name` (or of `hint`, one item
    of a repeatable field); ConfigError "'<text>' is not <type>" otherwise.

    Example:
        >>> text_value("steps", "+2"), text_value("lambda_tv", "5e1"), text_value("vgg_checkpoint", "w.pth")
        (2, 50.0, PosixPath('w.pth'))
    """
    hint = field_hint(name) if hint is None else hint
    options = _optional_parts(hint)
    if options is not None:
        hint = options[0]
    if hint is bool:
        raise ConfigError(f"{text!r} is not true or false")  # a flag on the command line; --vary reads its words
    if hint is int:
        if _INTEGER.fullmatch(text):
            return int(text)
        raise ConfigError(f"{text!r} is not an integer")
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{text!r} is not a number") from None
    if hint is Path:
        if text.strip():
            return Path(text)
        raise ConfigError(f"{text!r} is not a file name")
    return text


def shown_value(value: Any) -> str:
    """A typed value as written in the file, and its type: `600.7 (a float)`.

    Example:
        >>> shown_value([1, 2]), shown_value(True)
        ('[1, 2] (an array)', 'true (a boolean)')
    """
    kinds = ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"),
             (list, "an array"), (dict, "a table"), (type(None), "null"))
    kind = next((name for cls, name in kinds if isinstance(value, cls)), "a date/time")
    shown = str(value) if kind == "a date/time" else json.dumps(value, default=str, ensure_ascii=False)
    return f"{shown if len(shown) <= 60 else shown[:57] + '...'} ({kind})"
