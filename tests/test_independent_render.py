"""`--output-size` against a plain whole-image pass of the U-Net with the image's own instance-norm
statistics, written here; and the tiled branch, forced by a small memory budget, against the same."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from clipstyler_opt import StyleConfig
from clipstyler_opt.method import render as render_module
from clipstyler_opt.models.unet import UNet
from clipstyler_opt.run.images import load_image


def _photo(tmp_path: Path, width: int, height: int) -> Path:
    """A smooth random photo (saved as PNG, so its 8-bit pixels are what the render reads)."""
    generator = torch.Generator().manual_seed(width * height)
    coarse = F.interpolate(torch.rand(1, 3, 6, 8, generator=generator), size=(height, width), mode="bicubic",
                           align_corners=False).clamp(0, 1)
    array = (coarse[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(array).save(path)
    return path


def _trained_looking_unet() -> UNet:
    """A random U-Net whose output varies visibly (the default init gives nearly flat grey)."""
    torch.manual_seed(0)
    unet = UNet(16)
    with torch.no_grad():
        for module in unet.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.mul_(2.0)
    return unet.eval()


def _plain_pass(unet: UNet, path: Path) -> np.ndarray:
    """The unmodified network on the whole photo at its own size: the sides padded to multiples of
    8 by repeating the last row and column, every InstanceNorm2d normalising with the statistics of
    this very input, then cropped back and rounded to 8 bits."""
    pixels = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0)
    image = pixels.permute(2, 0, 1)[None]
    height, width = image.shape[-2:]
    padded = F.pad(image, (0, -width % 8, 0, -height % 8), mode="replicate")
    with torch.no_grad():
        out = copy.deepcopy(unet)(padded)[..., :height, :width]
    return (out[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def _finished(unet: UNet, path: Path, working: tuple[int, int]) -> np.ndarray:
    config = StyleConfig(output_size="full", device="cpu", precision="fp32")
    output = torch.rand(1, 3, working[1], working[0])  # only its size matters: the render replaces it
    return np.asarray(render_module.finish_image(output, load_image(path), config, unet=unet))


def _assert_same_pixels(got: np.ndarray, expected: np.ndarray) -> None:
    """Equal up to one 8-bit level on a handful of pixels (float rounding at a .5 boundary)."""
    assert got.shape == expected.shape
    difference = np.abs(got.astype(int) - expected.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 0.002, (difference.max(), (difference > 0).mean())


def test_output_size_render_equals_a_plain_whole_image_pass(tmp_path: Path) -> None:
    path = _photo(tmp_path, 203, 141)  # sides not multiples of 8: the padding is part of the check
    unet = _trained_looking_unet()
    expected = _plain_pass(unet, path)
    assert expected.std() > 5  # the check sees structure, not flat grey
    _assert_same_pixels(_finished(unet, path, (64, 44)), expected)


def test_tiled_render_forced_by_a_small_budget_equals_the_plain_pass(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget that fits only 64-pixel tiles (with their 72-pixel context) for the pass itself;
    the statistics still come from the whole image, so the result is the plain pass."""
    path = _photo(tmp_path, 261, 173)  # padded 264x176: more pixels than a 64-px tile with its margins
    unet = _trained_looking_unet()
    tiles: list[int | None] = []
    real_choose_tile = render_module.choose_tile
    budget = (64 + 2 * 72) ** 2 * 52 * 16 + 1

    def small_budget(height: int, width: int, _: int, **options: int) -> int | None:
        tiles.append(real_choose_tile(height, width, budget, **options))
        return tiles[-1]

    calls: list[tuple[int, ...]] = []
    real_forward = UNet.forward

    def counted(self: UNet, image: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(image.shape[-2:]))
        return real_forward(self, image)

    monkeypatch.setattr(render_module, "choose_tile", small_budget)
    monkeypatch.setattr(UNet, "forward", counted)
    finished = _finished(unet, path, (64, 42))
    monkeypatch.undo()
    assert tiles == [64]
    assert len(calls) > 1 + 4 and max(h * w for h, w in calls[1:]) <= (64 + 2 * 72) ** 2  # statistics, then tiles
    _assert_same_pixels(finished, _plain_pass(unet, path))


def test_a_render_larger_than_the_budget_takes_statistics_from_a_fitting_copy(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """With the whole budget small, the statistics come from the largest copy of the photo that fits
    (bicubic), frozen and applied to the full-size pass. By hand: record each InstanceNorm2d's input
    mean and variance on that copy, then normalise the full-size input with them."""
    path = _photo(tmp_path, 240, 160)
    unet = _trained_looking_unet()
    real_choose_tile = render_module.choose_tile
    monkeypatch.setattr(render_module, "RENDER_BUDGET_BYTES", 120 * 80 * 52 * 16)  # a 120x80 pass fits
    monkeypatch.setattr(render_module, "choose_tile", lambda h, w, _, **o: real_choose_tile(h, w, 2 << 30, **o))
    finished = _finished(unet, path, (48, 32))

    reference = copy.deepcopy(unet)
    norms = [m for m in reference.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    copy_pixels = np.asarray(Image.open(path).convert("RGB").resize((120, 80), Image.Resampling.BICUBIC),
                             dtype=np.float32) / 255.0
    recorded: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [m.register_forward_pre_hook(lambda m, inputs: recorded.__setitem__(
        id(m), (inputs[0].mean((2, 3), keepdim=True), inputs[0].var((2, 3), unbiased=False, keepdim=True))))
        for m in norms]
    with torch.no_grad():
        reference(torch.from_numpy(copy_pixels).permute(2, 0, 1)[None])
    for hook in hooks:
        hook.remove()
    for m in norms:
        mean, var = recorded[id(m)]
        m.forward = lambda x, mean=mean, var=var, eps=m.eps: (x - mean) / torch.sqrt(var + eps)  # type: ignore[method-assign]
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    with torch.no_grad():
        out = reference(torch.from_numpy(pixels).permute(2, 0, 1)[None])
    expected = (out[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    _assert_same_pixels(finished, expected)
    own_statistics = _plain_pass(unet, path)
    assert np.abs(expected.astype(int) - own_statistics.astype(int)).max() > 2  # the two are told apart
