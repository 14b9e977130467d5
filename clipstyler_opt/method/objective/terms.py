"""The loss terms, one small module each. A term reads the current step and returns a scalar.

With n(v) = v/‖v‖, e_c = n(E_I(view(content))) and ΔT a text direction (see targets.py):
  per-view directional loss  l = 1 − cos(n(n(E_I(x)) − e_c), ΔT)
  dir     = l for the whole output, squashed to the backbone's input size
  patch   = mean over all N crops of (l_i if l_i ≥ τ else 0)
  content = Σ_{relu4_2, relu5_2} MSE(VGG(output), VGG(content))
  tv      = Σ ‖neighbour differences‖_F over the 4 directions (not squared)
With several members or style components, dir and patch are Σ_m w_m Σ_k a_k · (term for m, k).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

from clipstyler_opt.method.ensemble import Member
from clipstyler_opt.method.losses import (
    content_loss,
    directional_loss,
    resize_for_backbone,
    thresholded_mean,
    total_variation,
)
from clipstyler_opt.method.targets import Component
from clipstyler_opt.method.views import PatchCrops

__all__ = [
    "ClipViews",
    "ContentTerm",
    "GlobalDirectionalTerm",
    "LossDict",
    "MemberViews",
    "PatchDirectionalTerm",
    "Step",
    "Term",
    "TotalVariationTerm",
]

LossDict = dict[str, torch.Tensor]


@dataclass
class MemberViews:
    """One ensemble member's fixed references for one content image and target."""

    member: Member
    crops: PatchCrops
    content_embedding: torch.Tensor  # e_c, normalised, fp32
    components: list[Component]  # (a_k, ΔT_k)
    threshold: float


class ClipViews(nn.Module):
    """Each member's whole-image view and crops, through its image tower in one batch per step."""

    def __init__(self, members: Sequence[MemberViews]) -> None:
        super().__init__()
        self.members = list(members)

    def forward(self, output: torch.Tensor) -> list[list[torch.Tensor]]:
        """Per member, per component: the per-view losses (1 + crops,), the whole image first."""
        losses = []
        for m in self.members:
            backbone = m.member.backbone
            views = torch.cat([resize_for_backbone(output, backbone), m.crops(output)])
            features = backbone.encode_image(views)
            losses.append([directional_loss(features, m.content_embedding, direction)
                           for _, direction in m.components])
        return losses


class Step:
    """What the terms see in one step: the output, and the CLIP losses computed once on demand."""

    def __init__(self, output: torch.Tensor, clip: ClipViews) -> None:
        self.output, self._clip = output, clip

    @cached_property
    def clip_losses(self) -> list[list[torch.Tensor]]:
        return self._clip(self.output)


class Term(nn.Module):
    name: str = ""

    def forward(self, step: Step) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


def weighted_sum(pairs: Sequence[tuple[float, torch.Tensor]]) -> torch.Tensor:
    """Σ w·x, starting from the first product (one pair of weight 1 gives x exactly)."""
    total = pairs[0][0] * pairs[0][1]
    for weight, value in pairs[1:]:
        total = total + weight * value
    return total


class GlobalDirectionalTerm(Term):
    name = "dir"

    def __init__(self, clip: ClipViews) -> None:
        super().__init__()
        self.clip = [clip]  # shared, not a submodule of each term

    def forward(self, step: Step) -> torch.Tensor:
        members = self.clip[0].members
        return weighted_sum([(m.member.weight, weighted_sum([(a, per_view[0]) for (a, _), per_view
                                                             in zip(m.components, losses, strict=True)]))
                             for m, losses in zip(members, step.clip_losses, strict=True)])


class PatchDirectionalTerm(Term):
    name = "patch"

    def __init__(self, clip: ClipViews) -> None:
        super().__init__()
        self.clip = [clip]

    def forward(self, step: Step) -> torch.Tensor:
        members = self.clip[0].members
        return weighted_sum([(m.member.weight,
                              weighted_sum([(a, thresholded_mean(per_view[1:], m.threshold))
                                            for (a, _), per_view in zip(m.components, losses, strict=True)]))
                             for m, losses in zip(members, step.clip_losses, strict=True)])


class ContentTerm(Term):
    name = "content"

    def __init__(self, vgg: nn.Module, content: torch.Tensor) -> None:
        super().__init__()
        self.vgg = vgg
        with torch.no_grad():
            self.reference = [f.detach() for f in vgg(content)]

    def forward(self, step: Step) -> torch.Tensor:
        return content_loss(self.vgg(step.output), self.reference)


class TotalVariationTerm(Term):
    name = "tv"

    def forward(self, step: Step) -> torch.Tensor:
        return total_variation(step.output)
