"""CLIPstyler's loss functions (pure tensor functions; the terms in objective/ apply them).

With n(v) = v/‖v‖, e_c = n(E_I(resize(content))) and ΔT the text direction:
  per-image directional loss  l = 1 − cos(n(n(E_I(x)) − e_c), ΔT)
  L_dir   = l for the whole output, resized to the backbone's input size
  L_patch = mean over all N crops of (l_i if l_i ≥ τ else 0)
  L_c     = Σ_{relu4_2, relu5_2} MSE(VGG(output), VGG(content))
  L_tv    = Σ ‖neighbour differences‖_F over the 4 directions (not squared)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clipstyler_opt.models import VisionLanguageBackbone

__all__ = [
    "content_loss",
    "directional_loss",
    "resize_for_backbone",
    "thresholded_mean",
    "total_variation",
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
    return sum(torch.linalg.vector_norm(d) for d in diffs)


def resize_for_backbone(image: torch.Tensor, backbone: VisionLanguageBackbone) -> torch.Tensor:
    """The whole image squashed to the backbone's input size with its interpolation (CLIPstyler's
    global view; a centre crop would hide the sides of non-square images from the loss)."""
    mode = backbone.interpolation if backbone.interpolation in ("bilinear", "bicubic", "nearest") else "bicubic"
    align = None if mode == "nearest" else False
    return F.interpolate(image, size=backbone.input_size, mode=mode, align_corners=align)
