"""The one place the report names a cell: its settings as `key=value`, every absolute path cut to
its file name, and labels that would read the same numbered (`-2`, `-3`...), so a legend, a
header and a table row never show a path and never show two cells as one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from clipstyler_opt.report.load import Cell
from clipstyler_opt.report.markup import format_value

__all__ = ["cell_labels", "short_value"]

# An absolute path (POSIX, or a Windows drive) not glued to a word before it: "file=/a/b/w.pt" -> "w.pt",
# while a backbone's "MODEL/TAG" stays as it is.
_ABSOLUTE = re.compile(r"(?<![\w.~-])(?:[A-Za-z]:)?[/\\](?:[^\s,;:=/\\]+[/\\])*([^\s,;:=/\\]*)")


def short_value(value: object) -> str:
    """A setting's value as a label shows it: `format_value`, absolute paths reduced to their names.

    Example:
        >>> short_value("ViT-B-32/openai:file=/data/weights/clip.safetensors"), short_value(0.5)
        ('ViT-B-32/openai:file=clip.safetensors', '0.5')
    """
    return _ABSOLUTE.sub(lambda match: match.group(1), format_value(value))


def _label(cell: Cell) -> str:
    if not cell.values:
        return short_value(cell.id)
    return ", ".join(f"{key}={short_value(value)}" for key, value in cell.values)


def cell_labels(cells: Iterable[Cell]) -> dict[Cell, str]:
    """Each cell's label, in the order given; repeats get numbered suffixes.

    Example:
        >>> cell_labels([Cell("a", (("ref", "/x/s.png"),)), Cell("b", (("ref", "/y/s.png"),))]).values()
        dict_values(['ref=s.png', 'ref=s.png-2'])
    """
    labels: dict[Cell, str] = {}
    used: set[str] = set()
    for cell in dict.fromkeys(cells):
        base = label = _label(cell)
        number = 1
        while label in used:
            number += 1
            label = f"{base}-{number}"
        used.add(label)
        labels[cell] = label
    return labels
