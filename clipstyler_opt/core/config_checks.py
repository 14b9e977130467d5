"""Validation rules for configuration fields, declared in each field's metadata, and the check
that applies them: every bad value is a one-line `ConfigError` naming the option, raised before
any weights load.

A field lists its rules under the metadata key `checks`; `check_field` applies them in order
and reports the first one broken. Rules that relate several fields (a backbone named twice, a
style image that does not exist) stay explicit in `StyleConfig.__post_init__`.

Example:
    >>> check_field("steps", 3, {"checks": (at_least(1),)})
    >>> check_field("steps", 0, {"checks": (at_least(1),)})
    Traceback (most recent call last):
    ...
    clipstyler_opt.core.errors.ConfigError: steps must be at least 1, got 0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.formats import check_animation_path

__all__ = ["MAX_OUTPUT_SIZE", "MAX_SIZE", "TERM_WEIGHTS", "Rule", "animation_target", "at_least", "at_most",
           "check_field", "finite", "in_range", "non_negative", "one_of", "optional", "output_size_text",
           "parse_term_weights", "positive"]

MAX_SIZE = 8192
MAX_OUTPUT_SIZE = 32768


@dataclass(frozen=True)
class Rule:
    """One condition on a field's value. `text` completes "<option> must be ..."; `message`,
    when given, is the whole error instead (with `{option}` and `{value}` filled in). A value
    of the wrong type breaks the rule rather than crashing it.

    Example:
        >>> rule = Rule("even", lambda v: v % 2 == 0)
        >>> rule.holds(4), rule.holds(3), rule.holds("x")
        (True, False, False)
        >>> rule.error("size", 3)
        'size must be even, got 3'
    """

    text: str
    test: Callable[[Any], bool]
    message: str | None = None

    def holds(self, value: Any) -> bool:
        try:
            return bool(self.test(value))
        except (TypeError, ValueError):
            return False

    def error(self, name: str, value: Any) -> str:
        option = name.replace("_", "-")
        if self.message is not None:
            return self.message.format(option=option, value=value)
        return f"{option} must be {self.text}, got {value!r}"


def at_least(low: int) -> Rule:
    """`value >= low`. Example: `at_least(1).holds(0)` is False."""
    return Rule(f"at least {low}", lambda v: v >= low)


def at_most(high: int, message: str) -> Rule:
    """`value <= high`, reported with a whole `message`.

    Example:
        >>> at_most(8, "{option} {value} is too large").error("size", 9)
        'size 9 is too large'
    """
    return Rule(f"at most {high}", lambda v: v <= high, message)


def finite() -> Rule:
    """A finite number (not nan or ±inf). Example: `finite().holds(float("nan"))` is False."""
    return Rule("a finite number", lambda v: math.isfinite(v))


def positive() -> Rule:
    """`value > 0`. Example: `positive().holds(0)` is False."""
    return Rule("positive", lambda v: v > 0)


def non_negative(text: str = "0 or more") -> Rule:
    """`value >= 0`. Example: `non_negative().holds(-1)` is False."""
    return Rule(text, lambda v: v >= 0)


def in_range(low: float, high: float, *, upper_open: bool = False, note: str = "") -> Rule:
    """`low <= value <= high` (`< high` when `upper_open`); nan is outside every range.

    Example:
        >>> in_range(0, 1, upper_open=True, note="a fraction").error("x", 1.0)
        'x must be in [0, 1) (a fraction), got 1.0'
    """
    text = f"in [{low}, {high}{')' if upper_open else ']'}" + (f" ({note})" if note else "")
    if upper_open:
        return Rule(text, lambda v: math.isfinite(v) and low <= v < high)
    return Rule(text, lambda v: math.isfinite(v) and low <= v <= high)


def one_of(choices: Sequence[str]) -> Rule:
    """One of `choices`. Example: `one_of(("a", "b")).text` is 'one of a, b'."""
    return Rule(f"one of {', '.join(choices)}", lambda v: v in choices)


def optional(rule: Rule) -> Rule:
    """None (unset), or a value that meets `rule`. Example: `optional(positive()).holds(None)` is True."""
    return Rule(rule.text, lambda v: v is None or rule.test(v), rule.message)


def output_size_text(value: Any) -> str:
    """The canonical text of an --output-size value: 'full' or the long side in digits.

    Example:
        >>> output_size_text(" FULL "), output_size_text(1024)
        ('full', '1024')
    """
    return str(value).strip().lower()


def _valid_output_size(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    text = output_size_text(value)
    return text == "full" or (text.isdigit() and 16 <= int(text) <= MAX_OUTPUT_SIZE)


OUTPUT_SIZE = Rule(f"'full' or a long side between 16 and {MAX_OUTPUT_SIZE} pixels", _valid_output_size)


def animation_target(value: str) -> str:
    """The file name whose extension gives an --animation value's format (`gif` -> `x.gif`).

    Example:
        >>> animation_target("gif"), animation_target("out/a.webp")
        ('x.gif', 'out/a.webp')
    """
    return value if "." in Path(value).name else f"x.{value}"


def _valid_animation(value: Any) -> bool:
    check_animation_path(animation_target(value))  # raises its own one-line error
    return True


ANIMATION = Rule("a file or a format", _valid_animation)


def parse_term_weights(items: Sequence[str]) -> dict[str, float]:
    """--term-weight NAME=W values as {NAME: W}: NAME a plain lower-case word, W a finite number,
    0 or more, each NAME once.

    Example:
        >>> parse_term_weights(["brightness=0.5", "edges=2"])
        {'brightness': 0.5, 'edges': 2.0}
        >>> parse_term_weights(["brightness=-5"])
        Traceback (most recent call last):
        ...
        clipstyler_opt.core.errors.ConfigError: term-weight brightness=-5: the weight must be a finite number, 0 or more
    """
    weights: dict[str, float] = {}
    for item in items:
        name, separator, text = str(item).partition("=")
        name = name.strip()
        if not separator or not name.replace("_", "").isalnum() or not name.islower():
            raise ConfigError(f"term-weight {item!r}: expected NAME=WEIGHT with NAME a loss term's name "
                              "(e.g. brightness=0.5)")
        try:
            weight = float(text)
        except ValueError:
            weight = math.nan
        if not (math.isfinite(weight) and weight >= 0):
            raise ConfigError(f"term-weight {item}: the weight must be a finite number, 0 or more")
        if name in weights:
            raise ConfigError(f"term-weight {name}: given twice")
        weights[name] = weight
    return weights


TERM_WEIGHTS = Rule("NAME=WEIGHT items", lambda items: parse_term_weights(items) is not None)


def check_field(name: str, value: Any, meta: Mapping[str, Any]) -> None:
    """Apply the rules in `meta["checks"]` to `value`, in order; ConfigError for the first broken."""
    for rule in meta.get("checks", ()):
        if not rule.holds(value):
            raise ConfigError(rule.error(name, value))
