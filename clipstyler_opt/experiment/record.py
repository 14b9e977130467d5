"""The experiment folder's own record, `experiment.json`, beside the results it describes.

It keeps:

- `cells`: every cell the folder has been given, its values and the settings that make its
  images (`StyleConfig.output_settings`). A later plan that would give a finished cell other
  settings under the same name is refused (`redefined_cell`).
- `steps`: for eval, analyze, the study page and the report, a fingerprint of what the step
  was run on (the finished outputs and its command line); a step whose fingerprint is unchanged
  and whose file is still there is not run again.
- `runs`: one entry per `experiment run` or `experiment report`: the command line, the plan's
  sha256, the package versions, the machine, when it started and ended, and what each step did.

The plan itself is copied beside it as `plan.toml`. Everything is written through the file gate.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.files import ReadSet, read_text, write_bytes

__all__ = ["PLAN_COPY", "RECORD_NAME", "finished_cells", "merge_run", "new_record", "now", "outputs_fingerprint",
           "read_folder_record", "record_lock", "redefined_cell", "step_fingerprint", "write_folder_record"]

RECORD_NAME = "experiment.json"
PLAN_COPY = "plan.toml"
SCHEMA_VERSION = 1
_MAX_RECORD_BYTES = 64 << 20
_SHAPE = {"schema_version": int, "name": str, "cells": dict, "steps": dict, "runs": list}


def now() -> str:
    """The time in UTC, to the second, as ISO 8601.

    Example:
        >>> now().endswith("+00:00")
        True
    """
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_record(name: str) -> dict[str, Any]:
    """The record of a folder that has none yet.

    Example:
        >>> new_record("demo")["cells"]
        {}
    """
    return {"schema_version": SCHEMA_VERSION, "name": name, "cells": {}, "steps": {}, "runs": []}


def read_folder_record(folder: Path) -> dict[str, Any] | None:
    """The folder's `experiment.json`, or None when there is none; ConfigError (one line) when it
    is not one (garbage, another schema, a FIFO).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> read_folder_record(folder) is None
        True
        >>> _ = (folder / RECORD_NAME).write_text("[1]")
        >>> read_folder_record(folder)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        clipstyler_opt.core.errors.ConfigError: ...experiment.json: not an experiment record (not a JSON object); ...
    """
    path = folder / RECORD_NAME
    if not os.path.lexists(path):
        return None
    text = read_text(path, limit=_MAX_RECORD_BYTES, what="experiment record")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    problem = "not JSON" if data is None else _shape_problem(data)
    if problem:
        raise ConfigError(f"{path}: not an experiment record ({problem}); move it away or choose another -o")
    assert isinstance(data, dict)
    return data


def _shape_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "not a JSON object"
    for key, kind in _SHAPE.items():
        if not isinstance(data.get(key), kind):
            return f"{key} is missing or not a {kind.__name__}"
    if data["schema_version"] != SCHEMA_VERSION:
        return f"schema_version {data['schema_version']}, this version reads {SCHEMA_VERSION}"
    if not all(isinstance(cell, dict) and isinstance(cell.get("settings"), dict) for cell in data["cells"].values()):
        return "a cell without settings"
    if not all(isinstance(step, dict) for step in data["steps"].values()):
        return "a step that is not an object"
    return None


def write_folder_record(folder: Path, data: Mapping[str, Any], reads: ReadSet) -> Path:
    """Write `experiment.json` atomically (never onto a file the command reads).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> write_folder_record(folder, new_record("demo"), ReadSet()).name
        'experiment.json'
        >>> read_folder_record(folder)["name"]
        'demo'
    """
    text = json.dumps(data, indent=1, ensure_ascii=False, sort_keys=False) + "\n"
    return write_bytes(folder / RECORD_NAME, text.encode("utf-8"), reads=reads)


@contextmanager
def record_lock(folder: Path) -> Iterator[None]:
    """Held while one process reads, changes and writes `experiment.json`, so that the shards of
    one plan, which run side by side, never lose each other's entries. Waits (briefly) for the
    other holder; a file system without flock runs unlocked.

    Example:
        >>> import tempfile
        >>> with record_lock(Path(tempfile.mkdtemp())):
        ...     pass
    """
    from clipstyler_opt.core.files import exclusive_lock
    from clipstyler_opt.core.files.identity import LOCK_NAME

    with exclusive_lock(folder / f"{LOCK_NAME}.record"):
        yield


def merge_run(current: dict[str, Any], mine: Mapping[str, Any], entry: Mapping[str, Any],
              steps: Iterable[str]) -> dict[str, Any]:
    """`current` (the record on disk now) with what this process knows: its cells, the steps it
    ran (`steps`), its name and plan, and its run `entry` (matched by its id, else appended).

    Example:
        >>> disk = {**new_record("x"), "runs": [{"id": "a"}]}
        >>> merged = merge_run(disk, {**new_record("x"), "cells": {"c": {"settings": {}}}}, {"id": "b"}, [])
        >>> [run["id"] for run in merged["runs"]], list(merged["cells"])
        (['a', 'b'], ['c'])
    """
    merged = dict(current)
    merged["cells"] = {**current["cells"], **mine["cells"]}
    merged["steps"] = {**current["steps"], **{name: mine["steps"][name] for name in steps}}
    for key in ("name", "plan"):
        if key in mine:
            merged[key] = mine[key]
    runs = [run for run in current["runs"] if not (isinstance(run, dict) and run.get("id") == entry["id"])]
    merged["runs"] = [*runs, dict(entry)]
    return merged


def finished_cells(records: Iterable[Mapping[str, Any]]) -> set[str]:
    """The cells (first part of each output name) with at least one job done, from manifest records.

    Example:
        >>> sorted(finished_cells([{"record": "job", "status": "done", "output": "a=1/ink/x.png"},
        ...                        {"record": "job", "status": "failed", "output": "a=2/ink/x.png"}]))
        ['a=1']
    """
    return {str(r["output"]).split("/", 1)[0] for r in records
            if r.get("record") == "job" and r.get("status") in ("done", "skipped") and isinstance(r.get("output"), str)}


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def redefined_cell(recorded: Mapping[str, Any], planned: Mapping[str, Mapping[str, Any]],
                   finished: set[str]) -> str | None:
    """Why the plan would redefine a finished cell, or None: a cell of `planned` (id -> output
    settings) that `recorded` (experiment.json's cells) knows, that has finished outputs, and
    whose settings differ.

    Example:
        >>> old = {"steps=5": {"settings": {"steps": 5, "lr": 0.1}}}
        >>> redefined_cell(old, {"steps=5": {"steps": 5, "lr": 0.2}}, {"steps=5"})[:40]
        'cell steps=5: lr was 0.1 when its output'
        >>> redefined_cell(old, {"steps=5": {"steps": 5, "lr": 0.2}}, set()) is None
        True
    """
    for cell, settings in planned.items():
        known = recorded.get(cell)
        if known is None or cell not in finished:
            continue
        before, after = known["settings"], _plain(settings)
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                return (f"cell {cell}: {key} was {_short(before.get(key))} when its outputs were made, and the "
                        f"plan now makes it {_short(after.get(key))}; running it would redefine finished cells "
                        "under the same name. Restore the value, or give the plan another folder (-o)")
    return None


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def outputs_fingerprint(records: Iterable[Mapping[str, Any]], folder: Path) -> str:
    """What the finished outputs are: each done job's output name, settings hash and file
    size and time, from the latest record of each output. Another output, or an output made
    again, changes it.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> a = outputs_fingerprint([], folder)
        >>> a == outputs_fingerprint([{"record": "job", "status": "failed", "output": "x.png"}], folder)
        True
    """
    latest: dict[str, Mapping[str, Any]] = {}
    for record in records:
        if record.get("record") == "job" and isinstance(record.get("output"), str):
            latest[str(record["output"])] = record
    rows = []
    for output, record in sorted(latest.items()):
        if record.get("status") not in ("done", "skipped"):
            continue
        try:
            info = os.stat(folder / output)
        except OSError:
            continue
        rows.append([output, record.get("settings_hash"), info.st_size, info.st_mtime_ns])
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def step_fingerprint(outputs: str, words: Iterable[str], folder: Path, *upstream: str) -> str:
    """A step's fingerprint: the outputs' fingerprint, its command line (the folder written as
    DIR, so a moved folder is still up to date) and the fingerprints of the steps it reads.

    Example:
        >>> here = step_fingerprint("ab", ["eval", "/x/out"], Path("/x/out"))
        >>> here == step_fingerprint("ab", ["eval", "/y"], Path("/y"))
        True
    """
    where = os.fspath(folder)
    shown = ["DIR" if word == where else "DIR" + word[len(where):] if word.startswith(where + os.sep) else word
             for word in words]
    return hashlib.sha256(json.dumps([outputs, shown, list(upstream)]).encode()).hexdigest()[:16]
