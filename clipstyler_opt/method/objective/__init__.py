"""The CLIPstyler objective as named, composable loss terms.

`build_objective(...)` is the one place the objective is assembled; the engine, the benchmark and
evaluation all call it. `Objective(output)` returns a `LossDict`: term name -> value, plus "total".
"""

from clipstyler_opt.method.objective.build import Objective, build_objective
from clipstyler_opt.method.objective.terms import (
                    ClipViews,
                    ContentTerm,
                    GlobalDirectionalTerm,
                    LossDict,
                    MemberViews,
                    PatchDirectionalTerm,
                    Term,
                    TotalVariationTerm,
)

__all__ = [
                    "ClipViews",
                    "ContentTerm",
                    "GlobalDirectionalTerm",
                    "LossDict",
                    "MemberViews",
                    "Objective",
                    "PatchDirectionalTerm",
                    "Term",
                    "TotalVariationTerm",
                    "build_objective",
]
