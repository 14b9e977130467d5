from __future__ import annotations

import pytest
import torch

from clipstyler_opt import StyleConfig, Stylizer
from clipstyler_opt.models.unet import UNet


def test_parameter_count_matches_the_paper_architecture() -> None:
    assert sum(p.numel() for p in UNet().parameters()) == 615_267


@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (2, 3, 40, 64)])
def test_output_has_input_shape_and_lies_in_open_unit_interval(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    out = UNet()(torch.rand(shape))
    assert out.shape == shape
    assert out.min() > 0 and out.max() < 1


def test_sides_must_be_multiples_of_8() -> None:
    with pytest.raises(ValueError, match="multiples of 8"):
        UNet()(torch.rand(1, 3, 30, 32))


@pytest.mark.parametrize("size", [(37, 51), (17, 23), (64, 17)])
def test_engine_handles_sides_that_are_not_multiples_of_8(tiny_config: StyleConfig, size: tuple[int, int]) -> None:
    from PIL import Image

    image = Image.new("RGB", size, (120, 40, 200))
    result = Stylizer(tiny_config.replace(size=max(size), steps=1, crop_size=8)).stylize(image, "a red sky")
    assert result.image.size == size


def test_too_small_working_size_is_a_clear_input_error(tiny_config: StyleConfig) -> None:
    from PIL import Image

    from clipstyler_opt.core.errors import InputImageError

    with pytest.raises(InputImageError, match="at least 16 pixels"):
        Stylizer(tiny_config.replace(size=13)).stylize(Image.new("RGB", (9, 13)), "a red sky")
