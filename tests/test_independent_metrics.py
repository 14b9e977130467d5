"""Evaluation metrics against definitions written here: SSIM with its Gaussian window and
borders, the VGG layers picked by name (torchvision's own layer indices), edge correlation on
luminance, unwarped patch crops, and the bootstrap interval's coverage by simulation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tiny
import torch
import torch.nn.functional as F
import toy

from clipstyler_opt.core.backbone_spec import BackboneSpec
from clipstyler_opt.evaluate import PatchProtocol, StyleScorer
from clipstyler_opt.evaluate.content import edge_correlation, ssim
from clipstyler_opt.evaluate.gram import gram_distance, style_network
from clipstyler_opt.method.ensemble import Member
from clipstyler_opt.models.vgg import load_vgg_features


def _smooth_image(seed: int, height: int = 40, width: int = 48) -> torch.Tensor:
    """A random image with structure at several scales (blurred noise plus noise)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = F.interpolate(torch.rand(1, 3, height // 8, width // 8, generator=generator), size=(height, width),
                           mode="bicubic", align_corners=False)
    return (0.7 * coarse + 0.3 * torch.rand(1, 3, height, width, generator=generator)).clamp(0, 1)


# --- SSIM (Wang et al. 2004): Gaussian window of 11 taps, σ = 1.5, C1 = (0.01 L)², C2 = (0.03 L)² ---

def _gaussian_window(taps: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, taps, taps).repeat(3, 1, 1, 1)


def _ssim_by_hand(x: torch.Tensor, y: torch.Tensor) -> float:
    """Local statistics under the window, each image reflected at its borders (every pixel is the
    centre of a window; the map keeps the image's size), mean of the map over pixels and channels."""
    window = _gaussian_window()
    x, y = x.double(), y.double()

    def local_mean(image: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(image, (5, 5, 5, 5), mode="reflect"), window, groups=3)

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x ** 2
    var_y = local_mean(y * y) - mu_y ** 2
    cov = local_mean(x * y) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    assert ssim_map.shape == x.shape
    return float(ssim_map.mean())


def test_ssim_equals_the_gaussian_window_definition_including_borders() -> None:
    output, content = _smooth_image(1), _smooth_image(2)
    assert ssim(output, content) == pytest.approx(_ssim_by_hand(output, content), abs=1e-5)
    noisy = (content + 0.1 * torch.randn(content.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    assert ssim(noisy, content) == pytest.approx(_ssim_by_hand(noisy, content), abs=1e-5)


def test_ssim_counts_the_border_pixels() -> None:
    """Two images that differ only in a 3-pixel frame: a map that left the borders out would score 1."""
    content = _smooth_image(4)
    framed = content.clone()
    framed[..., :3, :], framed[..., -3:, :], framed[..., :, :3], framed[..., :, -3:] = 0.0, 0.0, 0.0, 0.0
    value = ssim(framed, content)
    assert value < 0.95
    assert value == pytest.approx(_ssim_by_hand(framed, content), abs=1e-5)


# --- the VGG layers, by torchvision's indices ---

def _torchvision_features(state: dict[str, torch.Tensor]) -> torch.nn.Sequential:
    """torchvision's own VGG19 `features` builder with the tiny widths, loaded with the same weights."""
    from torchvision.models.vgg import make_layers

    features = make_layers(list(tiny.TINY_VGG_WIDTHS))
    features.load_state_dict({k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")})
    return features.eval()


# torchvision's VGG19 `features` indices (conv, ReLU, ... , max-pool): relu1_1 = 1, relu2_1 = 6,
# relu3_1 = 11, relu4_1 = 20, relu4_2 = 22, relu5_1 = 29, relu5_2 = 31.
TORCHVISION_INDEX = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu4_2": 22, "relu5_1": 29,
                     "relu5_2": 31}


def _tap(features: torch.nn.Sequential, image: torch.Tensor, name: str) -> torch.Tensor:
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)  # ImageNet statistics, as torchvision's VGG expects
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        return features[: TORCHVISION_INDEX[name] + 1]((image - mean) / std)


def test_content_and_gram_layers_are_the_named_torchvision_layers(tiny_paths: dict[str, Path]) -> None:
    reference = _torchvision_features(tiny.tiny_vgg_state_dict())
    content_net = load_vgg_features(tiny_paths["vgg_checkpoint"])
    image = _smooth_image(5, 64, 64)
    with torch.no_grad():
        content_taps = content_net(image)
        gram_taps = style_network(content_net)(image)
    for got, name in zip(content_taps, ("relu4_2", "relu5_2"), strict=True):
        assert torch.allclose(got, _tap(reference, image, name), atol=1e-5), name
    gram_names = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    for got, name in zip(gram_taps, gram_names, strict=True):
        assert torch.allclose(got, _tap(reference, image, name), atol=1e-5), name
    # and the Gram distance over those layers, by hand: mean_l ‖F Fᵀ/(C·H·W) of output − of style‖²_F
    style = _smooth_image(6, 64, 64)

    def gram(f: torch.Tensor) -> torch.Tensor:
        c, h, w = f.shape[1:]
        flat = f[0].reshape(c, h * w).double()
        return flat @ flat.T / (c * h * w)

    expected = np.mean([float(((gram(_tap(reference, image, n)) - gram(_tap(reference, style, n))) ** 2).sum())
                        for n in gram_names])
    net = style_network(content_net)
    with torch.no_grad():
        assert gram_distance(net(image), net(style)) == pytest.approx(expected, rel=1e-4)


# --- edge correlation on luminance ---

def _sobel_magnitude_by_hand(gray: np.ndarray) -> np.ndarray:
    """3×3 Sobel in x and y with the border pixels replicated, magnitude √(gx² + gy²)."""
    p = np.pad(gray, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return np.sqrt(gx ** 2 + gy ** 2)


def _edge_correlation_by_hand(a: torch.Tensor, b: torch.Tensor, weights: tuple[float, float, float]) -> float:
    def luminance(image: torch.Tensor) -> np.ndarray:
        rgb = image[0].double().numpy()
        return weights[0] * rgb[0] + weights[1] * rgb[1] + weights[2] * rgb[2]

    return float(np.corrcoef(_sobel_magnitude_by_hand(luminance(a)).ravel(),
                             _sobel_magnitude_by_hand(luminance(b)).ravel())[0, 1])


def test_edge_correlation_is_pearson_of_sobel_magnitudes_of_the_luminance() -> None:
    """Output and content whose edges lie in different channels, so the channel weights matter."""
    content = _smooth_image(7)
    output = content[:, [2, 0, 1]] * torch.tensor([1.0, 0.4, 0.2]).view(1, 3, 1, 1)
    by_hand = _edge_correlation_by_hand(output, content, (0.299, 0.587, 0.114))
    assert edge_correlation(output, content) == pytest.approx(by_hand, abs=1e-4)
    plain_mean = _edge_correlation_by_hand(output, content, (1 / 3, 1 / 3, 1 / 3))
    assert abs(plain_mean - by_hand) > 0.01  # the test can tell luminance from a plain channel mean


# --- patch crops: the image's own pixels, no warp ---

class _SizedToy(toy.ToyColourBackbone):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.input_size = (size, size)


def test_patch_crops_are_plain_windows_of_the_image() -> None:
    """With the scorer's input size equal to the crop side, every crop is exactly a square window
    of the image, found by searching every position; a perspective warp would match none."""
    image = _smooth_image(8, 40, 56)
    scorer = StyleScorer(Member(BackboneSpec("toy-colour"), _SizedToy(24)), "none",
                         PatchProtocol(crops=12, crop_size=24, seed=3))
    crops = scorer.patches(image)
    assert crops.shape == (12, 3, 24, 24)
    windows = image[0].unfold(1, 24, 1).unfold(2, 24, 1)  # (3, 17, 33, 24, 24)
    windows = windows.permute(1, 2, 0, 3, 4).reshape(-1, 3, 24, 24)
    for crop in crops:
        distance = (windows - crop).abs().flatten(1).amax(dim=1)
        assert float(distance.min()) < 1e-6
    positions = {int((windows - crop).abs().flatten(1).amax(dim=1).argmin()) for crop in crops}
    assert len(positions) > 6  # the crops are spread over the image


def test_patch_crops_resized_to_the_input_size_are_plain_windows_shrunk() -> None:
    """A 32-px window shrunk to the scorer's 16 px (antialiased bilinear): some window matches."""
    image = _smooth_image(9, 40, 48)
    scorer = StyleScorer(Member(BackboneSpec("toy-colour"), _SizedToy(16)), "none",
                         PatchProtocol(crops=6, crop_size=32, seed=0))
    crops = scorer.patches(image)
    windows = image[0].unfold(1, 32, 1).unfold(2, 32, 1).permute(1, 2, 0, 3, 4).reshape(-1, 3, 32, 32)
    shrunk = F.interpolate(windows, size=(16, 16), mode="bilinear", align_corners=False, antialias=True)
    for crop in crops:
        assert float((shrunk - crop).abs().flatten(1).amax(dim=1).min()) < 1e-5
