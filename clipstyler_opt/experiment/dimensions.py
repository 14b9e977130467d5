"""The varied settings of a plan: `[backbones]`, `[grid]` and `[replicates]`, one `Dimension`
each, and how each one is given to `clipopt sweep --vary`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from clipstyler_opt.core.coercion import shown_value, value_mismatch
from clipstyler_opt.core.config import StyleConfig, unknown_setting_message
from clipstyler_opt.core.errors import ConfigError

__all__ = ["Dimension", "PlanReader", "read_dimensions"]


class PlanReader(Protocol):
    """What reading the dimensions needs from the plan's reader (plan.py)."""

    raw: dict[str, Any]

    def fail(self, key: tuple[str, ...], message: str) -> ConfigError: ...

    def table(self, name: str) -> dict[str, Any]: ...

    def closed(self, name: str) -> dict[str, Any]: ...

    def field_paths(self, key: tuple[str, ...], name: str, value: Any) -> Any: ...


@dataclass(frozen=True)
class Dimension:
    """One varied setting: its field and its (label, value) pairs, label None when not given."""

    field: str
    values: tuple[tuple[str | None, Any], ...]
    key: tuple[str, ...]  # where the plan declares it, e.g. ("grid", "lambda_content")

    def vary(self) -> str:
        """The `--vary` value: a JSON list (values taken literally) when no value has a label,
        else `LABEL=VALUE` texts joined by commas (so that the labels name the cells).

        Example:
            >>> Dimension("lambda_content", ((None, 50.0), (None, 150.0)), ("grid",)).vary()
            'lambda_content=[50.0, 150.0]'
            >>> Dimension("lambda_content", (("low", 50.0), (None, 150.0)), ("grid",)).vary()
            'lambda_content=low=50,150'
        """
        from clipstyler_opt.batch.grid import plain_value, value_text

        if all(label is None for label, _ in self.values):
            return f"{self.field}=" + json.dumps([plain_value(value) for _, value in self.values])
        def text(value: Any) -> str:  # `weights` values are W1/W2/..., every other tuple joins with +
            return "/".join(map(value_text, value)) if self.field == "weights" else value_text(value)

        texts = [f"{label}={text(value)}" if label else text(value) for label, value in self.values]
        return f"{self.field}=" + ",".join(texts)


def read_dimensions(reader: PlanReader, settings: dict[str, Any]) -> tuple[Dimension, ...]:
    """The varied settings: the backbones, the grid in order, the seeds last; PlanError at the
    first problem.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from clipstyler_opt.experiment.plan import read_plan
        >>> path = Path(tempfile.mkdtemp()) / "plan.toml"
        >>> _ = path.write_text('[content]\\nimages = ["."]\\n[prompts]\\ntext = ["ink"]\\n'
        ...                     '[backbones]\\nCLIP = "ViT-B-32/openai"\\n[replicates]\\nseeds = [0, 1]\\n')
        >>> [(d.field, d.values) for d in read_plan(path).dimensions]
        [('backbone', (('CLIP', ('ViT-B-32/openai',)),)), ('seed', ((None, 0), (None, 1)))]
    """
    dimensions = []
    backbones = reader.table("backbones")
    if "backbones" in reader.raw:
        if "backbone" in settings:
            raise reader.fail(("settings", "backbone"), "the backbone is varied in [backbones]; give it there")
        if not backbones:
            raise reader.fail(("backbones",), "is empty: give LABEL = SPEC lines")
        dimensions.append(_dimension(reader, ("backbones",), "backbone",
                                         [(label, value) for label, value in backbones.items()]))
    for key, value in reader.table("grid").items():
        name = key.replace("-", "_")
        where = ("grid", key)
        if name in ("backbone", "seed"):
            raise reader.fail(where, "vary it in [backbones]" if name == "backbone" else
                            "give the seeds as [replicates] seeds = [...]")
        if name in settings:
            raise reader.fail(where, "is both fixed in [settings] and varied in [grid]; give it once")
        if isinstance(value, dict):
            pairs: list[tuple[str | None, Any]] = list(value.items())
        elif isinstance(value, list):
            pairs = [(None, item) for item in value]
        else:
            raise reader.fail(where, f"must be an array of values or a table of LABEL = VALUE, got "
                                   f"{shown_value(value)}")
        if not pairs:
            raise reader.fail(where, "is empty: give at least one value")
        dimensions.append(_dimension(reader, where, name, pairs))
    if "grid" in reader.raw and not reader.table("grid"):
        raise reader.fail(("grid",), "is empty: give FIELD = [values] or [grid.FIELD] tables")
    seeds = reader.closed("replicates").get("seeds", [StyleConfig().seed])
    where = ("replicates", "seeds")
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise reader.fail(where, f"must be an array of integers, got {shown_value(seeds)}")
    if not seeds:
        raise reader.fail(where, "is empty: give at least one seed")
    dimensions.append(_dimension(reader, where, "seed", [(None, seed) for seed in seeds]))
    return tuple(dimensions)

def _dimension(reader: PlanReader, key: tuple[str, ...], name: str, pairs: list[tuple[str | None, Any]]
               ) -> Dimension:
    """One varied setting, its values typed and checked by `--vary`'s own reading."""
    from clipstyler_opt.batch.grid import parse_vary, plain_value
    from clipstyler_opt.batch.prompt_weights import PROMPT_SETTINGS
    from clipstyler_opt.core.labels import Labelled, check_label

    known = (*StyleConfig.field_names(), *PROMPT_SETTINGS)
    if name not in known:
        raise reader.fail(key, unknown_setting_message(name, known))
    checked: list[tuple[str | None, Any]] = []
    for label, value in pairs:
        where = key + ((label,) if label is not None else ())
        if label is not None:
            try:
                check_label(label)
            except ConfigError as exc:
                raise reader.fail(where, str(exc)) from None
        if name in PROMPT_SETTINGS:  # not a setting: a prompt's weights, read by --vary itself
            checked.append((label, value))
            continue
        expected = value_mismatch(name, value)
        if expected is not None:
            raise reader.fail(where, f"must be {expected}, got {shown_value(value)}")
        checked.append((label, reader.field_paths(where, name, value)))
    try:  # --vary's own reading: the field may vary, each value fits, no value twice
        _, typed = parse_vary(f"{name}=" + json.dumps([plain_value(v) for _, v in checked]))
        dimension = Dimension(name, tuple((label, value) for (label, _), value
                                          in zip(checked, typed, strict=True)), key)
        _, read = parse_vary(dimension.vary())
    except ConfigError as exc:
        raise reader.fail(key, str(exc).removeprefix(f"--vary {name}: ")) from None
    for (label, value), again in zip(dimension.values, read, strict=True):
        if (label, value) != ((again.label, again.value) if isinstance(again, Labelled) else (None, again)):
            raise reader.fail(key, f"the value {plain_value(value)!r} cannot stand beside labelled values (it "
                                 "holds a ',' or reads as LABEL=VALUE); label none of this setting's values")
    return dimension
