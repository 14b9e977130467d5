"""Image sizes: the working size of an input, and padding for the U-Net's three downsamplings."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clipstyler_opt.models.unet import SIDE_MULTIPLE

__all__ = ["MIN_SIDE", "pad_to_multiple", "working_size"]

MIN_SIDE = 16  # VGG19 pools four times before relu5_2


def working_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def pad_to_multiple(image: torch.Tensor, multiple: int = SIDE_MULTIPLE) -> torch.Tensor:
    height, width = image.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    return F.pad(image, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else image
