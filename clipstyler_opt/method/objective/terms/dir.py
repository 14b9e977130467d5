"""dir: CLIPstyler's global directional CLIP loss, on the whole output.

    dir = l for the whole output, squashed to the backbone's input size

with l the directional loss (see base.py). With several members or style components it is
Σ_m w_m Σ_k a_k · (dir for m, k).

Example:
    >>> TERM.name, TERM.weight_field, TERM.shown(0.81234)
    ('dir', 'lambda_dir', 'dir 0.812')
"""

from __future__ import annotations

import torch

from clipstyler_opt.method.objective.base import ClipViews, Step, Term, over_members
from clipstyler_opt.method.objective.registry import LossTerm, TermContext

__all__ = ["TERM", "GlobalDirectionalTerm"]


class GlobalDirectionalTerm(Term):

    def __init__(self, clip: ClipViews) -> None:
        super().__init__()
        self.clip = [clip]  # shared, not a submodule of each term

    def forward(self, step: Step) -> torch.Tensor:
        return over_members(step, self.clip[0], lambda m, per_view: per_view[0])


def _build(context: TermContext) -> Term:
    return GlobalDirectionalTerm(context.clip)


TERM = LossTerm("dir", "lambda_dir", "dir", ".3f", _build)
