"""Config files: flat TOML files of options, type-checked against `StyleConfig` before use."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from clipstyler_opt.core.coercion import shown_value, value_mismatch
from clipstyler_opt.core.config import StyleConfig, unknown_setting_message
from clipstyler_opt.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

__all__ = ["load_toml"]

_MAX_CONFIG_BYTES = 1 << 20  # a file of options; anything larger is not one


def load_toml(path: Path, known_keys: tuple[str, ...]) -> dict[str, Any]:
    """Read a flat TOML file of options. Keys may use '-' or '_'. Unknown keys are an error,
    never ignored, and so is a value whose TOML type does not fit its StyleConfig field
    (`size = 600.7`, `contrast = 1`; the strict rules of core/coercion.py); keys that are not
    fields are left to the command.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     file = Path(folder) / "a.toml"
        ...     _ = file.write_text("steps = 3\\nlambda-tv = 1\\n")
        ...     load_toml(file, StyleConfig.field_names())
        {'steps': 3, 'lambda_tv': 1}
    """
    from clipstyler_opt.core.files import read_text

    text = read_text(path, limit=_MAX_CONFIG_BYTES, what="config file")  # a FIFO is an error, not a hang
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    fields = set(StyleConfig.field_names())
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in known_keys:
            raise ConfigError(f"{path}: {unknown_setting_message(name, known_keys)}")
        if name in values:
            raise ConfigError(f"{path}: {name.replace('_', '-')} is given twice (as '-' and '_' spellings)")
        expected = value_mismatch(name, value) if name in fields else None
        if expected is not None:
            raise ConfigError(f"{path}: {key} must be {expected}, got {shown_value(value)}")
        values[name] = value
    return values

