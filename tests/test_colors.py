"""keep_colors: stylised luminance, content chroma, checked against the BT.601 definitions."""

from __future__ import annotations

import pytest
import torch

from clipstyler_opt.method.colors import keep_colors

# BT.601 luma weights, written out here rather than taken from the code under test.
LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb * LUMA).sum(dim=1, keepdim=True)


def chroma_offset(rgb: torch.Tensor) -> torch.Tensor:
    """The colour of a pixel as its RGB offset from the grey of the same luminance."""
    return rgb - luminance(rgb)


def _pair(seed: int, size: tuple[int, int] = (24, 32)) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    stylised = torch.rand(2, 3, *size, generator=generator)
    content = torch.rand(2, 3, *size, generator=generator)
    return stylised, content


def test_luminance_is_the_stylised_images() -> None:
    stylised, content = _pair(0)
    out = keep_colors(stylised, content)
    assert torch.allclose(luminance(out), luminance(stylised), atol=1e-5)


def test_chroma_is_the_contents_where_it_fits() -> None:
    # Moderate colours around mid-grey luminance: the mix stays inside the RGB cube everywhere.
    stylised, content = _pair(1)
    stylised = 0.4 + 0.2 * stylised
    content = 0.35 + 0.3 * content
    out = keep_colors(stylised, content)
    assert torch.allclose(chroma_offset(out), chroma_offset(content), atol=1e-5)


def test_out_of_gamut_pixels_keep_luminance_and_hue_and_stay_in_range() -> None:
    stylised, content = _pair(2)
    content = (content - 0.5) * 4 + 0.5  # push colours to the cube's faces
    content = content.clamp(0, 1)
    out = keep_colors(stylised, content)
    assert out.min() >= 0 and out.max() <= 1
    assert torch.allclose(luminance(out), luminance(stylised), atol=1e-5)
    # Chroma is only scaled down (0 <= s <= 1), never turned: the offsets stay parallel.
    got, wanted = chroma_offset(out), chroma_offset(content)
    power = (wanted * wanted).sum(1)
    scale = (got * wanted).sum(1) / power.clamp_min(1e-12)
    assert torch.allclose(got, scale[:, None] * wanted, atol=1e-5)
    coloured = power > 1e-3  # the ratio is only meaningful where the content has a colour
    assert scale[coloured].min() >= 0 and scale[coloured].max() <= 1 + 1e-4
    assert scale[coloured].min() < 0.5  # the case really occurred


def test_grey_stylised_on_red_content_stays_red() -> None:
    stylised = torch.full((1, 3, 16, 16), 0.5)
    content = torch.tensor([0.8, 0.2, 0.2]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    out = keep_colors(stylised, content)
    red, green, blue = out[0, :, 8, 8].tolist()
    assert red > green + 0.3 and red > blue + 0.3
    assert luminance(out)[0, 0, 8, 8].item() == pytest.approx(0.5, abs=1e-5)


def test_content_is_resized_and_broadcast_over_the_batch() -> None:
    stylised = torch.rand(3, 3, 20, 30, generator=torch.Generator().manual_seed(3))
    content = torch.tensor([0.3, 0.5, 0.7]).view(1, 3, 1, 1).expand(1, 3, 40, 60)  # uniform: resizing is exact
    out = keep_colors(stylised.double(), content)
    assert out.shape == (3, 3, 20, 30) and out.dtype == torch.float64
    inside = chroma_offset(out)[..., 5:15, 5:25]
    fits = (luminance(stylised) > 0.25) & (luminance(stylised) < 0.75)  # offsets are within ±0.2
    wanted = chroma_offset(content[..., :20, :30]).expand(3, -1, -1, -1)
    mask = fits[..., 5:15, 5:25].expand_as(inside)
    assert mask.any()
    assert torch.allclose(inside[mask].float(), wanted[..., 5:15, 5:25][mask], atol=1e-5)


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError):
        keep_colors(torch.rand(1, 1, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError):
        keep_colors(torch.rand(2, 3, 8, 8), torch.rand(3, 3, 8, 8))
