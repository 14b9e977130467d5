"""Style targets by value: fusion weights divided by |Σw| over texts and images together, the
`losses` mode's per-text weights, and the style image's direction n(n(E_I(view)) − e_c), each
computed here with plain torch ops on the toy colour embedding (tests/toy.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import toy

from clipstyler_opt import StyleConfig
from clipstyler_opt.core.backbone_spec import BackboneSpec
from clipstyler_opt.method.ensemble import Member
from clipstyler_opt.method.targets import StyleTarget

RED, GREEN, BLUE = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def _style_image() -> torch.Tensor:
    """A (1, 3, 20, 30) image whose colour varies, so its view's mean depends on the resize."""
    torch.manual_seed(1)
    return torch.rand(1, 3, 20, 30) * torch.tensor([0.3, 0.9, 0.2]).view(1, 3, 1, 1)


def _image_direction(image: torch.Tensor, content_embedding: torch.Tensor) -> torch.Tensor:
    view = F.interpolate(image, size=(16, 16), mode="bilinear", align_corners=False)  # the toy's input size
    return _unit(_unit(view.mean(dim=(2, 3))[0]) - content_embedding)


@pytest.fixture
def member() -> Member:
    return Member(BackboneSpec("toy-colour"), toy.ToyColourBackbone())


CONTENT_EMBEDDING = _unit(torch.tensor([0.5, 0.4, 0.45]))


def _components(target: StyleTarget, member: Member) -> list[tuple[float, torch.Tensor]]:
    return target.components(member, "none", CONTENT_EMBEDDING)


def _assert_components(got: list[tuple[float, torch.Tensor]], expected: list[tuple[float, torch.Tensor]]) -> None:
    assert len(got) == len(expected)
    for (weight, direction), (want_weight, want_direction) in zip(got, expected, strict=True):
        assert weight == pytest.approx(want_weight, abs=1e-12)
        assert torch.allclose(direction.float(), want_direction, atol=1e-6)


def test_directions_fusion_with_a_style_image_divides_by_the_sum_over_both(member: Member) -> None:
    image = _style_image()
    target = StyleTarget.from_prompt("red:2 | green:-0.5", "blue", "directions", ((image, 1.5),))
    total = 2 - 0.5 + 1.5  # |Σw| over texts and the image: 3
    text_total = 2 - 0.5  # the text mix is normalised over the texts alone: 1.5
    fused = _unit((2 / text_total) * RED + (-0.5 / text_total) * GREEN - BLUE)
    _assert_components(_components(target, member), [
        (abs(2 / total - 0.5 / total), fused),
        (1.5 / total, _image_direction(image, CONTENT_EMBEDDING)),
    ])


def test_losses_fusion_gives_each_text_its_own_signed_weight(member: Member) -> None:
    image = _style_image()
    target = StyleTarget.from_prompt("red:2 | green:-0.5", "blue", "losses", ((image, 1.5),))
    _assert_components(_components(target, member), [
        (2 / 3, _unit(RED - BLUE)),
        (-0.5 / 3, _unit(GREEN - BLUE)),
        (1.5 / 3, _image_direction(image, CONTENT_EMBEDDING)),
    ])


def test_texts_alone_whose_weights_sum_below_one_are_scaled_up(member: Member) -> None:
    target = StyleTarget.from_prompt("red:0.3 | green:0.1", "blue", "losses")
    _assert_components(_components(target, member), [(0.75, _unit(RED - BLUE)), (0.25, _unit(GREEN - BLUE))])
    fused = StyleTarget.from_prompt("red:0.3 | green:0.1", "blue", "directions")
    _assert_components(_components(fused, member), [(1.0, _unit(0.75 * RED + 0.25 * GREEN - BLUE))])


def test_a_negative_style_image_alone_keeps_its_sign(member: Member) -> None:
    image = _style_image()
    target = StyleTarget.from_prompt("", "blue", "directions", ((image, -2.0),))
    _assert_components(_components(target, member), [(-1.0, _image_direction(image, CONTENT_EMBEDDING))])


def test_style_image_direction_normalises_the_image_embedding_before_subtracting(member: Member) -> None:
    """Brightening the style image changes its raw embedding's length, not its direction."""
    image = _style_image()
    dim = StyleTarget.from_prompt("", "blue", images=((image, 1.0),))
    bright = StyleTarget.from_prompt("", "blue", images=((image * 3, 1.0),))
    (_, direction), = _components(dim, member)
    (_, brighter), = _components(bright, member)
    assert torch.allclose(direction, brighter, atol=1e-6)
    raw = _unit(F.interpolate(image, size=(16, 16), mode="bilinear", align_corners=False).mean((2, 3))[0]
                - CONTENT_EMBEDDING)  # without the inner normalisation
    assert not torch.allclose(direction, raw, atol=1e-3)


def test_the_objective_weighs_each_components_loss_by_its_weight(tiny_config: StyleConfig) -> None:
    """dir = Σ_k a_k (1 − cos(n(n(E_I(x)) − e_c), Δ_k)) with the weights above, by hand."""
    from clipstyler_opt.method.objective import build_objective

    torch.manual_seed(2)
    content, output, image = torch.rand(1, 3, 24, 32), torch.rand(1, 3, 24, 32), _style_image()
    member = Member(BackboneSpec("toy-colour"), toy.ToyColourBackbone())
    config = toy.toy_config(tiny_config, crops=2, crop_size=16, threshold=0.0)
    target = StyleTarget.from_prompt("red:2 | green:-0.5", "blue", "losses", ((image, 1.5),))
    value = build_objective(config, [member], torch.nn.Identity(), content, target)(output)["dir"]

    def squashed_mean(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False).mean((2, 3))[0]

    e_c = _unit(squashed_mean(content))
    image_direction = _unit(_unit(squashed_mean(image)) - e_c)
    moved = _unit(_unit(squashed_mean(output)) - e_c)
    expected = sum(a * (1 - float(moved @ d)) for a, d in [(2 / 3, _unit(RED - BLUE)), (-0.5 / 3, _unit(GREEN - BLUE)),
                                                           (0.5, image_direction)])
    assert value.item() == pytest.approx(expected, rel=1e-5)
