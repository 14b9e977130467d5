"""Sweeping the weights of a prompt's parts: `--vary mix=...` and `--vary weights=...`.

- `mix=M1,M2,...` applies to two-part prompts: part 1 gets weight 1 − m, part 2 weight m
  (`mix=0,0.25,0.5,0.75,1`); each m lies in [0, 1].
- `weights=W1/W2/...,...` gives one weight per part, for prompts of any number of parts
  (`weights=0.2/0.3/0.5,0.5/0.3/0.2`).

A cell's weights replace the weights typed in the prompt (`StyleSpec.reweighted`); a part whose
weight is 0 is left out of that cell's run (a weight 0 typed in a prompt by hand stays refused).
The job keeps its declared prompt: its folder, its seed and its place in the manifest are those
of the prompt as given, so the cells of a mix sweep are comparable output by output. Each
output records what it ran with (`sweep.prompt`): the declared prompt, its parts, the weights
and the effective prompt. A prompt whose number of parts does not fit the weights is refused
before any work, naming the prompt.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.styles import MIX_SETTING, WEIGHTS_SETTING, StyleSpec

__all__ = ["PROMPT_SETTINGS", "cell_weights", "check_prompts", "parse_weight_value", "prompt_record",
           "weighted_prompt"]

MIX, WEIGHTS = MIX_SETTING, WEIGHTS_SETTING
PROMPT_SETTINGS = (MIX, WEIGHTS)  # --vary settings that are not StyleConfig fields: they change the prompt


def _number(setting: str, raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise ConfigError(f"--vary {setting}: {json.dumps(raw)} is not a number")
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"--vary {setting}: {str(raw).strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"--vary {setting}: {raw!r} is not a finite number")
    return value


def parse_weight_value(setting: str, raw: Any) -> Any:
    """One `--vary mix` value (a number in [0, 1]) or `--vary weights` value (``W1/W2/...``, or a
    JSON list of numbers) from the command line or a JSON list.

    Example:
        >>> parse_weight_value("mix", "0.25"), parse_weight_value("weights", "0.2/0.3/0.5")
        (0.25, (0.2, 0.3, 0.5))
    """
    if setting == MIX:
        value = _number(setting, raw)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"--vary mix: {value:g} is not in [0, 1] (part 1 gets 1 - m, part 2 gets m; "
                              f"for other weights use --vary weights=W1/W2)")
        return value
    members = raw if isinstance(raw, list) else str(raw).split("/") if isinstance(raw, str) else None
    if not members:
        raise ConfigError(f"--vary weights: {json.dumps(raw)} is not W1/W2/... (one weight per part)")
    weights = tuple(_number(setting, member) for member in members)
    if not any(weights):
        raise ConfigError(f"--vary weights: {'/'.join(f'{w:g}' for w in weights)} are all 0; a run needs a style")
    return weights


def cell_weights(values: Sequence[tuple[str, Any]]) -> tuple[float, ...] | None:
    """The weights a cell gives the parts of every prompt, or None when it changes no weight.

    Example:
        >>> cell_weights([("lambda_content", 50.0), ("mix", 0.25)])
        (0.75, 0.25)
    """
    named = dict(values)
    if MIX in named:
        return (1.0 - float(named[MIX]), float(named[MIX]))
    if WEIGHTS in named:
        return tuple(float(w) for w in named[WEIGHTS])
    return None


def weighted_prompt(prompt: str, weights: Sequence[float]) -> StyleSpec:
    """The prompt as a cell with `weights` runs it: its parts with these weights, parts of weight 0
    left out. ConfigError naming the prompt when the number of parts does not fit.

    Example:
        >>> str(weighted_prompt("starry night | ukiyo-e", (0.75, 0.25))), str(weighted_prompt("a | b", (1.0, 0.0)))
        ('starry night:0.75 | ukiyo-e:0.25', 'a')
    """
    try:
        return StyleSpec.parse(prompt).reweighted(weights)
    except ConfigError as exc:
        raise ConfigError(f"prompt {prompt!r}: {exc}") from None


def prompt_record(prompt: str, weights: Sequence[float]) -> dict[str, Any]:
    """What a job records of its prompt under a cell's weights (`sweep.prompt`).

    Example:
        >>> prompt_record("a | b", (1.0, 0.0))
        {'declared': 'a | b', 'parts': ['a', 'b'], 'weights': [1.0, 0.0], 'effective': 'a'}
    """
    declared = StyleSpec.parse(prompt)
    return {"declared": prompt, "parts": list(declared.texts), "weights": [float(w) for w in weights],
            "effective": str(weighted_prompt(prompt, weights))}


def check_prompts(prompts: Sequence[str], weight_sets: Sequence[tuple[float, ...]]) -> None:
    """Every prompt under every cell's weights, before any work: ConfigError (exit 2) naming the
    first prompt whose number of parts does not fit, or whose weights a cell makes invalid."""
    for weights in dict.fromkeys(weight_sets):
        for prompt in prompts:
            weighted_prompt(prompt, weights)
