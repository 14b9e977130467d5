"""The shape of a provenance record: the JSON type of every field this version writes.

A record comes from a file anyone can edit, so `run.record.read_record` checks it here once, and
every reader (`info`, `eval`, `report`, `run --from`, a resume) can trust that `seed` is an
integer, `settings` an object, `history` a list of objects, and so on. Keys this version does
not know are not checked: a newer version may add them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["record_shape_problem"]

Check = Callable[[Any], bool]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _list_of(check: Check) -> Check:
    return lambda value: isinstance(value, list) and all(check(item) for item in value)


def _dict_of(check: Check) -> Check:
    return lambda value: isinstance(value, dict) and all(check(item) for item in value.values())


def _optional(check: Check) -> Check:
    return lambda value: value is None or check(value)


def _input_ok(value: Any) -> bool:
    return (isinstance(value, dict) and _optional(_is_str)(value.get("source"))
            and _optional(_is_str)(value.get("sha256"))
            and _optional(_list_of(_is_int))(value.get("size")))


_NUMBERS = _dict_of(_optional(_is_number))  # a loss may be recorded as null (JSON has no NaN)

# field -> (check, what it should be)
_FIELDS: dict[str, tuple[Check, str]] = {
    "tool": (_is_str, "a string"),
    "prompt": (_is_str, "a string"),
    "seed": (_is_int, "an integer"),
    "created": (_is_str, "a string"),
    "input": (_input_ok, "an object with source, sha256 and size"),
    "output_size": (_list_of(_is_int), "a list of integers"),
    "settings": (_is_dict, "an object"),
    "config": (_is_dict, "an object"),
    "settings_hash": (_is_str, "a string"),
    "device": (_is_str, "a string"),
    "precision": (_is_str, "a string"),
    "requested_precision": (_optional(_is_str), "a string"),
    "style": (_is_dict, "an object"),
    "style_images": (_list_of(_is_dict), "a list of objects"),
    "backbone": (_is_dict, "an object"),
    "backbones": (_list_of(_is_dict), "a list of objects"),
    "objective": (_is_dict, "an object"),
    "content_network": (_is_dict, "an object"),
    "losses": (_NUMBERS, "an object of numbers"),
    "history": (_list_of(_NUMBERS), "a list of objects of numbers"),
    "skipped_steps": (_list_of(_is_int), "a list of integers"),
    "warnings": (_list_of(_is_str), "a list of strings"),
    "timings": (_NUMBERS, "an object of numbers"),
    "versions": (_dict_of(_is_str), "an object of strings"),
    "interrupted_at_step": (_is_int, "an integer"),
    "render_interrupted": (lambda value: isinstance(value, bool), "true or false"),
    "preset": (_is_dict, "an object"),
    "early_stop": (_optional(_is_dict), "an object or null"),
    "early_stopped_at": (_optional(_is_int), "an integer or null"),
    "compile": (_is_dict, "an object"),
    "frozen_weights": (_is_dict, "an object"),
    "sweep": (_is_dict, "an object"),
}


def record_shape_problem(record: dict[str, Any]) -> str | None:
    """What is wrong with the types of a record's known fields, or None when nothing is.

    Example:
        >>> record_shape_problem({"prompt": "oil", "seed": 1, "history": [{"total": 2.5}]}) is None
        True
        >>> record_shape_problem({"prompt": "oil", "seed": "1"})
        'seed should be an integer, not a string'
    """
    for key, (check, wanted) in _FIELDS.items():
        if key in record and not check(record[key]):
            value = record[key]
            if (wanted.startswith("a list") and isinstance(value, list)) or ("object" in wanted and _is_dict(value)):
                return f"{key} should be {wanted}, and one of its items is not"
            return f"{key} should be {wanted}, not {_kind(value)}"
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__
