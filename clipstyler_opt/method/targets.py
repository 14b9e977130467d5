"""Style targets: what the output should move towards, as directions in each member's embedding space.

A target is one or more weighted style texts and style images. For every ensemble member it
yields components (a_k, Δ_k) that the CLIP terms combine as Σ_k a_k · L(Δ_k). All weights are
divided by |Σ w| over texts and images together (styles.normalised_weights):
  one style of weight 1 (the paper):  [(1, n(T_style − T_source))]
  texts, fusion "directions":         [(|Σ_text ŵ|, n(Σ_k ŵ'_k T_k − T_source))], ŵ' over the texts only
  texts, fusion "losses":             [(ŵ_k, n(T_k − T_source)) for each text k]
  each style image j:                 (ŵ_j, n(n(E_I(view(S_j))) − e_c))
An image direction lives in the image-embedding space, from the content's embedding e_c to the
style image's; it is never mixed with text embeddings, because the two modalities occupy
different regions of the joint space (the modality gap) and their difference would mostly
encode "image versus text" rather than style.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.styles import FUSION_MODES, StyleSpec, fuse_directions, normalised_weights
from clipstyler_opt.method.ensemble import Member
from clipstyler_opt.method.losses import resize_for_backbone

__all__ = ["FUSION_MODES", "Component", "StyleTarget"]

Component = tuple[float, torch.Tensor]


@dataclass(frozen=True)
class StyleTarget:
    style: StyleSpec | None  # None: style images only
    source: str = "a Photo"
    fusion: str = "directions"
    images: tuple[tuple[torch.Tensor, float], ...] = ()  # ((1, 3, h, w) in [0, 1], weight)

    def __post_init__(self) -> None:
        if self.fusion not in FUSION_MODES:
            raise ConfigError(f"fusion must be one of {', '.join(FUSION_MODES)}, got {self.fusion!r}")
        if self.style is None and not self.images:
            raise ConfigError("the style prompt is empty and no --style-image is given")
        normalised_weights(self._weights())  # a mix whose weights sum to 0 fails here

    @classmethod
    def from_prompt(cls, prompt: str, source: str, fusion: str = "directions",
                    images: tuple[tuple[torch.Tensor, float], ...] = ()) -> StyleTarget:
        return cls(StyleSpec.parse(prompt) if prompt.strip() else None, source, fusion, images)

    def _weights(self) -> list[float]:
        return [*(self.style.weights if self.style else ()), *(weight for _, weight in self.images)]

    @torch.no_grad()
    def components(self, member: Member, templates: str, content_embedding: torch.Tensor) -> list[Component]:
        weights = normalised_weights(self._weights())
        split = len(weights) - len(self.images)
        text_weights, image_weights = weights[:split], weights[split:]
        components: list[Component] = []
        if self.style is not None:
            source = member.texts(self.source, templates)
            embeddings = [member.texts(text, templates) for text in self.style.texts]
            if self.style.is_single and not self.images:  # the paper: ΔT = n(T_style − T_source)
                components.append((1.0, F.normalize(embeddings[0] - source, dim=-1)))
            elif self.fusion == "directions":
                fused = fuse_directions(torch.stack(embeddings), self.style.weights, source)
                components.append((abs(sum(text_weights)), fused))
            else:
                components += [(w, F.normalize(e - source, dim=-1))
                               for w, e in zip(text_weights, embeddings, strict=True)]
        backbone = member.backbone
        for (image, _), weight in zip(self.images, image_weights, strict=True):
            view = resize_for_backbone(image.to(content_embedding.device), backbone)
            style_embedding = F.normalize(backbone.encode_image(view).float(), dim=-1)
            components.append((weight, F.normalize(style_embedding[0] - content_embedding, dim=-1)))
        return components

    def describe(self) -> dict[str, object]:
        return {"style": self.style.to_dict() if self.style else None, "source": self.source, "fusion": self.fusion,
                "image_weights": [weight for _, weight in self.images]}
