"""Full-resolution rendering: frozen instance-norm statistics, exact tiles, the receptive field, tile choice."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.method.render import (
    ACTIVATION_BYTES_PER_PIXEL_PER_WIDTH,
    CONTEXT_MARGIN,
    MIN_TILE,
    choose_tile,
    frozen_instance_norm,
    render,
)
from clipstyler_opt.models.unet import UNet


@pytest.fixture(scope="module")
def unet() -> UNet:
    torch.manual_seed(0)
    return UNet(8).eval()


def _image(height: int, width: int, seed: int) -> torch.Tensor:
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed))


def test_frozen_statistics_of_the_image_itself_reproduce_the_plain_forward(unet: UNet) -> None:
    image = _image(64, 96, 1)
    with torch.no_grad():
        plain = unet(image)
    frozen = render(unet, image, stats_from=image)
    assert torch.allclose(frozen, plain, atol=1e-5)
    assert not any(type(m).__name__ == "_FrozenInstanceNorm" for m in unet.modules())  # restored afterwards


def test_frozen_statistics_are_the_reference_images_not_the_inputs(unet: UNet) -> None:
    reference, other = _image(64, 64, 2), _image(64, 64, 3) * 0.5
    with torch.no_grad():
        plain = unet(other)
    with torch.no_grad(), frozen_instance_norm(unet, reference):
        frozen = unet(other)
    assert (frozen - plain).abs().max() > 1e-2  # the darker image is no longer renormalised


def test_tiled_render_equals_the_whole_image_render(unet: UNet) -> None:
    image, stats = _image(200, 264, 4), _image(96, 128, 5)
    whole = render(unet, image, stats_from=stats)
    tiled = render(unet, image, stats_from=stats, tile=96, overlap=16)  # 3 x 3 tiles
    assert tiled.shape == whole.shape == (1, 3, 200, 264)
    assert (tiled - whole).abs().max() < 2e-3
    # Without context the tiles differ: the margin is what makes them agree.
    cut = render(unet, image, stats_from=stats, tile=96, overlap=16, margin=0)
    assert (cut - whole).abs().max() > 5e-2


def test_sides_that_are_not_multiples_of_8_are_padded_and_cropped(unet: UNet) -> None:
    image, stats = _image(61, 83, 6), _image(32, 40, 7)
    whole = render(unet, image, stats_from=stats)
    tiled = render(unet, image, stats_from=stats, tile=32, overlap=8, margin=CONTEXT_MARGIN)
    assert whole.shape == (1, 3, 61, 83)
    assert (tiled - whole).abs().max() < 2e-3


def test_default_statistics_come_from_a_working_size_copy(unet: UNet) -> None:
    at_working_size = _image(40, StyleConfig().size, 8)  # the copy is the image itself
    with torch.no_grad():
        plain = unet(at_working_size)
    assert torch.allclose(render(unet, at_working_size), plain, atol=1e-5)
    small = _image(40, 48, 8)  # upsampled for the statistics: not the image's own any more
    with torch.no_grad():
        plain = unet(small)
    assert (render(unet, small) - plain).abs().max() > 1e-4


def test_context_margin_covers_the_receptive_field(unet: UNet) -> None:
    image = _image(160, 160, 9)
    radius = 0
    with frozen_instance_norm(unet, image):
        for centre in range(80, 88):  # every phase of the 8-pixel grid
            pixels = image.clone().requires_grad_(True)
            unet(pixels)[0, :, centre, centre].sum().backward()
            rows, cols = torch.nonzero(pixels.grad.abs().sum(dim=(0, 1)) > 0, as_tuple=True)
            reach = torch.stack([centre - rows.min(), rows.max() - centre, centre - cols.min(), cols.max() - centre])
            radius = max(radius, int(reach.max()))
    assert 60 < radius <= CONTEXT_MARGIN and CONTEXT_MARGIN - radius < 8


def test_affine_instance_norm_layers_are_frozen_too() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.InstanceNorm2d(4, affine=True))
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 2.0)
        net[1].bias.uniform_(-1.0, 1.0)
    image = _image(16, 16, 10)
    with torch.no_grad():
        plain = net(image)
        with frozen_instance_norm(net, image):
            frozen = net(image)
    assert torch.allclose(frozen, plain, atol=1e-5)


def test_bad_tiling_is_a_config_error(unet: UNet) -> None:
    image = _image(32, 32, 11)
    for options in ({"tile": 100}, {"tile": 64, "overlap": 12}, {"tile": 16, "overlap": 16}, {"margin": -8}):
        with pytest.raises(ConfigError):
            render(unet, image, **options)


def test_choose_tile_follows_the_memory_model() -> None:
    per_pixel = ACTIVATION_BYTES_PER_PIXEL_PER_WIDTH * 16
    assert choose_tile(512, 512, int(512 * 512 * per_pixel)) is None  # the whole image fits
    budget = 2**30
    tile = choose_tile(4096, 4096, budget)
    assert tile is not None and tile % 8 == 0 and tile >= MIN_TILE
    assert (tile + 2 * CONTEXT_MARGIN) ** 2 * per_pixel <= budget < (tile + 8 + 2 * CONTEXT_MARGIN) ** 2 * per_pixel
    wider = choose_tile(4096, 4096, budget, unet_width=32)
    assert wider is not None and wider < tile
    with pytest.raises(ConfigError, match="too small"):
        choose_tile(4096, 4096, 10 * 2**20)
