"""Backbones: a registry of vision-language families, ensembles of them, and the VGG19 content network.

Each family is one `BackboneFamily` entry (`models/families.py`) that carries everything the
program asks about it: how to build it, the extras it needs, its memory profile, random weights
for `clipopt bench`, its frozen towers for `--bf16-weights` and its provenance keys. Specs name
their family by their source: a registered family name (the tests register a toy embedding this
way), or any other source, which the open_clip family builds (CLIP, SigLIP, SigLIP2, hf-hub:,
local-dir:; `models/open_clip_family.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clipstyler_opt.core.backbone_spec import DEFAULT_BACKBONE, BackboneSpec, LoadContext, offline_requested
from clipstyler_opt.models.families import (
    OPEN_CLIP,
    BackboneFactory,
    BackboneFamily,
    TowerMemory,
    VisionLanguageBackbone,
    families,
    family_of,
    list_backbones,
    no_requirements,
    register_backbone,
    register_family,
)
from clipstyler_opt.models.open_clip_family import OPEN_CLIP_FAMILY
from clipstyler_opt.weights.resolve import WeightsFile, resolve_vgg_weights

if TYPE_CHECKING:  # torch is imported where a backbone is built, not when options are checked
    import torch

    from clipstyler_opt.models.vgg import VGGFeatures

__all__ = [
    "DEFAULT_BACKBONE",
    "OPEN_CLIP",
    "BackboneFactory",
    "BackboneFamily",
    "BackboneSpec",
    "LoadContext",
    "TowerMemory",
    "VisionLanguageBackbone",
    "check_backbone_requirements",
    "create_backbone",
    "create_content_network",
    "families",
    "family_of",
    "list_backbones",
    "no_requirements",
    "offline_requested",
    "register_backbone",
    "register_family",
    "resolve_content_weights",
]


def check_backbone_requirements(specs: list[BackboneSpec], context: LoadContext) -> None:
    """Each spec's family checks what it can before any weights are looked for: extra packages,
    known model names (one-line ConfigError, exit 2)."""
    for spec in specs:
        family_of(spec).requirements(spec, context)


def create_backbone(spec: BackboneSpec, context: LoadContext, device: torch.device) -> VisionLanguageBackbone:
    """Build `spec` with its family's factory (the backbone's provenance checked for the family's keys)."""
    return family_of(spec).build(spec, context, device)


def resolve_content_weights(vgg_checkpoint: Any, context: LoadContext) -> WeightsFile:
    return resolve_vgg_weights(explicit=vgg_checkpoint, cache_dir=context.cache_dir, offline=context.offline)


def create_content_network(weights: WeightsFile, device: torch.device) -> VGGFeatures:
    from clipstyler_opt.models.vgg import load_vgg_features, move_vgg_features

    return move_vgg_features(load_vgg_features(weights.path), device)


register_family(OPEN_CLIP_FAMILY)
