"""Text embeddings through prompt templates, cached per backbone.

T(text) = n(mean over templates of E_T(template(text))): raw embeddings are averaged, then
normalised (in that order, as CLIPstyler does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .backbones import VisionLanguageBackbone
from .templates import TEMPLATE_SETS, template_texts

__all__ = ["TEMPLATE_SETS", "template_texts", "text_embedding", "text_direction", "TextEmbeddings"]


@torch.no_grad()
def text_embedding(backbone: VisionLanguageBackbone, text: str, templates: str) -> torch.Tensor:
    """Average the raw embeddings over the templates, then L2-normalise (in that order). Always in
    fp32, also when called under mixed precision: a text is encoded once and reused for every step."""
    device = next((b.device for b in getattr(backbone, "buffers", lambda: iter(()))()), torch.device("cpu"))
    with torch.autocast(device.type, enabled=False):
        raw = backbone.encode_text(template_texts(text, templates)).float()
    return F.normalize(raw.mean(dim=0), dim=-1)


class TextEmbeddings:
    """Per-backbone cache: each (text, template set) is encoded once per process."""

    def __init__(self, backbone: VisionLanguageBackbone) -> None:
        self.backbone = backbone
        self._cache: dict[tuple[str, str], torch.Tensor] = {}

    def __call__(self, text: str, templates: str) -> torch.Tensor:
        key = (text, templates)
        if key not in self._cache:
            self._cache[key] = text_embedding(self.backbone, text, templates)
        return self._cache[key]

    def __len__(self) -> int:
        return len(self._cache)


def text_direction(backbone: VisionLanguageBackbone, style: str, source: str, templates: str) -> torch.Tensor:
    """ΔT = n(T(style) − T(source)): CLIPstyler's text direction for one style."""
    return F.normalize(text_embedding(backbone, style, templates) - text_embedding(backbone, source, templates), dim=-1)
