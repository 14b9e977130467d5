"""An independent reference of CLIPstyler's objective for one backbone, written from the formulas
in method/losses.py's docstring with plain torch operations. It imports nothing from the
package: the named-term objective must reproduce it (same values, same gradients).

With n(v) = v/‖v‖, e_c = n(E_I(squash(content))) and ΔT the text direction:
  l       = 1 − n(n(E_I(x)) − e_c)·ΔT            per view x
  dir     = l of the whole output squashed to the backbone's input size
  patch   = mean over the N crops of (l_i if l_i ≥ τ else 0)
  content = MSE(relu4_2) + MSE(relu5_2) of VGG(output) against VGG(content)
  tv      = Σ over 4 neighbour directions of the Frobenius norm of the differences
  total   = λ_patch·patch + λ_dir·dir + λ_content·content + λ_tv·tv
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def unit(v: torch.Tensor) -> torch.Tensor:
    """v / ‖v‖ along the last axis (the norm floored at 1e-12, as normalisation usually is)."""
    return v / torch.sqrt((v * v).sum(dim=-1, keepdim=True)).clamp_min(1e-12)


def squash(image: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """The whole image resized to `size`, aspect ratio ignored (no centre crop)."""
    return F.interpolate(image, size=size, mode=mode, align_corners=False)


def per_view_loss(features: torch.Tensor, content_embedding: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    moved = unit(unit(features.float()) - content_embedding)
    return 1.0 - moved @ direction


def mean_above(losses: torch.Tensor, threshold: float) -> torch.Tensor:
    kept = (losses >= threshold).to(losses.dtype)
    return (losses * kept).sum() / losses.numel()


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a.float() - b.float()) ** 2).sum() / a.numel()


def frobenius(d: torch.Tensor) -> torch.Tensor:
    return torch.sqrt((d * d).sum())


def total_variation(image: torch.Tensor) -> torch.Tensor:
    x = image.float()
    right = x[..., :, 1:] - x[..., :, :-1]
    down = x[..., 1:, :] - x[..., :-1, :]
    anti_diagonal = x[..., :-1, 1:] - x[..., 1:, :-1]
    diagonal = x[..., 1:, 1:] - x[..., :-1, :-1]
    return frobenius(right) + frobenius(down) + frobenius(anti_diagonal) + frobenius(diagonal)


class ReferenceObjective(nn.Module):
    """`vgg` returns the relu4_2 and relu5_2 feature maps; `crops` draws the N patch views."""

    def __init__(self, backbone, vgg, content, direction, crops, weights, threshold) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.backbone, self.vgg, self.crops, self.weights, self.threshold = backbone, vgg, crops, weights, threshold
        self.size, self.mode = tuple(backbone.input_size), backbone.interpolation
        self.direction = direction.float()
        with torch.no_grad():
            self.content_embedding = unit(backbone.encode_image(squash(content, self.size, self.mode)).float())
            relu4_2, relu5_2 = vgg(content)
            self.content_features = (relu4_2.detach(), relu5_2.detach())

    def forward(self, output: torch.Tensor) -> dict[str, torch.Tensor]:
        views = torch.cat([squash(output, self.size, self.mode), self.crops(output)])
        losses = per_view_loss(self.backbone.encode_image(views), self.content_embedding, self.direction)
        loss_dir = losses[0]
        loss_patch = mean_above(losses[1:], self.threshold)
        relu4_2, relu5_2 = self.vgg(output)
        loss_content = mse(relu4_2, self.content_features[0]) + mse(relu5_2, self.content_features[1])
        loss_tv = total_variation(output)
        w = self.weights
        total = w["patch"] * loss_patch + w["dir"] * loss_dir + w["content"] * loss_content + w["tv"] * loss_tv
        return {"total": total, "patch": loss_patch, "dir": loss_dir, "content": loss_content, "tv": loss_tv}
