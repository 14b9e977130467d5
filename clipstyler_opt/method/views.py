"""Batched random crops for the patch loss: crop -> perspective warp -> resize, one kornia call each.

Every crop gets its own position and warp (per-sample parameters), drawn from torch's RNG so
that a seed fixes them. Gradients flow back through all three operations to the image.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PatchCrops"]


class PatchCrops(nn.Module):
    def __init__(self, crops: int, crop_size: int, distortion: float, out_size: tuple[int, int]) -> None:
        super().__init__()
        self.crops = crops
        self.out_size = out_size
        # torchvision's Resize antialiases; that only changes anything when shrinking (and the
        # antialiased kernel has no reduced-precision implementation), so it is used only then.
        self.antialias = crop_size > min(out_size)
        self.crop = K.RandomCrop((crop_size, crop_size), cropping_mode="slice")
        # CLIPstyler: torchvision RandomPerspective(distortion_scale=0.5, p=1, fill=0), bilinear.
        self.warp: nn.Module = (K.RandomPerspective(distortion_scale=distortion, p=1.0) if distortion > 0
                                else nn.Identity())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: (1, C, H, W) -> (crops, C, *out_size)."""
        batch = image.expand(self.crops, -1, -1, -1)
        patches = self.warp(self.crop(batch))
        # CLIPstyler resizes crops with torchvision's Resize (bilinear), not the backbone's mode.
        if self.antialias:
            patches = patches.float()
        return F.interpolate(patches, size=self.out_size, mode="bilinear", align_corners=False,
                             antialias=self.antialias)
