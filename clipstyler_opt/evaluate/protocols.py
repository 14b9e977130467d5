"""Measurement protocols, by name, so that a number says which published numbers it compares with.

Patch protocols (`patch_clip_score`, `--patch-protocol`):
  train  N plain square crops of one side (default 64 of 128 px, clipped to the short side), cut
         from the output at its own size: CLIPstyler's *training* crop count and size.
  paper  CLIPstyler's evaluation (Kwon & Ye 2022, Table 2): the output resized to 512×512
         (bicubic, antialiased), then N = 64 square crops whose side is drawn uniformly from
         64…224 px (both included) at uniformly drawn positions; every crop is resized to the
         scorer's input size (bilinear). Sizes and positions come from a private generator
         seeded with `seed`, so one file always gets the same crops.

SSIM protocols (`ssim`, `--ssim-protocol`):
  default  the mean of kornia's SSIM map over pixels and RGB channels, 11×11 Gaussian window
           (σ 1.5), borders reflected (every pixel counts), images at the output's size.
  wang     Wang et al.'s reference procedure (ssim_index.m and its recommended use): luminance
           Y = 0.299 R + 0.587 G + 0.114 B; downsampling by f = max(1, round(min(H, W)/256)) (MATLAB's
           round: 2.5 -> 3) with
           an f×f box filter (symmetric borders, anchored as MATLAB's imfilter anchors an even
           kernel) keeping every f-th pixel; 11×11 Gaussian window σ 1.5 applied only where it
           fits ('valid', no borders); K1 = 0.01, K2 = 0.03, L = 1; the mean of the map.
           Unlike MATLAB's rgb2gray, Y is not rounded to 8 bits.

CLIPScore (Hessel et al. 2021), the `clipscore` column: 2.5 · max(cos(E_I(view(output)),
E_T("A photo depicts " + prompt)), 0), one text with no template averaging (for a weighted
prompt, the weighted, normalised mix of each part's text).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from clipstyler_opt.evaluate.names import MetricUnavailable

__all__ = [
    "CLIPSCORE_PREFIX",
    "CLIPSCORE_WEIGHT",
    "PAPER_CANVAS",
    "PAPER_CROPS",
    "PAPER_SIZES",
    "PATCH_PROTOCOLS",
    "SSIM_PROTOCOLS",
    "clipscore_record",
    "paper_boxes",
    "paper_patches",
    "ssim_record",
    "wang_downsample",
    "wang_ssim",
]

PATCH_PROTOCOLS = ("train", "paper")
SSIM_PROTOCOLS = ("default", "wang")
PAPER_CANVAS = 512  # the output is resized to 512×512 first
PAPER_SIZES = (64, 224)  # crop sides, both ends included
PAPER_CROPS = 64
CLIPSCORE_WEIGHT = 2.5
CLIPSCORE_PREFIX = "A photo depicts "
WANG_WINDOW, WANG_SIGMA, WANG_K1, WANG_K2 = 11, 1.5, 0.01, 0.03
LUMINANCE = (0.299, 0.587, 0.114)


def paper_boxes(crops: int, seed: int) -> list[tuple[int, int, int]]:
    """(top, left, side) of the paper protocol's crops on the 512×512 canvas.

    Example:
        >>> boxes = paper_boxes(64, seed=0)
        >>> len(boxes), all(64 <= side <= 224 and top + side <= 512 and left + side <= 512
        ...                 for top, left, side in boxes)
        (64, True)
        >>> boxes == paper_boxes(64, seed=0)
        True
    """
    generator = torch.Generator().manual_seed(seed)
    low, high = PAPER_SIZES
    boxes = []
    for side in torch.randint(low, high + 1, (crops,), generator=generator).tolist():
        top, left = torch.randint(0, PAPER_CANVAS - side + 1, (2,), generator=generator).tolist()
        boxes.append((top, left, side))
    return boxes


def paper_patches(image: torch.Tensor, crops: int, seed: int, out_size: tuple[int, int]) -> torch.Tensor:
    """The paper protocol's crops of `image` (1, C, H, W) in [0, 1], each at `out_size`.

    Example:
        >>> paper_patches(torch.rand(1, 3, 40, 60), crops=5, seed=1, out_size=(32, 32)).shape
        torch.Size([5, 3, 32, 32])
    """
    canvas = F.interpolate(image.float(), size=(PAPER_CANVAS, PAPER_CANVAS), mode="bicubic", align_corners=False,
                           antialias=True).clamp(0.0, 1.0)
    patches = [F.interpolate(canvas[..., top:top + side, left:left + side], size=out_size, mode="bilinear",
                             align_corners=False, antialias=side > min(out_size))
               for top, left, side in paper_boxes(crops, seed)]
    return torch.cat(patches)


def _symmetric_index(count: int, before: int, after: int) -> torch.Tensor:
    """Indices of a row of `count` padded symmetrically (the edge pixel repeated, as MATLAB's 'symmetric')."""
    index = torch.arange(-before, count + after)
    index = torch.where(index < 0, -index - 1, index)
    index = torch.where(index >= count, 2 * count - index - 1, index)
    return index.clamp(0, count - 1)


def wang_downsample(gray: torch.Tensor) -> torch.Tensor:
    """Wang et al.'s downsampling of a (B, 1, H, W) luminance: f = max(1, round(min(H, W)/256)),
    an f×f box filter with symmetric borders, then every f-th pixel from the first.

    Example:
        >>> wang_downsample(torch.ones(1, 1, 600, 700)).shape  # f = round(600/256) = 2
        torch.Size([1, 1, 300, 350])
    """
    factor = max(1, math.floor(min(gray.shape[-2:]) / 256 + 0.5))  # MATLAB's round: halves away from 0
    if factor == 1:
        return gray
    before = (factor + 1) // 2 - 1  # MATLAB anchors an f-tap kernel at tap floor((f + 1)/2)
    after = factor - 1 - before
    rows = _symmetric_index(gray.shape[-2], before, after).to(gray.device)
    cols = _symmetric_index(gray.shape[-1], before, after).to(gray.device)
    padded = gray.index_select(-2, rows).index_select(-1, cols)
    box = torch.full((1, 1, factor, factor), 1.0 / factor ** 2, dtype=gray.dtype, device=gray.device)
    return F.conv2d(padded, box)[..., ::factor, ::factor]


def _gaussian(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    x = torch.arange(WANG_WINDOW, dtype=dtype, device=device) - (WANG_WINDOW - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * WANG_SIGMA ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, WANG_WINDOW, WANG_WINDOW)


def wang_ssim(output: torch.Tensor, content: torch.Tensor) -> float:
    """SSIM by Wang et al.'s reference protocol (see the module docstring), in float64.

    Args:
        output: (1, 3, H, W) RGB in [0, 1].
        content: the same shape.

    Raises:
        MetricUnavailable: the downsampled image is smaller than the 11×11 window.

    Example:
        >>> x = torch.rand(1, 3, 40, 40)
        >>> round(wang_ssim(x, x), 6)
        1.0
    """
    if output.shape != content.shape or output.dim() != 4 or output.shape[1] != 3:
        raise ValueError(f"expected two (B, 3, H, W) images of one shape, got {tuple(output.shape)} and "
                         f"{tuple(content.shape)}")
    weights = torch.tensor(LUMINANCE, dtype=torch.float64, device=output.device).view(1, 3, 1, 1)
    x, y = ((image.double() * weights).sum(dim=1, keepdim=True) for image in (output, content))
    x, y = wang_downsample(x), wang_downsample(y)
    if min(x.shape[-2:]) < WANG_WINDOW:
        raise MetricUnavailable(f"the image is {min(x.shape[-2:])} px a side after Wang's downsampling: SSIM's "
                                f"{WANG_WINDOW}x{WANG_WINDOW} window does not fit")
    window = _gaussian(x.dtype, x.device)
    mu_x, mu_y = F.conv2d(x, window), F.conv2d(y, window)
    var_x = F.conv2d(x * x, window) - mu_x ** 2
    var_y = F.conv2d(y * y, window) - mu_y ** 2
    cov = F.conv2d(x * y, window) - mu_x * mu_y
    c1, c2 = WANG_K1 ** 2, WANG_K2 ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def ssim_record(name: str) -> dict[str, Any]:
    """What eval.json records about the SSIM protocol `name`.

    Example:
        >>> ssim_record("wang")["channels"]
        'luminance 0.299 R + 0.587 G + 0.114 B'
    """
    window = {"window": "11x11 Gaussian", "sigma": 1.5, "k1": 0.01, "k2": 0.03, "data_range": 1.0}
    if name == "wang":
        return {"name": "wang", **window, "channels": "luminance 0.299 R + 0.587 G + 0.114 B",
                "downsampling": "f = max(1, round(min(H, W)/256)), f x f box filter, every f-th pixel",
                "borders": "valid (the window only where it fits)",
                "comparable_with": "Wang et al. 2004's reference ssim_index.m with its recommended downsampling"}
    return {"name": "default", **window, "channels": "mean over R, G, B", "downsampling": "none",
            "borders": "reflected (every pixel counts)", "implementation": "kornia.metrics.ssim",
            "comparable_with": "kornia/torchmetrics SSIM on RGB at full size (not Wang's protocol)"}


def clipscore_record() -> dict[str, Any]:
    """What eval.json records about the `clipscore` column.

    Example:
        >>> clipscore_record()["weight"]
        2.5
    """
    return {"definition": "w * max(cos(E_I(view(output)), E_T(prefix + prompt)), 0)", "weight": CLIPSCORE_WEIGHT,
            "prefix": CLIPSCORE_PREFIX, "templates": "none", "comparable_with": "Hessel et al. 2021 (CLIPScore)"}
