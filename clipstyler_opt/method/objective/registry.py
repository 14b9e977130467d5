"""The registry of loss terms: one module per term in the `terms/` sub-package, found
automatically. Each module declares `TERM = LossTerm(...)`: the term's name, the `StyleConfig`
field that weights it, its label and number format in the progress display, and how it is built
from the run's context. `build_objective` builds every registered term, the progress bar shows
every one, and the weight's validation comes from its field's metadata.

Terms are summed in the order of their weight fields in `StyleConfig` (patch, dir, content, tv),
so the objective's floating-point sum never depends on file names.

Adding a term is one module in `terms/` and one line in `StyleConfig`, its weight:

    lambda_brightness: float = _term_weight(0.0, "Weight of the brightness term.", added_in="0.2")

`contract_problems` lists every way an entry can be half-wired; the test suite requires none.

Example:
    >>> [term.name for term in registered_terms()]
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

if TYPE_CHECKING:
    import torch
    from torch import nn

    from clipstyler_opt.method.objective.base import ClipViews, Term

__all__ = ["LossTerm", "TermContext", "contract_problems", "registered_terms"]

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
        weight_field: the `StyleConfig` field holding its weight λ (role "term weight").
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
    weight_field: str
    label: str
    display_format: str
    build: Callable[[TermContext], Term]
    follows_style_strength: bool = False

    def weight(self, config: StyleConfig) -> float:
        """λ for this term under `config`."""
        weight = float(getattr(config, self.weight_field))
        if self.follows_style_strength:
            weight *= config.content_weight_scale()
        return weight

    def shown(self, value: float) -> str:
        """The term as the progress display shows it."""
        return f"{self.label} {value:{self.display_format}}"


def _field_order(term: LossTerm) -> tuple[int, str]:
    names = StyleConfig.field_names()
    return (names.index(term.weight_field) if term.weight_field in names else len(names), term.name)


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
    problems = []
    fields = config_class.field_names()
    weights = term_weight_fields(config_class)
    for term in terms:
        if term.weight_field not in fields:
            problems.append(f"{term.name}: its weight field {term.weight_field} is not a StyleConfig field")
            continue
        meta = config_class.field_meta(term.weight_field)
        if meta["role"] != "term weight":
            problems.append(f"{term.name}: its weight field {term.weight_field} has the role {meta['role']!r}, "
                            "not 'term weight' (declare it with _term_weight)")
        if not meta["checks"]:
            problems.append(f"{term.name}: its weight field {term.weight_field} declares no validation")
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
