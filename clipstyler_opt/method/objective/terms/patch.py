"""patch: CLIPstyler's patch-wise directional CLIP loss, on random perspective-warped crops.

    patch = mean over all N crops of (l_i if l_i ≥ τ else 0)

with l_i the directional loss of crop i (see base.py) and τ the member's rejection threshold.
With several members or style components it is Σ_m w_m Σ_k a_k · (patch for m, k).

Example:
    >>> TERM.name, TERM.weight_field, TERM.shown(0.41234)
    ('patch', 'lambda_patch', 'patch 0.412')
"""

from __future__ import annotations

import torch

from clipstyler_opt.method.losses import thresholded_mean
from clipstyler_opt.method.objective.base import ClipViews, Step, Term, over_members
from clipstyler_opt.method.objective.registry import LossTerm, TermContext

__all__ = ["TERM", "PatchDirectionalTerm"]


class PatchDirectionalTerm(Term):

    def __init__(self, clip: ClipViews) -> None:
        super().__init__()
        self.clip = [clip]  # shared, not a submodule of each term

    def forward(self, step: Step) -> torch.Tensor:
        return over_members(step, self.clip[0], lambda m, per_view: thresholded_mean(per_view[1:], m.threshold))


def _build(context: TermContext) -> Term:
    return PatchDirectionalTerm(context.clip)


TERM = LossTerm("patch", "lambda_patch", "patch", ".3f", _build)
