"""The registry of loss terms: one module per term in the `terms/` sub-package, found
automatically. Each module declares `TERM = LossTerm(...)`: the term's name, where its weight
comes from, its label and number format in the progress display, and how it is built from the
run's context. `build_objective` builds every registered term and the progress bar shows every one.

Weights: the paper's four terms have their own `StyleConfig` fields (`lambda_patch`, ... with
`--lambda-*` options). A term added later declares no field (`weight_field=None`): its weight is
given by name, `--term-weight NAME=W` (a TOML `term_weight = ["NAME=W"]`), validated like the
others (finite, 0 or more), and it is 0 until given, so the paper's defaults and every settings
hash stay as they were. A `--term-weight` naming no registered term is refused before any weights
load (`check_term_weights`).

Terms are summed in the order of their weight fields in `StyleConfig` (patch, dir, content, tv),
then the named ones by name, so the objective's floating-point sum never depends on file names.

Adding a term is one module in `terms/` (and its row in the README's table of terms).

`contract_problems` lists every way an entry can be half-wired; the test suite requires none.

Example:
    >>> [term.name for term in registered_terms()][:4]  # the paper's, then any added later
    ['patch', 'dir', 'content', 'tv']
    >>> contract_problems(registered_terms())
    []
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clipstyler_opt.core.config import StyleConfig, term_weight_fields
from clipstyler_opt.core.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from clipstyler_opt.method.objective.base import ClipViews, Term

__all__ = ["LossTerm", "TermContext", "check_term_weights", "contract_problems", "registered_terms"]

TERMS_PACKAGE = "clipstyler_opt.method.objective.terms"


@dataclass(frozen=True)
class TermContext:
    """What a term may be built from, for one content image and one style target."""

    config: StyleConfig
    clip: ClipViews  # each member's views and references; shared by the CLIP terms
    vgg: nn.Module  # the content network (VGG19 feature layers)
    content: torch.Tensor  # the content image, (1, 3, H, W) in [0, 1]


@dataclass(frozen=True)
class LossTerm:
    """One registered loss term.

    Attributes:
        name: the key of its value in the loss dictionary, history and records.
        weight_field: the `StyleConfig` field holding its weight λ (role "term weight"); None for
            a term weighted by name with --term-weight NAME=W (0 until given).
        label: its name in the progress display.
        display_format: the format spec of its value there (e.g. ".3f").
        build: makes the term (a `Term` module) from the run's `TermContext`.
        follows_style_strength: --style-strength scales its weight (the content term).

    Example:
        >>> from clipstyler_opt.method.objective.terms.tv import TotalVariationTerm
        >>> entry = LossTerm("tv", "lambda_tv", "tv", ".3g", lambda context: TotalVariationTerm())
        >>> entry.weight(StyleConfig(lambda_tv=0.5)), entry.shown(0.0123456)
        (0.5, 'tv 0.0123')
    """

    name: str
    weight_field: str | None
    label: str
    display_format: str
    build: Callable[[TermContext], Term]
    follows_style_strength: bool = False

    def weight(self, config: StyleConfig) -> float:
        """λ for this term under `config`."""
        if self.weight_field is None:
            weight = config.named_term_weights().get(self.name, 0.0)
        else:
            weight = float(getattr(config, self.weight_field))
        if self.follows_style_strength:
            weight *= config.content_weight_scale()
        return weight

    def shown(self, value: float) -> str:
        """The term as the progress display shows it."""
        return f"{self.label} {value:{self.display_format}}"


def _field_order(term: LossTerm) -> tuple[int, str]:
    names = StyleConfig.field_names()
    field = term.weight_field
    return (names.index(field) if field is not None and field in names else len(names), term.name)


def check_term_weights(config: StyleConfig) -> None:
    """Refuse a --term-weight that names no registered term (before any weights load).

    Example:
        >>> try:
        ...     check_term_weights(StyleConfig(term_weight=("glow=1",)))
        ... except ConfigError as error:
        ...     print(str(error).split(" (")[0])
        term-weight glow=1: no loss term is named glow
    """
    named = sorted(term.name for term in registered_terms() if term.weight_field is None)
    for name, weight in config.named_term_weights().items():
        if name not in named:
            raise ConfigError(f"term-weight {name}={weight:g}: no loss term is named {name} (terms weighted by "
                              f"name: {', '.join(named) or 'none'})")


@functools.cache
def registered_terms() -> tuple[LossTerm, ...]:
    """Every term module's `TERM`, in the order of their weight fields. A module in `terms/`
    without a `TERM`, or an entry that breaks the contract, is a RuntimeError: the objective is
    never built with a half-wired term."""
    package = importlib.import_module(TERMS_PACKAGE)
    terms = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{TERMS_PACKAGE}.{info.name}")
        term = getattr(module, "TERM", None)
        if not isinstance(term, LossTerm):
            raise RuntimeError(f"{module.__name__} declares no TERM = LossTerm(...)")
        terms.append(term)
    ordered = tuple(sorted(terms, key=_field_order))
    problems = contract_problems(ordered)
    if problems:
        raise RuntimeError(f"loss-term registry: {problems[0]}")
    return ordered


def _weight_field_problems(term: LossTerm, config_class: type[StyleConfig]) -> list[str]:
    if term.weight_field not in config_class.field_names():
        return [f"{term.name}: its weight field {term.weight_field} is not a StyleConfig field"]
    meta = config_class.field_meta(term.weight_field)
    problems = []
    if meta["role"] != "term weight":
        problems.append(f"{term.name}: its weight field {term.weight_field} has the role {meta['role']!r}, "
                        "not 'term weight' (declare it with _term_weight)")
    if not meta["checks"]:
        problems.append(f"{term.name}: its weight field {term.weight_field} declares no validation")
    return problems


def contract_problems(terms: Sequence[LossTerm], config_class: type[StyleConfig] = StyleConfig) -> list[str]:
    """Every way `terms` are half-wired: a weight field that is missing, not of the term-weight
    role or without validation rules; a name given twice; a display format that cannot show a
    number; a term-weight field of `config_class` that no term uses, and a `lambda_*` field that
    is not a term weight.

    Example:
        >>> broken = LossTerm("glow", "lambda_glow", "glow", ".3f", lambda context: None)
        >>> contract_problems([*registered_terms(), broken])
        ['glow: its weight field lambda_glow is not a StyleConfig field']
    """
    problems: list[str] = []
    fields = config_class.field_names()
    weights = term_weight_fields(config_class)
    for term in terms:
        if term.weight_field is not None:
            problems += _weight_field_problems(term, config_class)
        elif not (term.name.replace("_", "").isalnum() and term.name.islower()):
            problems.append(f"{term.name}: weighted by name, but --term-weight NAME=W cannot name it (use a "
                            "lower-case word)")
        try:
            term.shown(1.0)
        except (TypeError, ValueError):
            problems.append(f"{term.name}: display format {term.display_format!r} cannot show a number")
    names = [term.name for term in terms]
    problems += [f"{name}: registered twice" for i, name in enumerate(names) if name in names[:i]]
    used = {term.weight_field for term in terms}
    problems += [f"{name}: a term-weight field that no registered term uses" for name in weights if name not in used]
    problems += [f"{name}: a lambda_* field that is not a term weight" for name in fields
                 if name.startswith("lambda_") and name not in weights]
    return problems
