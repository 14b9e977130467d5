"""Prompt templates and the CLIP-space text direction ΔT = n(T_style − T_source)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .backbones import VisionLanguageBackbone

__all__ = ["template_texts", "text_embedding", "text_direction", "TextDirections"]


def _template_sets() -> dict[str, tuple[Callable[[str], str], ...]]:
    from open_clip import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

    return {
        "imagenet": tuple(OPENAI_IMAGENET_TEMPLATES),  # CLIP's 80 ImageNet prompts, as in CLIPstyler
        "simple": tuple(SIMPLE_IMAGENET_TEMPLATES),
        "none": (lambda text: text,),
    }


def template_texts(text: str, templates: str) -> list[str]:
    return [template(text) for template in _template_sets()[templates]]


@torch.no_grad()
def text_embedding(backbone: VisionLanguageBackbone, text: str, templates: str) -> torch.Tensor:
    """Average the raw embeddings over the templates, then L2-normalise (in that order)."""
    raw = backbone.encode_text(template_texts(text, templates)).float()
    return F.normalize(raw.mean(dim=0), dim=-1)


def text_direction(backbone: VisionLanguageBackbone, style: str, source: str, templates: str) -> torch.Tensor:
    delta = text_embedding(backbone, style, templates) - text_embedding(backbone, source, templates)
    return F.normalize(delta, dim=-1)


class TextDirections:
    """Per-backbone cache: each (style, source, templates) is encoded once."""

    def __init__(self, backbone: VisionLanguageBackbone) -> None:
        self.backbone = backbone
        self._cache: dict[tuple[str, str, str], torch.Tensor] = {}

    def __call__(self, style: str, source: str, templates: str) -> torch.Tensor:
        key = (style, source, templates)
        if key not in self._cache:
            self._cache[key] = text_direction(self.backbone, style, source, templates)
        return self._cache[key]

    def __len__(self) -> int:
        return len(self._cache)
