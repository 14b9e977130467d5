"""Backbones: a registry of vision-language families, ensembles of them, and the VGG19 content network.

A family is a factory `(spec, context, device) -> VisionLanguageBackbone`. Specs name their family
by their source: a registered family name (the tests register a toy embedding this way), or any
other source, which open_clip builds (CLIP, SigLIP, SigLIP2, hf-hub:, local-dir:).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from clipstyler_opt.core.backbone_spec import DEFAULT_BACKBONE, BackboneSpec, LoadContext, offline_requested
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.weights.resolve import WeightsFile, resolve_vgg_weights

if TYPE_CHECKING:  # torch is imported where a backbone is built, not when options are checked
    import torch

    from clipstyler_opt.models.vgg import VGGFeatures

__all__ = [
    "DEFAULT_BACKBONE",
    "BackboneFactory",
    "BackboneSpec",
    "LoadContext",
    "VisionLanguageBackbone",
    "create_backbone",
    "create_content_network",
    "list_backbones",
    "offline_requested",
    "register_backbone",
    "resolve_content_weights",
]


@runtime_checkable
class VisionLanguageBackbone(Protocol):
    """What the losses need from CLIP-like models."""

    input_size: tuple[int, int]
    interpolation: str
    provenance: dict[str, Any]

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """Raw (unnormalised) embeddings of RGB images in [0, 1] already at `input_size`."""
        ...

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Raw (unnormalised) embeddings, one row per text."""
        ...


BackboneFactory = Callable[[BackboneSpec, LoadContext, "torch.device"], VisionLanguageBackbone]
_REGISTRY: dict[str, BackboneFactory] = {}
OPEN_CLIP = "open_clip"


def register_backbone(name: str, factory: BackboneFactory) -> None:
    _REGISTRY[name] = factory


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def family_of(spec: BackboneSpec) -> str:
    return spec.source if spec.source in _REGISTRY else OPEN_CLIP


def create_backbone(spec: BackboneSpec, context: LoadContext, device: torch.device) -> VisionLanguageBackbone:
    try:
        factory = _REGISTRY[family_of(spec)]
    except KeyError:
        raise ConfigError(f"unknown backbone family for {spec}") from None
    return factory(spec, context, device)


def resolve_content_weights(vgg_checkpoint: Any, context: LoadContext) -> WeightsFile:
    return resolve_vgg_weights(explicit=vgg_checkpoint, cache_dir=context.cache_dir, offline=context.offline)


def create_content_network(weights: WeightsFile, device: torch.device) -> VGGFeatures:
    from clipstyler_opt.models.vgg import load_vgg_features, move_vgg_features

    return move_vgg_features(load_vgg_features(weights.path), device)


def _open_clip_factory(spec: BackboneSpec, context: LoadContext, device: torch.device) -> VisionLanguageBackbone:
    from clipstyler_opt.models.clip import create_open_clip

    return create_open_clip(spec, context, device)


register_backbone(OPEN_CLIP, _open_clip_factory)
