"""Each loss term against values computed by hand from its CLIPstyler definition."""

from __future__ import annotations

import math

import pytest
import torch

from clipstyler_opt import StyleConfig
from clipstyler_opt.method.losses import content_loss, directional_loss, thresholded_mean, total_variation


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
    assert (c.crops, c.crop_size, c.threshold, c.distortion) == (64, 128, None, 0.5)  # None: τ from the table
    assert (c.lr, c.lr_decay_every, c.lr_decay_factor, c.steps, c.size) == (5e-4, 100, 0.5, 200, 512)
    assert (c.source_text, c.templates, c.contrast) == ("a Photo", "auto", False)
    from clipstyler_opt.models.calibration import defaults_for

    clip = defaults_for("ViT-B-32-quickgelu")
    assert (clip.tau, clip.templates, clip.calibrated) == (0.7, "imagenet", True)
    assert (c.clip_model, c.clip_pretrained) == ("ViT-B-32-quickgelu", "openai")


class _Linear(torch.nn.Module):
    """A linear embedding: enough to recompute the objective independently."""

    input_size = (8, 8)
    interpolation = "bilinear"

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.weight = torch.randn(3 * 8 * 8, 5)
        self.provenance: dict[str, str] = {}

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels.flatten(1) @ self.weight

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        raise AssertionError("not used")


def _objective(config: StyleConfig, direction: torch.Tensor, content: torch.Tensor, crops: int = 6,
               backbone: torch.nn.Module | None = None, vgg: object = None):  # type: ignore[no-untyped-def]
    """The real builder, with a fixed direction instead of text (the target is not under test here)."""
    from clipstyler_opt.core.backbone_spec import BackboneSpec
    from clipstyler_opt.core.styles import StyleSpec
    from clipstyler_opt.method.ensemble import Member
    from clipstyler_opt.method.objective import build_objective
    from clipstyler_opt.method.targets import StyleTarget

    class FixedTarget(StyleTarget):
        def components(self, member, templates, content_embedding):  # type: ignore[no-untyped-def]
            return [(1.0, direction)]

    member = Member(BackboneSpec("linear", tau=None), backbone or _Linear())
    return build_objective(config.replace(crops=crops, crop_size=8), [member], vgg or (lambda x: [x]), content,
                           FixedTarget(StyleSpec.parse("x")))


def test_objective_combines_the_terms_with_the_configured_weights() -> None:
    torch.manual_seed(0)
    content, output = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    direction = torch.nn.functional.normalize(torch.randn(5), dim=0)
    # A large TV weight and a threshold that rejects some crops but not all: each must show in the total.
    config = StyleConfig(lambda_tv=2.0, threshold=1.5)
    objective = _objective(config, direction, content)
    backbone = objective.clip.members[0].member.backbone

    torch.manual_seed(3)
    terms = objective(output)
    torch.manual_seed(3)
    views = objective.clip.members[0].crops(output)  # the same crops, from the same RNG state

    def resize(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, size=(8, 8), mode="bilinear", align_corners=False)

    e_c = torch.nn.functional.normalize(backbone.encode_image(resize(content)), dim=-1)
    crop_losses = directional_loss(backbone.encode_image(views), e_c, direction)
    kept = crop_losses >= 1.5
    assert 0 < int(kept.sum()) < len(crop_losses), "choose a threshold that rejects some crops, not all"
    patch = (crop_losses * kept).sum() / len(crop_losses)
    glob = directional_loss(backbone.encode_image(resize(output)), e_c, direction)[0]
    content_term = torch.mean((output - content) ** 2)
    tv = total_variation(output)
    expected = 9000 * patch + 500 * glob + 150 * content_term + 2.0 * tv
    # The paper's four terms come first, in this order; a term added later is off until weighted by
    # name (--term-weight), so it is shown but leaves the total as the paper defines it.
    assert objective.names[:5] == ("total", "patch", "dir", "content", "tv")
    assert all(terms[name].isfinite() for name in objective.names[5:])
    by_name = {"patch": patch, "dir": glob, "content": content_term, "tv": tv, "total": expected}
    for name, value in by_name.items():
        assert terms[name].item() == pytest.approx(value.item(), rel=1e-5), name
    # Each of TV and the threshold moves the total far beyond the tolerance.
    assert abs(2.0 * tv.item()) > 1e-3 * abs(expected.item())
    unthresholded = 9000 * crop_losses.mean() + 500 * glob + 150 * content_term + 2.0 * tv
    assert abs(unthresholded.item() - expected.item()) > 1e-3 * abs(expected.item())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_named_objective_equals_an_independent_reference_of_the_formulas(tiny_config: StyleConfig, photo,  # type: ignore[no-untyped-def]
                                                                         seed: int) -> None:
    """One member, default weights: the same values and gradients as an independent reference
    written from the formulas (tests/reference_objective.py)."""
    from reference_objective import ReferenceObjective

    from clipstyler_opt import Stylizer
    from clipstyler_opt.method.objective import build_objective
    from clipstyler_opt.method.pixels import pil_to_tensor
    from clipstyler_opt.method.targets import StyleTarget
    from clipstyler_opt.method.text import text_direction
    from clipstyler_opt.run.engine import working_size

    config = tiny_config.replace(templates="imagenet")
    stylizer = Stylizer(config)
    member = stylizer.members[0]
    from PIL import Image

    rgb = Image.open(photo).convert("RGB")
    content = pil_to_tensor(rgb.resize(working_size(*rgb.size, config.size)))
    objective = build_objective(config, stylizer.members, stylizer.vgg, content,
                                StyleTarget.from_prompt("starry night", config.source_text))
    direction = text_direction(member.backbone, "starry night", config.source_text, "imagenet")
    reference = ReferenceObjective(member.backbone, stylizer.vgg, content, direction, objective.clip.members[0].crops,
                                  {"patch": 9000.0, "dir": 500.0, "content": 150.0, "tv": 2e-3}, 0.7)
    torch.manual_seed(seed)
    output = torch.rand_like(content, requires_grad=True)
    torch.manual_seed(5)
    new = objective(output)
    (grad_new,) = torch.autograd.grad(new["total"], output)
    torch.manual_seed(5)
    old = reference(output)
    (grad_old,) = torch.autograd.grad(old["total"], output)
    # The reference computes norms, means and dot products with its own reductions, so the two
    # agree to float32 rounding, not bit for bit; any change to a formula moves a term far more.
    for name in old:  # the paper's terms; a term added later and not weighted leaves the total alone
        assert new[name].item() == pytest.approx(old[name].item(), rel=2e-6, abs=0), name
    assert (grad_new - grad_old).abs().max() <= 1e-5 * grad_old.abs().max()
    assert old["patch"] > 0 and old["content"] > 0 and old["tv"] > 0
