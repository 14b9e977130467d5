"""Colour preservation: keep the content image's colours and take only the stylised luminance."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_ycbcr, ycbcr_to_rgb

__all__ = ["keep_colors"]


def keep_colors(stylised: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The stylised image's luminance with the content image's chroma.

    Works in YCbCr (BT.601, via kornia), as luminance-only style transfer usually does. YCbCr is a
    linear transform of RGB: Y of the result is exactly the stylised Y, the chroma is exactly the
    content's wherever the combination lies inside the RGB cube, and the cost is a few
    multiply-adds. CIELAB separates lightness more perceptually, but it is non-linear, its
    lightness is not CLIP's or VGG's notion of brightness either, and a Lab mix leaves the sRGB
    gamut more often, so clamping would change the lightness it was meant to keep.

    Where bright stylised luminance meets saturated content colour the mix leaves the RGB cube.
    There the chroma is scaled down (towards grey, hue kept) just enough to fit, so the
    luminance is still the stylised one and nothing is clipped channel by channel.

    Args:
        stylised: (B, 3, H, W) RGB in [0, 1].
        content: (1 or B, 3, h, w) RGB in [0, 1]; resized (bilinear, antialiased) to H x W if needed.

    Returns:
        (B, 3, H, W) RGB in [0, 1], in the dtype of `stylised`.
    """
    if stylised.dim() != 4 or stylised.shape[1] != 3:
        raise ValueError(f"stylised must have shape (B, 3, H, W), got {tuple(stylised.shape)}")
    if content.dim() != 4 or content.shape[1] != 3 or content.shape[0] not in (1, stylised.shape[0]):
        raise ValueError(f"content must have shape (1 or {stylised.shape[0]}, 3, h, w), got {tuple(content.shape)}")
    dtype = stylised.dtype
    stylised = stylised.float()
    content = content.to(device=stylised.device, dtype=torch.float32)
    if content.shape[-2:] != stylised.shape[-2:]:
        content = F.interpolate(content, size=stylised.shape[-2:], mode="bilinear", align_corners=False,
                                antialias=True)
    luma = rgb_to_ycbcr(stylised)[:, :1]
    content_ycbcr = rgb_to_ycbcr(content)
    # The content's chroma as an RGB offset from its grey: YCbCr is linear, so this is M·(Cb, Cr).
    offset = content - content_ycbcr[:, :1]
    scale = _largest_fitting_scale(luma, offset)
    chroma = 0.5 + scale * (content_ycbcr[:, 1:] - 0.5)
    mixed = ycbcr_to_rgb(torch.cat([luma, chroma], dim=1))
    return mixed.clamp(0.0, 1.0).to(dtype)


def _largest_fitting_scale(luma: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Per pixel, the largest s in [0, 1] with luma + s·offset inside [0, 1] in every channel."""
    room_up = (1.0 - luma) / offset.clamp_min(1e-12)
    room_down = luma / (-offset).clamp_min(1e-12)
    limit = torch.where(offset > 0, room_up, torch.where(offset < 0, room_down, torch.ones_like(room_up)))
    return limit.amin(dim=1, keepdim=True).clamp(0.0, 1.0)
