"""What the report calls a cell: its label (`Cell.label`, by the one rule of `core.labels`: explicit
labels, else short forms, never an absolute path), numbered (`-2`, `-3`...) where two cells would
read the same, so that a legend, a header and a table row never show two cells as one.
"""

from __future__ import annotations

from collections.abc import Iterable

from clipstyler_opt.core.labels import short_label
from clipstyler_opt.report.load import Cell

__all__ = ["cell_labels", "setting_label"]


def setting_label(cell: Cell, setting: str) -> str | None:
    """The label of the cell's value of `setting` (None when the cell does not set it).

    Example:
        >>> setting_label(Cell("a", (("style_image", "/x/s.png"),)), "style_image")
        's.png'
    """
    values, named = dict(cell.values), dict(cell.labels)
    if setting not in values:
        return None
    return named.get(setting) or short_label(values[setting], setting)


def cell_labels(cells: Iterable[Cell]) -> dict[Cell, str]:
    """Each cell's label, in the order given; repeats get numbered suffixes.

    Example:
        >>> cell_labels([Cell("a", (("seed", 1),)), Cell("b", (("seed", 1),), (("seed", "1"),))]).values()
        dict_values(['seed=1', 'seed=1-2'])
    """
    labels: dict[Cell, str] = {}
    used: set[str] = set()
    for cell in dict.fromkeys(cells):
        base = label = cell.label
        number = 1
        while label in used:
            number += 1
            label = f"{base}-{number}"
        used.add(label)
        labels[cell] = label
    return labels
