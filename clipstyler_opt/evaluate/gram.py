"""Style-image metric: how close an output's feature statistics are to a style image's.

With F_l the (C, H·W) activations of VGG19 layer l (Gatys et al.'s style layers relu1_1,
relu2_1, relu3_1, relu4_1, relu5_1, all inside the content network this project loads):
  G_l = F_l F_lᵀ / (C·H·W)                       the normalised Gram matrix (size-independent)
  gram_distance = mean_l ‖G_l(output) − G_l(style)‖²_F                      lower is better
With several style images, their distances are averaged with weights |w_i| / Σ|w|.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from clipstyler_opt.models.vgg import LAYER_NAMES, VGGFeatures

__all__ = ["GRAM_LAYERS", "gram_distance", "gram_matrix", "style_network", "weighted_gram_distance"]

GRAM_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) activations -> (B, C, C) Gram matrices divided by C·H·W.

    Example:
        >>> gram_matrix(torch.ones(1, 2, 2, 2))
        tensor([[[0.5000, 0.5000],
                 [0.5000, 0.5000]]])
    """
    batch, channels, height, width = features.shape
    flat = features.float().reshape(batch, channels, height * width)
    return flat @ flat.transpose(1, 2) / (channels * height * width)


def gram_distance(output_features: Sequence[torch.Tensor], style_features: Sequence[torch.Tensor]) -> float:
    """Mean over layers of the squared Frobenius distance between normalised Gram matrices."""
    if len(output_features) != len(style_features) or not output_features:
        raise ValueError("expected the same non-empty list of layers for output and style")
    distances = [(gram_matrix(o) - gram_matrix(s)).pow(2).sum()
                 for o, s in zip(output_features, style_features, strict=True)]
    return float(torch.stack(distances).mean())


def weighted_gram_distance(output_features: Sequence[torch.Tensor],
                           styles: Sequence[tuple[Sequence[torch.Tensor], float]]) -> float:
    """Σ_i |w_i|/Σ|w| · gram_distance(output, style_i) over (features, weight) pairs."""
    total = sum(abs(weight) for _, weight in styles)
    if not styles or total == 0:
        raise ValueError("expected at least one style image with a non-zero weight")
    return sum(abs(weight) / total * gram_distance(output_features, features) for features, weight in styles)


def style_network(vgg: VGGFeatures, layers: tuple[str, ...] = GRAM_LAYERS) -> VGGFeatures:
    """Taps at `layers` on the same (shared, frozen) VGG19 layers as the content network."""
    deepest = max(LAYER_NAMES.index(name) for name in layers)
    if deepest >= len(vgg.features):
        raise ValueError(f"the VGG network stops before {LAYER_NAMES[deepest]}")
    return VGGFeatures(vgg.features, layers).to(vgg.mean.device)
