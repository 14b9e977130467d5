"""Style metrics, measured with a scorer backbone (a vision-language model like the optimisers).

With n(v) = v/‖v‖, E_I the scorer's image encoder, view(x) the whole image squashed to its input
size (losses.resize_for_backbone), T(text) the template-averaged, normalised text embedding
(text.TextEmbeddings) and, for a prompt of weighted parts, T = n(Σ_k ŵ_k T_k):
  clip_score              cos(E_I(view(output)), T(prompt))                         higher is better
  directional_similarity  1 − directional_loss = cos(n(n(E_I(view(output))) − n(E_I(view(content)))),
                          ΔT), ΔT = n(T(prompt) − T(source text)) (styles.fuse_directions)   higher
  patch_clip_score        mean clip_score over the patch protocol's random square crops of the
                          output, each resized to the scorer's input size            higher is better
  clipscore               Hessel et al.'s CLIPScore: 2.5 · max(cos(E_I(view(output)),
                          T_1("A photo depicts " + prompt)), 0), T_1 one text without templates  higher

Patch protocols (protocols.py): `train`, N = 64 crops of 128 px (side clipped to the image's short
side), and `paper`, 64 crops of 64…224 px from the output resized to 512×512; positions drawn from
a fixed seed, so one file always gets the same number on one device. The crops are plain:
training warps them (a random perspective with black fill) to stop the optimiser from fitting
one view; a measurement should see the image's own pixels, and black corners would lower every
score by an amount that depends on the warp, not on the output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from clipstyler_opt.core.styles import StyleSpec, fuse_directions, normalised_weights
from clipstyler_opt.evaluate.names import MetricUnavailable
from clipstyler_opt.evaluate.protocols import (
    CLIPSCORE_PREFIX,
    CLIPSCORE_WEIGHT,
    PAPER_CANVAS,
    PAPER_SIZES,
    PATCH_PROTOCOLS,
    paper_patches,
)
from clipstyler_opt.method.ensemble import Member
from clipstyler_opt.method.losses import directional_loss, resize_for_backbone
from clipstyler_opt.method.views import PatchCrops

__all__ = ["EncodedViews", "PatchProtocol", "StyleScorer", "TextTarget", "clip_score", "directional_similarity"]


def clip_score(image_features: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
    """Per-row cos(f, T) for raw image features (B, D) and a text embedding (D,), in fp32."""
    return F.normalize(image_features.float(), dim=-1) @ F.normalize(text_embedding.float(), dim=-1)


def directional_similarity(image_features: torch.Tensor, content_embedding: torch.Tensor,
                           direction: torch.Tensor) -> torch.Tensor:
    """Per-row 1 − directional_loss: cos(n(n(f) − e_c), ΔT); e_c normalised, ΔT a unit direction."""
    return 1.0 - directional_loss(image_features, content_embedding, direction)


@dataclass(frozen=True)
class PatchProtocol:
    """How patch_clip_score crops: `name` "train" (`crops` of `crop_size`) or "paper" (`crops` of
    64…224 px from the output resized to 512×512; `crop_size` unused); `seed` fixes the crops.

    Example:
        >>> PatchProtocol(name="paper").describe()["crop_sides"]
        [64, 224]
    """

    crops: int = 64
    crop_size: int = 128
    seed: int = 0
    name: str = "train"

    def __post_init__(self) -> None:
        if self.crops < 1 or self.crop_size < 1:
            raise ValueError("patch crops and crop size must be at least 1")
        if self.name not in PATCH_PROTOCOLS:
            raise ValueError(f"unknown patch protocol {self.name!r} (known: {', '.join(PATCH_PROTOCOLS)})")

    def side(self, height: int, width: int) -> int:
        """The crop side used for an image: `crop_size`, clipped to the short side."""
        return min(self.crop_size, height, width)

    def describe(self) -> dict[str, object]:
        """What eval.json records about the protocol."""
        if self.name == "paper":
            return {"name": "paper", "crops": self.crops, "crop_sides": list(PAPER_SIZES), "seed": self.seed,
                    "resized_to": [PAPER_CANVAS, PAPER_CANVAS], "distortion": 0.0,
                    "comparable_with": "CLIPstyler (Kwon & Ye 2022) Table 2 patch CLIP score (0.2515 CLIPstyler, "
                                       "0.2252 StyleGAN-NADA), given the same CLIP scorer"}
        return {**asdict(self), "distortion": 0.0, "crop_side": "min(crop_size, short side)",
                "comparable_with": "CLIPstyler's training crop count and size; no published evaluation number"}


@dataclass(frozen=True)
class EncodedViews:
    """One output's image features under a scorer: the whole output (raw or normalised, (1, D)),
    the normalised content embedding (D,) and the protocol's crops (N, D)."""

    output: torch.Tensor
    content: torch.Tensor
    patches: torch.Tensor


@dataclass(frozen=True)
class TextTarget:
    """What the style metrics compare with: T(prompt) and the direction ΔT from the source text."""

    embedding: torch.Tensor
    direction: torch.Tensor
    clipscore: torch.Tensor  # n(Σ ŵ_k T_1(CLIPSCORE_PREFIX + text_k)): one text each, no templates


class StyleScorer:
    """The scorer backbone, its template set and the patch protocol; text targets cached per prompt."""

    def __init__(self, member: Member, templates: str, protocol: PatchProtocol = PatchProtocol()) -> None:
        self.member, self.templates, self.protocol = member, templates, protocol
        self._last: tuple[torch.Tensor, torch.Tensor, EncodedViews] | None = None

    @torch.no_grad()
    def target(self, style: StyleSpec, source_text: str) -> TextTarget:
        embeddings = torch.stack([self.member.texts(text, self.templates) for text in style.texts])
        weights = torch.tensor(normalised_weights(style.weights), dtype=embeddings.dtype, device=embeddings.device)
        fused = F.normalize((weights[:, None] * embeddings).sum(dim=0), dim=-1)
        direction = fuse_directions(embeddings, style.weights, self.member.texts(source_text, self.templates))
        captions = torch.stack([self.member.texts(CLIPSCORE_PREFIX + text, "none") for text in style.texts])
        caption = F.normalize((weights[:, None] * captions).sum(dim=0), dim=-1)
        return TextTarget(fused, direction, caption)

    def patches(self, image: torch.Tensor) -> torch.Tensor:
        """The protocol's crops of `image` (1, 3, H, W), at the scorer's input size; the same every call."""
        if self.protocol.name == "paper":
            return paper_patches(image, self.protocol.crops, self.protocol.seed, self.member.backbone.input_size)
        side = self.protocol.side(*image.shape[-2:])
        crops = PatchCrops(self.protocol.crops, side, 0.0, self.member.backbone.input_size)
        devices = [image.device] if image.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.protocol.seed)
            return crops(image)

    @torch.no_grad()
    def encode(self, output: torch.Tensor, content: torch.Tensor,
               output_embedding: torch.Tensor | None = None) -> EncodedViews:
        """The image features `score` needs, encoded once per output: scoring the same tensors
        again (against each part of a prompt) reuses them. `output_embedding` is n(E_I(view(output)))
        when already known (the embedding cache), so the whole output is not encoded again."""
        if self._last is not None and self._last[0] is output and self._last[1] is content:
            return self._last[2]
        backbone = self.member.backbone
        if output_embedding is None:
            output_embedding = backbone.encode_image(resize_for_backbone(output.float(), backbone)).float()
        content_features = backbone.encode_image(resize_for_backbone(content.float(), backbone)).float()
        views = EncodedViews(output_embedding.reshape(1, -1).float(), F.normalize(content_features[0], dim=-1),
                             backbone.encode_image(self.patches(output.float())).float())
        self._last = (output, content, views)
        return views

    @torch.no_grad()
    def score(self, output: torch.Tensor, content: torch.Tensor, style: StyleSpec | None,
              source_text: str) -> dict[str, float]:
        """clip_score, clipscore, directional_similarity and patch_clip_score of `output` (1, 3, H, W) in [0, 1].

        Raises:
            MetricUnavailable: there is no style text (the output was guided by style images only).
        """
        if style is None:
            raise MetricUnavailable("no style text: the output was guided by style images only")
        target = self.target(style, source_text)
        views = self.encode(output, content)
        return {
            "clip_score": float(clip_score(views.output, target.embedding)[0]),
            "clipscore": CLIPSCORE_WEIGHT * max(float(clip_score(views.output, target.clipscore)[0]), 0.0),
            "directional_similarity": float(directional_similarity(views.output, views.content,
                                                                   target.direction)[0]),
            "patch_clip_score": float(clip_score(views.patches, target.embedding).mean()),
        }
