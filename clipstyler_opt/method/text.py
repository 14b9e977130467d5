"""Text embeddings through prompt templates, cached per backbone in memory and on disk.

T(text) = n(mean over templates of E_T(template(text))): raw embeddings are averaged, then
normalised (in that order, as CLIPstyler does). A backbone with a weights file also keeps its
embeddings in the disk cache (textcache.py), keyed by the weights' sha256, the template set and
the text, so a known prompt costs no text-tower pass in a later run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from clipstyler_opt.core.templates import TEMPLATE_SETS, template_texts
from clipstyler_opt.method.textcache import TextCache, text_cache_enabled
from clipstyler_opt.models import VisionLanguageBackbone

__all__ = [
    "TEMPLATE_SETS",
    "TextEmbeddings",
    "backbone_device",
    "template_texts",
    "text_direction",
    "text_embedding",
]


def backbone_device(backbone: VisionLanguageBackbone) -> torch.device:
    """Where the backbone's buffers live (the CPU for a backbone without any)."""
    return next((b.device for b in getattr(backbone, "buffers", lambda: iter(()))()), torch.device("cpu"))


@torch.no_grad()
def text_embedding(backbone: VisionLanguageBackbone, text: str, templates: str) -> torch.Tensor:
    """Average the raw embeddings over the templates, then L2-normalise (in that order). Always in
    fp32, also when called under mixed precision: a text is encoded once and reused for every step."""
    with torch.autocast(backbone_device(backbone).type, enabled=False):
        raw = backbone.encode_text(template_texts(text, templates)).float()
    return F.normalize(raw.mean(dim=0), dim=-1)


class TextEmbeddings:
    """Per-backbone cache: each (text, template set) is encoded once per process, and, when
    `identity` is given (textcache.backbone_identity) and the cache is on, once per machine."""

    def __init__(self, backbone: VisionLanguageBackbone, identity: Mapping[str, Any] | None = None) -> None:
        self.backbone = backbone
        self.identity = dict(identity) if identity is not None and text_cache_enabled() else None
        self._disk = TextCache() if self.identity is not None else None
        self._cache: dict[tuple[str, str], torch.Tensor] = {}

    def __call__(self, text: str, templates: str) -> torch.Tensor:
        key = (text, templates)
        if key not in self._cache:
            self._cache[key] = self._load_or_encode(text, templates)
        return self._cache[key]

    def __len__(self) -> int:
        return len(self._cache)

    def _load_or_encode(self, text: str, templates: str) -> torch.Tensor:
        if self._disk is None:
            return text_embedding(self.backbone, text, templates)
        device = backbone_device(self.backbone)
        key = self._disk_key(text, templates, device)
        stored = self._disk.load(key)
        if stored is not None:
            return stored.to(device)
        embedding = text_embedding(self.backbone, text, templates)
        self._disk.save(key, embedding)
        return embedding

    def _disk_key(self, text: str, templates: str, device: torch.device) -> dict[str, Any]:
        # The device type is part of the key: kernels differ between devices, and an embedding read
        # from the cache must be bitwise the one this device would compute.
        template_list = "\n".join(TEMPLATE_SETS[templates]).encode()
        return {"backbone": self.identity, "device": device.type, "templates": templates,
                "templates_sha256": hashlib.sha256(template_list).hexdigest(), "text": text}


def text_direction(backbone: VisionLanguageBackbone, style: str, source: str, templates: str) -> torch.Tensor:
    """ΔT = n(T(style) − T(source)): CLIPstyler's text direction for one style."""
    return F.normalize(text_embedding(backbone, style, templates) - text_embedding(backbone, source, templates), dim=-1)
