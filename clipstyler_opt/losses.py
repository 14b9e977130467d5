"""CLIPstyler's loss terms and their weighted sum.

With n(v) = v/‖v‖, e_c = n(E_I(resize(content))) and ΔT the text direction:
  per-image directional loss  l = 1 − cos(n(n(E_I(x)) − e_c), ΔT)
  L_dir   = l for the whole output, resized to the backbone's input size
  L_patch = mean over all N crops of (l_i if l_i ≥ τ else 0)
  L_c     = Σ_{relu4_2, relu5_2} MSE(VGG(output), VGG(content))
  L_tv    = Σ ‖neighbour differences‖_F over the 4 directions (not squared)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .augment import PatchCrops
from .backbones import VisionLanguageBackbone

__all__ = [
    "directional_loss",
    "thresholded_mean",
    "content_loss",
    "total_variation",
    "LossWeights",
    "LossTerms",
    "StyleObjective",
    "resize_for_backbone",
]


def directional_loss(image_features: torch.Tensor, content_embedding: torch.Tensor,
                     direction: torch.Tensor) -> torch.Tensor:
    """Per-row 1 − cos(n(n(f) − e_c), ΔT) for raw features f of shape (B, D), always in fp32
    (a matmul here would be lowered to bf16/fp16 by autocast, moving crops across the threshold)."""
    image_direction = F.normalize(F.normalize(image_features.float(), dim=-1) - content_embedding.float(), dim=-1)
    return 1.0 - (image_direction * direction.float()).sum(dim=-1)


def thresholded_mean(losses: torch.Tensor, threshold: float) -> torch.Tensor:
    """Zero every loss strictly below `threshold` (no gradient from it), then average over all."""
    return torch.where(losses < threshold, torch.zeros_like(losses), losses).mean()


def content_loss(features: list[torch.Tensor], reference: list[torch.Tensor]) -> torch.Tensor:
    return sum(F.mse_loss(f.float(), r.float()) for f, r in zip(features, reference, strict=True))  # type: ignore[return-value]


def total_variation(image: torch.Tensor) -> torch.Tensor:
    x = image.float()
    diffs = (
        x[..., :, :-1] - x[..., :, 1:],
        x[..., :-1, :] - x[..., 1:, :],
        x[..., 1:, :-1] - x[..., :-1, 1:],
        x[..., :-1, :-1] - x[..., 1:, 1:],
    )
    return sum(torch.linalg.vector_norm(d) for d in diffs)  # type: ignore[return-value]


def resize_for_backbone(image: torch.Tensor, backbone: VisionLanguageBackbone) -> torch.Tensor:
    mode = backbone.interpolation if backbone.interpolation in ("bilinear", "bicubic", "nearest") else "bicubic"
    align = None if mode == "nearest" else False
    return F.interpolate(image, size=backbone.input_size, mode=mode, align_corners=align)


@dataclass(frozen=True)
class LossWeights:
    patch: float
    dir: float
    content: float
    tv: float


@dataclass(frozen=True)
class LossTerms:
    patch: torch.Tensor
    dir: torch.Tensor
    content: torch.Tensor
    tv: torch.Tensor
    total: torch.Tensor

    def as_tensor(self) -> torch.Tensor:
        return torch.stack([self.total, self.patch, self.dir, self.content, self.tv]).detach()

    NAMES = ("total", "patch", "dir", "content", "tv")


class StyleObjective(nn.Module):
    """The full CLIPstyler objective for one content image and one text direction.

    The content references (e_c and the VGG features) are computed once, here.
    """

    def __init__(self, backbone: VisionLanguageBackbone, vgg: nn.Module, content: torch.Tensor,
                 direction: torch.Tensor, crops: PatchCrops, weights: LossWeights, threshold: float) -> None:
        super().__init__()
        self.backbone = backbone
        self.vgg = vgg
        self.crops = crops
        self.weights = weights
        self.threshold = threshold
        self.direction = direction.float()
        with torch.no_grad():
            self.content_embedding = F.normalize(
                backbone.encode_image(resize_for_backbone(content, backbone)).float(), dim=-1)
            self.content_features = [f.detach() for f in vgg(content)]

    def forward(self, output: torch.Tensor) -> LossTerms:
        # One backbone pass for the whole output and its crops: same values as two passes, less overhead.
        views = torch.cat([resize_for_backbone(output, self.backbone), self.crops(output)])
        per_view = directional_loss(self.backbone.encode_image(views), self.content_embedding, self.direction)
        loss_dir = per_view[0]
        loss_patch = thresholded_mean(per_view[1:], self.threshold)
        loss_content = content_loss(self.vgg(output), self.content_features)
        loss_tv = total_variation(output)
        w = self.weights
        total = w.patch * loss_patch + w.dir * loss_dir + w.content * loss_content + w.tv * loss_tv
        return LossTerms(patch=loss_patch, dir=loss_dir, content=loss_content, tv=loss_tv, total=total)
