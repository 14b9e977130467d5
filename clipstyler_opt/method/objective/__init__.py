"""The CLIPstyler objective as named, composable loss terms.

`build_objective(...)` is the one place the objective is assembled; the engine, the benchmark and
evaluation all call it. `Objective(output)` returns a `LossDict`: term name -> value, plus "total".
The terms are a registry (registry.py): one module each in `terms/`, found automatically.
"""

from clipstyler_opt.method.objective.base import ClipViews, LossDict, MemberViews, Step, Term
from clipstyler_opt.method.objective.build import Objective, build_objective
from clipstyler_opt.method.objective.registry import LossTerm, TermContext, contract_problems, registered_terms
from clipstyler_opt.method.objective.terms.content import ContentTerm
from clipstyler_opt.method.objective.terms.dir import GlobalDirectionalTerm
from clipstyler_opt.method.objective.terms.patch import PatchDirectionalTerm
from clipstyler_opt.method.objective.terms.tv import TotalVariationTerm

__all__ = [
    "ClipViews",
    "ContentTerm",
    "GlobalDirectionalTerm",
    "LossDict",
    "LossTerm",
    "MemberViews",
    "Objective",
    "PatchDirectionalTerm",
    "Step",
    "Term",
    "TermContext",
    "TotalVariationTerm",
    "build_objective",
    "contract_problems",
    "registered_terms",
]
