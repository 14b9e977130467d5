"""Where each key of a TOML file is written, so that an error can name FILE:LINE.

Python's TOML reader gives values without positions; `key_lines` reads the text once more,
line by line, and notes the line of every table header and every `key = value`, under its
dotted path (`grid.lambda_content.low`). Lines inside multi-line strings are skipped; a value
inside a multi-line array is located at its key's line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["key_lines", "key_occurrences", "line_of"]

_BARE = r"[A-Za-z0-9_-]+"
_BASIC = r'"(?:[^"\\]|\\.)*"'
_LITERAL = r"'[^']*'"
_KEY = rf"(?:{_BARE}|{_BASIC}|{_LITERAL})"
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=")
_PART = re.compile(_KEY)


def _parts(dotted: str) -> list[str]:
    parts = []
    for match in _PART.finditer(dotted):
        text = match.group(0)
        parts.append(text[1:-1] if text[:1] in "\"'" else text)
    return parts


def key_occurrences(text: str) -> Iterator[tuple[tuple[str, ...], int]]:
    """Every table header and `key = value` of a TOML document as (dotted path, 1-based line),
    in order, repeats included (a key given twice is found twice).

    Example:
        >>> list(key_occurrences('[grid.lr]\\nlow = 1\\nlow = 2\\n'))[-2:]
        [(('grid', 'lr', 'low'), 2), (('grid', 'lr', 'low'), 3)]
    """
    table: tuple[str, ...] = ()
    in_string: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string is not None:
            if line.count(in_string) % 2 == 1:
                in_string = None
            continue
        header = _HEADER.match(line)
        if header:
            table = tuple(_parts(header.group(1)))
            yield table, number
            continue
        assign = _ASSIGN.match(line)
        if assign:
            yield table + tuple(_parts(assign.group(1))), number
            rest = line[assign.end():]
            for quotes in ('"""', "'''"):
                if rest.count(quotes) % 2 == 1:
                    in_string = quotes


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Every table and key of a TOML document -> its 1-based line (the first, if repeated); the
    tables a dotted key or header implies get the same line.

    Example:
        >>> lines = key_lines('name = "x"\\n\\n[grid.lr]\\nlow = 1e-4\\n"a b" = 2\\n')
        >>> lines[("name",)], lines[("grid", "lr")], lines[("grid", "lr", "low")], lines[("grid", "lr", "a b")]
        (1, 3, 4, 5)
    """
    found: dict[tuple[str, ...], int] = {}
    for key, number in key_occurrences(text):
        for depth in range(1, len(key) + 1):
            found.setdefault(key[:depth], number)
    return found


def line_of(lines: dict[tuple[str, ...], int], key: tuple[str, ...]) -> int | None:
    """The line of `key`, else of its closest enclosing table that has one, else None.

    Example:
        >>> line_of({("grid",): 3, ("grid", "lr"): 4}, ("grid", "lr", "low"))
        4
    """
    for depth in range(len(key), 0, -1):
        if key[:depth] in lines:
            return lines[key[:depth]]
    return None
