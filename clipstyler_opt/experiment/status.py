"""`clipopt experiment status`: what a folder's plan has done, as lines of text."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["status_lines"]


def status_lines(record: Mapping[str, Any], plan_sha256: str | None, cells: Sequence[tuple[str, Sequence[str]]],
                 done: set[str], latest: Mapping[str, str], steps: Iterable[tuple[str, bool, bool]]) -> list[str]:
    """The status of an experiment folder.

    `plan_sha256`: the plan file's sha256 now (None when it cannot be read); `cells`: each
    cell's id and the output names of its jobs; `done`: the outputs done with the plan's
    settings; `latest`: each output's latest manifest status; `steps`: (name, up to date, ever
    run) for each step after the sweep.

    Example:
        >>> record = {"name": "demo", "cells": {"seed=0": {"labels": {"seed": "0"}}}, "runs": []}
        >>> for line in status_lines(record, "ab", [("seed=0", ["seed=0/ink/a.png", "seed=0/ink/b.png"])],
        ...                          {"seed=0/ink/a.png"}, {"seed=0/ink/b.png": "failed"}, [("eval", False, False)]):
        ...     print(line)
        experiment demo: 1 of 2 jobs done, 1 failed, 0 to do
          seed=0: 1 of 2 done, 1 failed
        eval: not run
    """
    total = sum(len(outputs) for _, outputs in cells)
    failed = {name for name, status in latest.items() if status == "failed" and name not in done}
    all_outputs = {name for _, outputs in cells for name in outputs}
    n_done, n_failed = len(done & all_outputs), len(failed & all_outputs)
    lines = [f"experiment {record.get('name')}: {n_done} of {total} jobs done, {n_failed} failed, "
             f"{total - n_done - n_failed} to do"]
    for cell, outputs in cells:
        cell_done, cell_failed = len(done & set(outputs)), len(failed & set(outputs))
        labels = (record.get("cells", {}).get(cell) or {}).get("labels") or {}
        named = ", ".join(f"{field}={label}" for field, label in labels.items() if label)
        if named.replace(", ", ",") == cell:
            named = ""  # the cell is named by its labels already
        lines.append(f"  {cell}{f' ({named})' if named else ''}: {cell_done} of {len(outputs)} done"
                     + (f", {cell_failed} failed" if cell_failed else ""))
    for name, fresh, ran in steps:
        lines.append(f"{name}: {'up to date' if fresh else 'out of date' if ran else 'not run'}")
    runs = record.get("runs") or []
    if runs:
        last = runs[-1]
        lines.append(f"last run: {' '.join(map(str, last.get('command', [])))} (started {last.get('started')}, "
                     f"{last.get('status')})")
        if plan_sha256 is not None and last.get("plan_sha256") != plan_sha256:
            lines.append("note: the plan file has changed since the last run (run it again to apply the change)")
    return lines
