"""Assembling the objective: one function, called by the engine, the benchmark and evaluation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.method.ensemble import Member, member_settings
from clipstyler_opt.method.losses import resize_for_backbone
from clipstyler_opt.method.objective.base import ClipViews, LossDict, MemberViews, Step, Term
from clipstyler_opt.method.objective.registry import TermContext, registered_terms
from clipstyler_opt.method.targets import StyleTarget
from clipstyler_opt.method.views import PatchCrops

__all__ = ["Objective", "build_objective", "member_views"]


class Objective(nn.Module):
    """Σ_name λ_name · term_name(output). Returns every term by name, plus "total".

    Example:
        >>> from clipstyler_opt.method.objective.terms.tv import TotalVariationTerm
        >>> objective = Objective(ClipViews([]), {"tv": TotalVariationTerm()}, {"tv": 2.0})
        >>> losses = objective(torch.zeros(1, 3, 4, 4))
        >>> objective.names, float(losses["total"])
        (('total', 'tv'), 0.0)
    """

    def __init__(self, clip: ClipViews, terms: Mapping[str, Term], weights: Mapping[str, float]) -> None:
        super().__init__()
        self.clip = clip
        self.term_names = tuple(terms)
        self.terms = nn.ModuleList(terms.values())
        self.weights = dict(weights)

    @property
    def names(self) -> tuple[str, ...]:
        return ("total", *self.term_names)

    def forward(self, output: torch.Tensor) -> LossDict:
        step = Step(output, self.clip)
        values = {name: term(step) for name, term in zip(self.term_names, self.terms, strict=True)}
        total: torch.Tensor | None = None
        for name, value in values.items():
            contribution = self.weights[name] * value
            total = contribution if total is None else total + contribution
        assert total is not None
        return {"total": total, **values}

    def stack(self, losses: LossDict) -> torch.Tensor:
        """The values in `names` order as one detached fp32 tensor (one host sync reads them all)."""
        return torch.stack([losses[name].float() for name in self.names]).detach()

    def describe(self) -> dict[str, Any]:
        """The term weights used, and per member its threshold and style components (for provenance)."""
        return {"weights": dict(self.weights),
                "members": [{"spec": str(m.member.spec), "weight": m.member.weight, "threshold": m.threshold,
                             "component_weights": [a for a, _ in m.components]} for m in self.clip.members]}


@torch.no_grad()
def member_views(member: Member, config: StyleConfig, content: torch.Tensor, target: StyleTarget,
                 crop_size: int) -> MemberViews:
    settings = member_settings(member.spec, config)
    backbone = member.backbone
    content_embedding = F.normalize(backbone.encode_image(resize_for_backbone(content, backbone)).float(), dim=-1)
    components = target.components(member, settings["templates"], content_embedding[0])
    crops = PatchCrops(config.crops, crop_size, config.distortion, backbone.input_size)
    return MemberViews(member, crops, content_embedding, components, settings["threshold"])


def build_objective(config: StyleConfig, members: Sequence[Member], vgg: nn.Module, content: torch.Tensor,
                    target: StyleTarget, *, crop_size: int | None = None) -> Objective:
    """The CLIPstyler objective for one content image (1, 3, H, W) in [0, 1] and one style target:
    every registered loss term (registry.py), each weighted by its StyleConfig weight field.
    Content references (e_c per member, VGG features) are computed once, here."""
    clip = ClipViews([member_views(m, config, content, target, crop_size or config.crop_size) for m in members])
    context = TermContext(config, clip, vgg, content)
    entries = registered_terms()
    return Objective(clip, {entry.name: entry.build(context) for entry in entries},
                     {entry.name: entry.weight(config) for entry in entries})
