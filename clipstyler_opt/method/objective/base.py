"""What every loss term shares: the step it reads, the CLIP views computed once per step, and
the `Term` interface. The terms themselves live one module each in `terms/` (see registry.py).

With n(v) = v/‖v‖, e_c = n(E_I(view(content))) and ΔT a text direction (see targets.py), the
per-view directional loss is l = 1 − cos(n(n(E_I(x)) − e_c), ΔT); ClipViews computes it for the
whole output and every crop of every member and style component, once per step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

from clipstyler_opt.method.ensemble import Member
from clipstyler_opt.method.losses import directional_loss, resize_for_backbone
from clipstyler_opt.method.targets import Component
from clipstyler_opt.method.views import PatchCrops

__all__ = ["ClipViews", "LossDict", "MemberViews", "Step", "Term", "over_members", "weighted_sum"]

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
    """A loss term: reads the current `Step`, returns a scalar tensor. Its name and weight are
    its registry entry's (registry.py).

    Example:
        >>> import torch
        >>> class Mean(Term):
        ...     def forward(self, step: Step) -> torch.Tensor:
        ...         return step.output.mean()
        >>> Mean()(Step(torch.ones(1, 3, 2, 2), ClipViews([]))).item()
        1.0
    """

    def forward(self, step: Step) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


def weighted_sum(pairs: Sequence[tuple[float, torch.Tensor]]) -> torch.Tensor:
    """Σ w·x, starting from the first product (one pair of weight 1 gives x exactly).

    Example:
        >>> import torch
        >>> weighted_sum([(2.0, torch.tensor(1.0)), (0.5, torch.tensor(4.0))]).item()
        4.0
    """
    total = pairs[0][0] * pairs[0][1]
    for weight, value in pairs[1:]:
        total = total + weight * value
    return total


def over_members(step: Step, clip: ClipViews,
                 per_component: Callable[[MemberViews, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Σ_m w_m Σ_k a_k · per_component(m, per-view losses of m for component k): how the CLIP terms
    combine ensemble members and style components (dir takes the whole image's view, patch the
    thresholded mean of the crops). With one member of weight 1 and one component of weight 1
    it is `per_component` itself (see `weighted_sum`).
    """
    return weighted_sum([(m.member.weight,
                          weighted_sum([(a, per_component(m, per_view))
                                        for (a, _), per_view in zip(m.components, losses, strict=True)]))
                         for m, losses in zip(clip.members, step.clip_losses, strict=True)])
