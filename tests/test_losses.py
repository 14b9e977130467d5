"""Each loss term against values computed by hand from its CLIPstyler definition."""

from __future__ import annotations

import math

import pytest
import torch

from clipstyler_opt import StyleConfig
from clipstyler_opt.augment import PatchCrops
from clipstyler_opt.losses import (LossWeights, StyleObjective, content_loss, directional_loss, thresholded_mean,
                                   total_variation)


def test_directional_loss_by_hand() -> None:
    # f = (3, 4) -> n(f) = (0.6, 0.8); e_c = (1, 0); n(f) - e_c = (-0.4, 0.8) -> n = (-1, 2)/sqrt(5)
    # ΔT = (0, 1): cos = 2/sqrt(5)
    loss = directional_loss(torch.tensor([[3.0, 4.0]]), torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    assert loss.item() == pytest.approx(1 - 2 / math.sqrt(5), abs=1e-6)


def test_directional_loss_is_per_row_and_scale_invariant() -> None:
    e_c, direction = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    losses = directional_loss(torch.tensor([[3.0, 4.0], [30.0, 40.0], [0.0, -1.0]]), e_c, direction)
    # third row: n(f) - e_c = (-1, -1) -> cos with (0, 1) = -1/sqrt(2)
    expected = [1 - 2 / math.sqrt(5), 1 - 2 / math.sqrt(5), 1 + 1 / math.sqrt(2)]
    assert losses.tolist() == pytest.approx(expected, abs=1e-6)


def test_directional_loss_stays_fp32_under_autocast() -> None:
    torch.manual_seed(0)
    features, e_c = torch.randn(64, 512), torch.nn.functional.normalize(torch.randn(512), dim=0)
    direction = torch.nn.functional.normalize(torch.randn(512), dim=0)
    exact = directional_loss(features, e_c, direction)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = directional_loss(features, e_c, direction)
    assert mixed.dtype == torch.float32
    assert torch.allclose(mixed, exact, atol=1e-6)


def test_threshold_rejection_is_strict_and_averages_over_all_crops() -> None:
    losses = torch.tensor([0.5, 0.7, 0.9, 0.69999], requires_grad=True)
    value = thresholded_mean(losses, 0.7)
    # 0.5 and 0.69999 are rejected (< 0.7); 0.7 itself is kept; divide by all 4 crops.
    assert value.item() == pytest.approx((0.7 + 0.9) / 4, abs=1e-6)
    value.backward()
    assert losses.grad.tolist() == pytest.approx([0.0, 0.25, 0.25, 0.0])


def test_content_loss_sums_the_mse_of_each_layer() -> None:
    a = [torch.zeros(1, 2, 2, 2), torch.zeros(1, 1, 1, 2)]
    b = [torch.full((1, 2, 2, 2), 2.0), torch.tensor([[[[1.0, 3.0]]]])]
    # layer 1: mean of 8 squared errors of 4 -> 4; layer 2: (1 + 9) / 2 -> 5
    assert content_loss(a, b).item() == pytest.approx(9.0)


def test_total_variation_by_hand() -> None:
    image = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # horizontal (-1, -2): sqrt 5; vertical (-2, -3): sqrt 13; diagonals: 2 - 1 = 1 and 0 - 4 = -4
    assert total_variation(image).item() == pytest.approx(math.sqrt(5) + math.sqrt(13) + 1 + 4, abs=1e-6)


def test_defaults_are_clipstyler_values() -> None:
    """Kwon & Ye 2022, and their released training script."""
    c = StyleConfig()
    assert (c.lambda_patch, c.lambda_dir, c.lambda_content, c.lambda_tv) == (9000, 500, 150, 2e-3)
    assert (c.crops, c.crop_size, c.threshold, c.distortion) == (64, 128, 0.7, 0.5)
    assert (c.lr, c.lr_decay_every, c.lr_decay_factor, c.steps, c.size) == (5e-4, 100, 0.5, 200, 512)
    assert (c.source_text, c.templates, c.contrast) == ("a Photo", "imagenet", False)
    assert (c.clip_model, c.clip_pretrained) == ("ViT-B-32-quickgelu", "openai")


class _Linear:
    """A linear embedding: enough to recompute the objective independently."""

    input_size = (8, 8)
    interpolation = "bilinear"
    provenance: dict[str, str] = {}

    def __init__(self) -> None:
        torch.manual_seed(1)
        self.weight = torch.randn(3 * 8 * 8, 5)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels.flatten(1) @ self.weight

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        raise AssertionError("not used")


def test_objective_combines_the_terms_with_the_configured_weights() -> None:
    torch.manual_seed(0)
    backbone = _Linear()
    content, output = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    direction = torch.nn.functional.normalize(torch.randn(5), dim=0)
    c = StyleConfig()
    weights = LossWeights(c.lambda_patch, c.lambda_dir, c.lambda_content, c.lambda_tv)
    crops = PatchCrops(6, 8, 0.5, backbone.input_size)
    objective = StyleObjective(backbone, lambda x: [x], content, direction, crops, weights, 0.7)  # type: ignore[arg-type]

    torch.manual_seed(3)
    terms = objective(output)
    torch.manual_seed(3)
    views = crops(output)  # the same crops, drawn from the same RNG state after the global resize
    def resize(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, size=(8, 8), mode="bilinear", align_corners=False)

    e_c = torch.nn.functional.normalize(backbone.encode_image(resize(content)), dim=-1)
    patch = thresholded_mean(directional_loss(backbone.encode_image(views), e_c, direction), 0.7)
    glob = directional_loss(backbone.encode_image(resize(output)), e_c, direction)[0]
    expected = 9000 * patch + 500 * glob + 150 * torch.mean((output - content) ** 2) + 2e-3 * total_variation(output)
    assert terms.total.item() == pytest.approx(expected.item(), rel=1e-5)
    assert terms.patch.item() == pytest.approx(patch.item(), rel=1e-5)
