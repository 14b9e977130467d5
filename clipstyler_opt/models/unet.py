"""The lightweight U-Net that CLIPstyler optimises afresh for every content image."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SIDE_MULTIPLE", "ResBlock", "UNet"]

SIDE_MULTIPLE = 8  # three stride-2 downsamplings


class ResBlock(nn.Module):
    """Two conv-IN-ReLU layers plus a parallel 1x1 shortcut; summed, no activation after the sum."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.InstanceNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.InstanceNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class UNet(nn.Module):
    """Maps an RGB image in [0, 1] to a stylised RGB image in (0, 1). Sides must be multiples of 8."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 1), ResBlock(w, w))
        self.down_blocks = nn.ModuleList([ResBlock(w, w), ResBlock(w, 2 * w), ResBlock(2 * w, 4 * w)])
        self.downsamplers = nn.ModuleList(
            [nn.Conv2d(c, c, 4, stride=2, padding=1) for c in (w, 2 * w, 4 * w)]
        )
        self.bottleneck = ResBlock(4 * w, 8 * w)
        self.up_blocks = nn.ModuleList(
            [ResBlock(8 * w + 4 * w, 4 * w), ResBlock(4 * w + 2 * w, 2 * w), ResBlock(2 * w + w, w)]
        )
        self.head = nn.Sequential(ResBlock(2 * w, w), nn.Conv2d(w, 3, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        if height % SIDE_MULTIPLE or width % SIDE_MULTIPLE:
            raise ValueError(f"UNet input sides must be multiples of {SIDE_MULTIPLE}, got {height}x{width}")
        x0 = self.stem(image)
        x = x0
        skips = []
        for block, down in zip(self.down_blocks, self.downsamplers, strict=True):
            x = block(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for block, skip in zip(self.up_blocks, reversed(skips), strict=True):
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return torch.sigmoid(self.head(torch.cat([x, x0], dim=1)))
