"""Backbones: a registry of vision-language families plus the VGG19 content network.

A family is a factory `(config, device) -> VisionLanguageBackbone`. "open_clip" is built in;
`register_backbone` adds others (the tests register a hand-built toy embedding this way).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import torch

from ..config import StyleConfig
from ..errors import ConfigError
from .vgg import VGGFeatures, load_vgg_features
from .weights import WeightsFile, offline_requested, resolve_vgg_weights

__all__ = [
    "VisionLanguageBackbone",
    "BackboneFactory",
    "register_backbone",
    "list_backbones",
    "create_backbone",
    "resolve_content_weights",
    "create_content_network",
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


BackboneFactory = Callable[[StyleConfig, torch.device], VisionLanguageBackbone]
_REGISTRY: dict[str, BackboneFactory] = {}


def register_backbone(name: str, factory: BackboneFactory) -> None:
    _REGISTRY[name] = factory


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def create_backbone(config: StyleConfig, device: torch.device) -> VisionLanguageBackbone:
    try:
        factory = _REGISTRY[config.backbone]
    except KeyError:
        raise ConfigError(f"unknown backbone {config.backbone!r}; registered: {', '.join(list_backbones())}") from None
    return factory(config, device)


def resolve_content_weights(config: StyleConfig) -> WeightsFile:
    return resolve_vgg_weights(explicit=config.vgg_checkpoint, cache_dir=config.cache_dir,
                               offline=offline_requested(config.offline))


def create_content_network(weights: WeightsFile, device: torch.device) -> VGGFeatures:
    return load_vgg_features(weights.path).to(device)


def _open_clip_factory(config: StyleConfig, device: torch.device) -> VisionLanguageBackbone:
    from .clip import create_open_clip

    return create_open_clip(config, device)


register_backbone("open_clip", _open_clip_factory)
