"""tv: the total-variation loss, which keeps the output smooth.

    tv = Σ ‖neighbour differences‖_F over the 4 directions (not squared)

Example:
    >>> import torch
    >>> from clipstyler_opt.method.objective.base import ClipViews
    >>> flat = torch.full((1, 3, 4, 4), 0.5)
    >>> TotalVariationTerm()(Step(flat, ClipViews([]))).item()
    0.0
"""

from __future__ import annotations

import torch

from clipstyler_opt.method.losses import total_variation
from clipstyler_opt.method.objective.base import Step, Term
from clipstyler_opt.method.objective.registry import LossTerm, TermContext

__all__ = ["TERM", "TotalVariationTerm"]


class TotalVariationTerm(Term):

    def forward(self, step: Step) -> torch.Tensor:
        return total_variation(step.output)


def _build(context: TermContext) -> Term:
    return TotalVariationTerm()


TERM = LossTerm("tv", "lambda_tv", "tv", ".3g", _build)
