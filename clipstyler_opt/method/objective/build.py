"""Assembling the objective: one function, called by the engine, the benchmark and evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.method.ensemble import Member, member_settings
from clipstyler_opt.method.losses import resize_for_backbone
from clipstyler_opt.method.objective.terms import (
    ClipViews,
    ContentTerm,
    GlobalDirectionalTerm,
    LossDict,
    MemberViews,
    PatchDirectionalTerm,
    Step,
    Term,
    TotalVariationTerm,
)
from clipstyler_opt.method.targets import StyleTarget
from clipstyler_opt.method.views import PatchCrops

__all__ = ["Objective", "build_objective", "member_views"]


class Objective(nn.Module):
    """Σ_name λ_name · term_name(output). Returns every term by name, plus "total"."""

    def __init__(self, clip: ClipViews, terms: Sequence[Term], weights: dict[str, float]) -> None:
        super().__init__()
        self.clip = clip
        self.terms = nn.ModuleList(terms)
        self.weights = dict(weights)

    def _terms(self) -> list[Term]:
        return cast("list[Term]", list(self.terms))  # iterating an nn.ModuleList gives plain Modules

    @property
    def names(self) -> tuple[str, ...]:
        return ("total", *(term.name for term in self._terms()))

    def forward(self, output: torch.Tensor) -> LossDict:
        step = Step(output, self.clip)
        values = {term.name: term(step) for term in self._terms()}
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
    """The CLIPstyler objective for one content image (1, 3, H, W) in [0, 1] and one style target.
    Content references (e_c per member, VGG features) are computed once, here. Term weights are
    the config's `lambda_<name>` fields (see `StyleConfig.term_weight`)."""
    clip = ClipViews([member_views(m, config, content, target, crop_size or config.crop_size) for m in members])
    terms: list[Term] = [PatchDirectionalTerm(clip), GlobalDirectionalTerm(clip), ContentTerm(vgg, content),
                         TotalVariationTerm()]
    return Objective(clip, terms, {term.name: config.term_weight(term.name) for term in terms})
