"""Pixels between Pillow and torch: the one conversion each way that the method and every tool use.

Example:
    >>> from PIL import Image
    >>> tensor = pil_to_tensor(Image.new("RGB", (4, 2), (255, 0, 0)))
    >>> tuple(tensor.shape), float(tensor[0, 0, 0, 0])
    ((1, 3, 2, 4), 1.0)
    >>> tensor_to_pil(tensor).getpixel((0, 0))
    (255, 0, 0)
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

__all__ = ["pil_to_tensor", "tensor_to_pil"]


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """8-bit RGB PIL image -> float tensor (1, 3, H, W) in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """Float tensor (1, 3, H, W) or (3, H, W) in [0, 1] -> 8-bit RGB PIL image (rounded)."""
    t = tensor.detach().float().cpu()
    t = t[0] if t.dim() == 4 else t
    array = (t.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(array, "RGB")
