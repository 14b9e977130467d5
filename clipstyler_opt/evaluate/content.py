"""Content metrics: how much of the photo's structure an output keeps.

Images are (1, 3, H, W) RGB in [0, 1]; output and content have the same size.
  ssim                  mean of kornia's SSIM map (11×11 Gaussian window, data range 1) over
                        pixels and channels; 1 for identical images                     higher is better
  edge_correlation      Pearson r between the Sobel gradient magnitudes of the two luminance
                        images (Y = 0.299 R + 0.587 G + 0.114 B)                        higher is better
  vgg_content_distance  Σ_{relu4_2, relu5_2} MSE(VGG(output), VGG(content)): the content loss
                        the optimisation minimised (losses.content_loss)               lower is better
"""

from __future__ import annotations

import kornia
import torch
from torch import nn

from clipstyler_opt.evaluate.names import MetricUnavailable
from clipstyler_opt.method.losses import content_loss

__all__ = ["SSIM_WINDOW", "edge_correlation", "edge_magnitude", "pearson", "ssim", "vgg_content_distance"]

SSIM_WINDOW = 11


def _check_pair(output: torch.Tensor, content: torch.Tensor) -> None:
    if output.shape != content.shape or output.dim() != 4 or output.shape[1] != 3:
        raise ValueError(f"expected two (B, 3, H, W) images of one shape, got {tuple(output.shape)} and "
                         f"{tuple(content.shape)}")


def ssim(output: torch.Tensor, content: torch.Tensor) -> float:
    """Mean SSIM of two RGB images in [0, 1].

    Args:
        output: (1, 3, H, W) in [0, 1].
        content: the same shape.

    Returns:
        The mean of the SSIM map; at most 1, which it reaches only for identical images.

    Raises:
        MetricUnavailable: a side of 5 px or less (the window's reflected border needs more).

    Example:
        >>> x = torch.rand(1, 3, 32, 32)
        >>> round(ssim(x, x), 6)
        1.0
    """
    _check_pair(output, content)
    if min(output.shape[-2:]) <= SSIM_WINDOW // 2:
        border = SSIM_WINDOW // 2
        raise MetricUnavailable(f"the image is {min(output.shape[-2:])} px a side: SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} "
                                f"window needs more than {border} (it reflects a {border} px border)")
    return float(kornia.metrics.ssim(output.float(), content.float(), SSIM_WINDOW, max_val=1.0).mean())


def edge_magnitude(image: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the luminance: (B, 3, H, W) -> (B, 1, H, W)."""
    return kornia.filters.sobel(kornia.color.rgb_to_grayscale(image.float()))


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two tensors' elements (in float64).

    Raises:
        MetricUnavailable: when either is constant (the correlation is undefined).
    """
    x, y = a.flatten().double(), b.flatten().double()
    x, y = x - x.mean(), y - y.mean()
    scale = torch.sqrt((x * x).sum() * (y * y).sum())
    if not scale > 0:
        raise MetricUnavailable("an image without edges (flat): the correlation is undefined")
    return float((x * y).sum() / scale)


def edge_correlation(output: torch.Tensor, content: torch.Tensor) -> float:
    """Pearson r of the Sobel magnitudes of output and content luminance; needs no weights."""
    _check_pair(output, content)
    return pearson(edge_magnitude(output), edge_magnitude(content))


def vgg_content_distance(vgg: nn.Module, output: torch.Tensor, content: torch.Tensor) -> float:
    """The content loss itself: Σ over the network's taps of MSE(VGG(output), VGG(content))."""
    _check_pair(output, content)
    with torch.no_grad():
        return float(content_loss(vgg(output.float()), vgg(content.float())))
