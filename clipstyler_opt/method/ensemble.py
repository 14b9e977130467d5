"""Ensembles of vision-language backbones (StyleGAN-NADA's multi-model CLIP loss).

Each member keeps its own preprocessing, content embedding, text directions and patch
threshold; the CLIP loss terms are Σ_m w_m · L_m over members.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from clipstyler_opt.core.backbone_spec import BackboneSpec
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.method.text import TextEmbeddings
from clipstyler_opt.models import VisionLanguageBackbone, create_backbone
from clipstyler_opt.models.calibration import defaults_for

__all__ = ["Member", "check_members", "load_members", "member_settings"]


@dataclass
class Member:
    spec: BackboneSpec
    backbone: VisionLanguageBackbone
    texts: TextEmbeddings = field(init=False)

    def __post_init__(self) -> None:
        from clipstyler_opt.method.textcache import backbone_identity

        self.texts = TextEmbeddings(self.backbone, backbone_identity(self.backbone))

    @property
    def weight(self) -> float:
        return self.spec.weight


def member_settings(spec: BackboneSpec, config: StyleConfig) -> dict[str, Any]:
    """τ and the template set for this member: its spec, else the run's option, else the
    calibration table's default for the model."""
    defaults = defaults_for(spec.model.rsplit("/", 1)[-1])
    threshold = spec.tau if spec.tau is not None else config.threshold if config.threshold is not None \
        else defaults.tau
    templates = spec.templates or (config.templates if config.templates != "auto" else defaults.templates)
    return {"threshold": threshold, "templates": templates, "threshold_calibrated": defaults.calibrated
            and spec.tau is None and config.threshold is None}


def check_members(config: StyleConfig) -> None:
    """What can be checked before any weights are looked for (extra packages, model names), by
    each member's family; and every --term-weight names a registered loss term."""
    from clipstyler_opt.method.objective.registry import check_term_weights
    from clipstyler_opt.models import check_backbone_requirements

    check_term_weights(config)
    check_backbone_requirements(config.backbone_specs(), config.load_context())


def load_members(config: StyleConfig, device: torch.device) -> list[Member]:
    context = config.load_context()
    return [Member(spec, create_backbone(spec, context, device)) for spec in config.backbone_specs()]
