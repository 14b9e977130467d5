"""Metadata fit to travel inside an image file: files are named by base name (their sha256 stays
beside them), never by the absolute paths that reveal user names and folder layouts."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["PATH_KEYS", "portable_metadata"]

# Keys whose string values name files, even when the path is relative.
PATH_KEYS = frozenset({"source", "weights", "path", "file", "input", "output"})
_PATH_KEY_ENDINGS = ("_path", "_file", "_dir", "_checkpoint")


def _is_path_key(key: Any) -> bool:
    return isinstance(key, str) and (key in PATH_KEYS or key.endswith(_PATH_KEY_ENDINGS))


def _base_name(path: str) -> str:
    return os.path.basename(path.rstrip(os.sep)) or path


def portable_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """A copy of `metadata` in which every absolute path, and every string under a key that
    names a file (`PATH_KEYS`, or ending in `_path`, `_file`, `_dir`, `_checkpoint`), is
    replaced by its base name; an absolute path found that way is also replaced wherever it
    occurs inside other strings (warnings, messages). Everything else is kept as it is."""
    found: dict[str, str] = {}

    def collect(value: Any, path_valued: bool) -> None:
        if isinstance(value, str):
            if os.path.isabs(value) or (path_valued and os.sep in value):
                found[value] = _base_name(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                collect(item, path_valued or _is_path_key(key))
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item, path_valued)

    collect(metadata, False)
    longest_first = sorted((p for p in found if os.path.isabs(p)), key=len, reverse=True)

    def rewrite(value: Any) -> Any:
        if isinstance(value, str):
            if value in found:
                return found[value]
            for path in longest_first:
                value = value.replace(path, found[path])
            return value
        if isinstance(value, dict):
            return {key: rewrite(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [rewrite(item) for item in value]
        return value

    return rewrite(metadata)
