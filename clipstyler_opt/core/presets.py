"""Presets: named sets of `StyleConfig` values that trade time against quality.

`default` is the paper's method and sets nothing. The others are documented departures:

- `fast`: 100 steps with the learning rate halved after 50 (the paper's schedule at half the
  length) and 32 crops a step: about 0.37x the default's time per image. The working size is
  kept, since it changes the output's resolution and how large the texture is relative to the
  image, not just the time (`--size` still lowers it).
- `quality`: 128 crops a step: twice the patch samples, so the patch loss's gradient is
  estimated with about half the variance, at ~1.9x the time per step. Steps and size stay as in
  the paper (a larger size would also change the output's resolution; `--size` does that).

The one rule: a preset sets a field only when that field still has its dataclass default and was
not named explicitly. The command line and config files name every option they give (so
`--preset fast --steps 200` keeps 200 steps); in the Python API, fields passed with a value other
than their default count as given (`StyleConfig(preset="fast", steps=300)` keeps 300 steps), and
`StyleConfig(..., explicit_fields=...)` names them outright.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["DEFAULT_PRESET", "PRESETS", "PRESET_NAMES", "preset_values"]

DEFAULT_PRESET = "default"
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"steps": 100, "lr_decay_every": 50, "crops": 32},
    DEFAULT_PRESET: {},
    "quality": {"crops": 128},
}
PRESET_NAMES = tuple(PRESETS)


def preset_values(name: str, current: Mapping[str, Any], defaults: Mapping[str, Any],
                  explicit: Collection[str]) -> dict[str, Any]:
    """The values preset `name` sets: its table entries for fields not in `explicit` whose
    `current` value is still the `defaults` one.

    Example:
        >>> preset_values("fast", {"steps": 300, "crops": 64, "lr_decay_every": 100},
        ...               {"steps": 200, "crops": 64, "lr_decay_every": 100}, ())
        {'lr_decay_every': 50, 'crops': 32}
    """
    return {field: value for field, value in PRESETS[name].items()
            if field not in explicit and current[field] == defaults[field]}
