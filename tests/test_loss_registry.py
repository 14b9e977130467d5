"""The loss-term registry's contract: every registered term is fully wired (a weight field of the
term-weight role with validation, a display), every term-weight field has a term, and an entry
that breaks the contract is reported, whether found by discovery or passed in."""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from clipstyler_opt.cli.progress import loss_summary
from clipstyler_opt.core.config import StyleConfig, _opt, _term_weight
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.method.objective import registry
from clipstyler_opt.method.objective.base import ClipViews, Step, Term
from clipstyler_opt.method.objective.registry import LossTerm, contract_problems, registered_terms
from clipstyler_opt.method.objective.terms.tv import TotalVariationTerm

PAPER_TERMS = ("patch", "dir", "content", "tv")  # CLIPstyler's objective, in its order of summation


def test_every_registered_term_is_fully_wired() -> None:
    terms = registered_terms()
    assert tuple(term.name for term in terms)[:4] == PAPER_TERMS  # a term added later comes after them
    assert contract_problems(terms) == []
    lambdas = [f.name for f in dataclasses.fields(StyleConfig) if f.name.startswith("lambda_")]
    fielded = [term for term in terms if term.weight_field is not None]  # the others: --term-weight NAME=W
    assert sorted(str(term.weight_field) for term in fielded) == sorted(lambdas)  # every lambda_* field has a term
    for term in fielded:
        assert term.weight_field is not None
        meta = StyleConfig.field_meta(term.weight_field)
        assert meta["role"] == "term weight" and meta["checks"]
        for bad in (-5.0, float("inf"), float("nan")):  # validation from the field's metadata
            with pytest.raises(ConfigError, match=term.weight_field.replace("_", "-")):
                StyleConfig(**{term.weight_field: bad})


def test_the_progress_display_lists_every_registered_term() -> None:
    losses = {"total": 1234.5678, "patch": 0.41234, "dir": 0.81234, "content": 0.0123456, "tv": 150.55}
    assert loss_summary(losses) == "loss 1235 patch 0.412 dir 0.812 content 0.0123 tv 151"


def _discover(monkeypatch: pytest.MonkeyPatch, folder: Path, source: str) -> None:
    """Put a term module named `glow.py` beside the real ones, as a contributor would."""
    (folder / "glow.py").write_text(source)
    from clipstyler_opt.method.objective import terms

    monkeypatch.setattr(terms, "__path__", [*terms.__path__, str(folder)])
    importlib.invalidate_caches()
    registered_terms.cache_clear()


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    """Whatever a test adds to the registry is gone after it."""
    yield
    sys.modules.pop(f"{registry.TERMS_PACKAGE}.glow", None)
    registered_terms.cache_clear()


@pytest.mark.usefixtures("fresh_registry")
def test_a_discovered_term_without_a_weight_field_breaks_the_registry(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    _discover(monkeypatch, tmp_path, "from clipstyler_opt.method.objective.registry import LossTerm\n"
                                     "TERM = LossTerm('glow', 'lambda_glow', 'glow', '.3f', lambda context: None)\n")
    with pytest.raises(RuntimeError, match="glow: its weight field lambda_glow is not a StyleConfig field"):
        registered_terms()


@pytest.mark.usefixtures("fresh_registry")
def test_a_term_module_that_declares_no_entry_breaks_the_registry(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    _discover(monkeypatch, tmp_path, "GLOW = 1\n")
    with pytest.raises(RuntimeError, match=r"glow declares no TERM = LossTerm\(\.\.\.\)"):
        registered_terms()


def _glow(field: str = "lambda_glow") -> LossTerm:
    return LossTerm("glow", field, "glow", ".3f", lambda context: TotalVariationTerm())


def test_a_weight_field_without_validation_or_role_breaks_the_contract() -> None:
    @dataclasses.dataclass(frozen=True)
    class Unchecked(StyleConfig):
        lambda_glow: float = _opt(1.0, "Weight of the glow.", role="term weight")

    @dataclasses.dataclass(frozen=True)
    class WrongRole(StyleConfig):
        lambda_glow: float = _opt(1.0, "Weight of the glow.", role="method", checks=(), added_in="0.2")

    @dataclasses.dataclass(frozen=True)
    class Wired(StyleConfig):
        lambda_glow: float = _term_weight(1.0, "Weight of the glow.", added_in="0.2")

    terms = [*registered_terms(), _glow()]
    assert contract_problems(terms, Wired) == []
    assert contract_problems(terms, Unchecked) == ["glow: its weight field lambda_glow declares no validation"]
    assert contract_problems(terms, WrongRole)[0].startswith("glow: its weight field lambda_glow has the role 'method'")
    assert contract_problems(registered_terms(), Wired) == ["lambda_glow: a term-weight field that no registered "
                                                            "term uses"]
    assert "lambda_glow: a lambda_* field that is not a term weight" in contract_problems(registered_terms(), WrongRole)
    assert contract_problems([*registered_terms(), registered_terms()[0]]) == ["patch: registered twice"]
    bad_format = dataclasses.replace(_glow(), display_format=".3z")
    assert "glow: display format '.3z' cannot show a number" in contract_problems([*registered_terms(), bad_format],
                                                                                  Wired)


class Brightness(Term):
    """A toy term: the output's mean."""

    def forward(self, step: Step) -> torch.Tensor:
        return step.output.mean()


def test_a_registered_term_is_built_and_weighted_into_the_objective() -> None:
    """The objective sums the built terms with their weights: a toy term shows up in the loss
    dictionary and the total."""
    from clipstyler_opt.method.objective.build import Objective

    entry = LossTerm("glow", "lambda_tv", "glow", ".3f", lambda context: Brightness())
    output = torch.rand(1, 3, 8, 8)
    objective = Objective(ClipViews([]), {entry.name: entry.build(None)}, {"glow": 2.0})  # type: ignore[arg-type]
    losses = objective(output)
    assert objective.names == ("total", "glow")
    assert torch.allclose(losses["glow"], output.sum() / output.numel())
    assert torch.allclose(losses["total"], 2 * output.sum() / output.numel())


@pytest.mark.usefixtures("fresh_registry")
def test_a_term_weighted_by_name_is_one_module_off_until_given(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    """A contributor's term with no StyleConfig field: registered after the paper's terms, weight 0
    until --term-weight glow=W, validated, and a --term-weight naming no term is refused."""
    _discover(monkeypatch, tmp_path, "from clipstyler_opt.method.objective.registry import LossTerm\n"
                                     "TERM = LossTerm('glow', None, 'glow', '.3f', lambda context: None)\n")
    terms = registered_terms()
    names = [term.name for term in terms]
    assert names[:4] == list(PAPER_TERMS) and "glow" in names[4:] and contract_problems(terms) == []
    glow = terms[names.index("glow")]
    assert glow.weight(StyleConfig()) == 0.0
    assert glow.weight(StyleConfig(term_weight=("glow=0.25",))) == 0.25
    registry.check_term_weights(StyleConfig(term_weight=("glow=0.25",)))
    with pytest.raises(ConfigError, match=r"no loss term is named flare \(terms weighted by name: (.*, )?glow\b"):
        registry.check_term_weights(StyleConfig(term_weight=("flare=1",)))
    for bad in ("glow=-5", "glow=inf", "glow=nan", "glow", "Glow!=1"):
        with pytest.raises(ConfigError, match="term-weight"):
            StyleConfig(term_weight=(bad,))
    with pytest.raises(ConfigError, match="glow: given twice"):
        StyleConfig(term_weight=("glow=1", "glow=2"))
    unnameable = LossTerm("Glow Big", None, "glow", ".3f", lambda context: None)
    assert contract_problems([*registered_terms(), unnameable]) == [
        "Glow Big: weighted by name, but --term-weight NAME=W cannot name it (use a lower-case word)"]
