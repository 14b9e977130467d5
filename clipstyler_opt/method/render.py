"""Running an optimised U-Net at any size: whole-image or in overlapping tiles, with frozen statistics.

The U-Net normalises with InstanceNorm2d, whose statistics depend on the whole input. Tile by
tile, plain instance norm would give every tile its own brightness and contrast (visible seams).
So `render` measures each InstanceNorm2d layer's per-channel mean and variance once, in one pass
over a statistics image, and normalises every tile with those frozen values. `finish_image` takes
the statistics from the content at the output size itself when one pass fits in memory (the render
then equals a plain whole-image pass), else from the largest copy that fits. The network is then
a local operator: an output pixel depends only on inputs within `CONTEXT_MARGIN` pixels, so tiles
that see that much context and start on the 8-pixel grid of the three stride-2 downsamplings agree
with the whole-image render up to floating-point rounding; a short ramp in the overlap hides even that.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.method.sizing import pad_to_multiple, working_size
from clipstyler_opt.models.unet import SIDE_MULTIPLE

if TYPE_CHECKING:
    from PIL import Image

    from clipstyler_opt.run.images import LoadedImage

__all__ = [
    "ACTIVATION_BYTES_PER_PIXEL_PER_WIDTH",
    "CONTEXT_MARGIN",
    "DEFAULT_OVERLAP",
    "MIN_TILE",
    "choose_tile",
    "clipstyler_contrast",
    "finish_image",
    "frozen_instance_norm",
    "output_dimensions",
    "render",
]

# Receptive-field radius of `UNet` in input pixels, rounded up to the 8-pixel grid: an output
# pixel depends on inputs at most 69 pixels away (the gradient's support with frozen statistics,
# at all eight grid phases; tests re-measure it).
CONTEXT_MARGIN = 72
DEFAULT_OVERLAP = 16
MIN_TILE = 64
# Peak memory of a no-grad fp32 forward pass, per input pixel and per unit of U-Net width.
# Measured as the growth of peak resident memory (VmHWM) in a fresh process running UNet(16) on
# the CPU: 831 MiB at 1024x1024 and 3024 MiB at 2048x2048, i.e. 756-831 bytes per pixel. The
# channel counts explain most of it: the last up-block holds its 48-channel (3w) input, the
# upsampled 32-channel map, both 16-channel full-resolution skips and its conv/norm outputs.
ACTIVATION_BYTES_PER_PIXEL_PER_WIDTH = 52.0


class _FrozenInstanceNorm(nn.Module):
    """Normalises with fixed per-channel statistics instead of each input's own."""

    mean: torch.Tensor
    inv_std: torch.Tensor

    def __init__(self, original: nn.InstanceNorm2d, mean: torch.Tensor, var: torch.Tensor) -> None:
        super().__init__()
        self.original = original
        self.register_buffer("mean", mean)
        self.register_buffer("inv_std", torch.rsqrt(var + original.eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (x - self.mean) * self.inv_std
        if self.original.affine:
            y = y * self.original.weight.view(1, -1, 1, 1) + self.original.bias.view(1, -1, 1, 1)
        return y


@contextmanager
def frozen_instance_norm(model: nn.Module, stats_from: torch.Tensor) -> Iterator[nn.Module]:
    """Within the block, every InstanceNorm2d of `model` uses statistics measured on `stats_from`.

    Args:
        model: a network with InstanceNorm2d layers (e.g. `UNet`).
        stats_from: (1, C, H, W) input whose forward pass defines the statistics; for the U-Net,
            the padded working-size content it was optimised on.

    Returns:
        The same `model`, with the layers swapped in place until the block ends.
    """
    if stats_from.dim() != 4 or stats_from.shape[0] != 1:
        raise ValueError(f"stats_from must have shape (1, C, H, W), got {tuple(stats_from.shape)}")
    layers = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
              if isinstance(child, nn.InstanceNorm2d)]
    stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0].float()
        stats[id(module)] = (x.mean(dim=(2, 3), keepdim=True), x.var(dim=(2, 3), unbiased=False, keepdim=True))

    hooks = [child.register_forward_pre_hook(record) for _, _, child in layers]
    try:
        with torch.no_grad():
            model(stats_from)
    finally:
        for hook in hooks:
            hook.remove()
    try:
        for parent, name, child in layers:
            setattr(parent, name, _FrozenInstanceNorm(child, *stats[id(child)]))
        yield model
    finally:
        for parent, name, child in layers:
            setattr(parent, name, child)


def render(unet: nn.Module, content_full: torch.Tensor, *, stats_from: torch.Tensor | None = None,
           tile: int | None = None, overlap: int = DEFAULT_OVERLAP, margin: int = CONTEXT_MARGIN) -> torch.Tensor:
    """Run an optimised U-Net on a content image of any size.

    Args:
        unet: the optimised network; it runs on its own device.
        content_full: (1, 3, H, W) content in [0, 1], at the size wanted (may stay on the CPU).
        stats_from: (1, 3, h, w) the working-size content the U-Net was optimised on; its
            instance-norm statistics are used everywhere. Default: `content_full` resized to
            the default working size (pass the real one to match the optimisation exactly).
        tile: output tile side in pixels (a multiple of 8), or None for one whole-image pass.
        overlap: pixels shared by neighbouring tiles and blended with a linear ramp (a multiple of 8).
        margin: context pixels around each tile (a multiple of 8); `CONTEXT_MARGIN` makes tiles exact.

    Returns:
        (1, 3, H, W) float32 image in (0, 1) on the device of `content_full`.

    Raises:
        ConfigError: tile, overlap or margin not multiples of 8, or tile not above overlap.
    """
    if content_full.dim() != 4 or content_full.shape[:2] != (1, 3):
        raise ValueError(f"content_full must have shape (1, 3, H, W), got {tuple(content_full.shape)}")
    _check_tiling(tile, overlap, margin)
    device = next(unet.parameters()).device
    height, width = content_full.shape[-2:]
    if stats_from is None:
        size = working_size(width, height, StyleConfig().size)
        stats_from = F.interpolate(content_full.float(), size=size[::-1], mode="bicubic", align_corners=False,
                                   antialias=True).clamp(0, 1)
    padded = pad_to_multiple(content_full.float())
    with torch.no_grad(), frozen_instance_norm(unet, pad_to_multiple(stats_from.float().to(device))):
        if tile is None:
            output = unet(padded.to(device)).float().to(content_full.device)
        else:
            output = _render_tiles(unet, padded, tile, overlap, margin, device)
    return output[..., :height, :width]


def _check_tiling(tile: int | None, overlap: int, margin: int) -> None:
    for name, value in (("tile", tile), ("overlap", overlap), ("margin", margin)):
        if value is not None and (value < 0 or value % SIDE_MULTIPLE):
            raise ConfigError(f"render {name} must be a non-negative multiple of {SIDE_MULTIPLE}, got {value}")
    if tile is not None and tile <= overlap:
        raise ConfigError(f"render tile ({tile}) must be larger than the overlap ({overlap})")


def _render_tiles(unet: nn.Module, padded: torch.Tensor, tile: int, overlap: int, margin: int,
                  device: torch.device) -> torch.Tensor:
    height, width = padded.shape[-2:]
    total = torch.zeros(1, 3, height, width, device=padded.device)
    weight_sum = torch.zeros(1, 1, height, width, device=padded.device)
    for top in _tile_starts(height, tile, tile - overlap):
        for left in _tile_starts(width, tile, tile - overlap):
            bottom, right = min(top + tile, height), min(left + tile, width)
            y0, x0 = max(top - margin, 0), max(left - margin, 0)
            window = padded[..., y0:min(bottom + margin, height), x0:min(right + margin, width)]
            out = unet(window.to(device)).float().to(padded.device)
            core = out[..., top - y0:bottom - y0, left - x0:right - x0]
            ramp = (_ramp(bottom - top, overlap, top > 0, bottom < height)[:, None]
                    * _ramp(right - left, overlap, left > 0, right < width)[None, :]).to(padded.device)
            total[..., top:bottom, left:right] += core * ramp
            weight_sum[..., top:bottom, left:right] += ramp
    return total / weight_sum


def _tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Starts on the 8-pixel grid (length, tile and stride are multiples of 8); the last tile ends at `length`."""
    if length <= tile:
        return [0]
    return [*range(0, length - tile, stride), length - tile]


def _ramp(size: int, overlap: int, rises: bool, falls: bool) -> torch.Tensor:
    """Blend weights along one side: linear from ~0 to 1 over `overlap` at each side that has a neighbour.
    Two facing ramps sum to 1 across an overlap of exactly `overlap` pixels."""
    weights = torch.ones(size)
    if overlap == 0:
        return weights
    centres = torch.arange(size, dtype=torch.float32) + 0.5
    if rises:
        weights = torch.minimum(weights, centres / overlap)
    if falls:
        weights = torch.minimum(weights, (size - centres) / overlap)
    return weights


def choose_tile(height: int, width: int, budget_bytes: int, *, unet_width: int = 16,
                margin: int = CONTEXT_MARGIN, overlap: int = DEFAULT_OVERLAP) -> int | None:
    """The largest tile whose fp32 forward pass fits a memory budget.

    The cost model is `ACTIVATION_BYTES_PER_PIXEL_PER_WIDTH` x `unet_width` bytes per input pixel
    of a pass (a tile with its context margin on every side). The render's own buffers (the
    content, the output and a weight plane: 28 bytes per output pixel) are not included.

    Args:
        height: image height in pixels.
        width: image width in pixels.
        budget_bytes: memory the activations may use.
        unet_width: the U-Net's base channel width.
        margin: context pixels around each tile.
        overlap: overlap between tiles (the tile must exceed it).

    Returns:
        None when a whole-image pass fits, else the tile side (a multiple of 8).

    Raises:
        ConfigError: when not even a `MIN_TILE` tile fits.
    """
    per_pixel = ACTIVATION_BYTES_PER_PIXEL_PER_WIDTH * unet_width
    padded_pixels = (height + -height % SIDE_MULTIPLE) * (width + -width % SIDE_MULTIPLE)
    if padded_pixels * per_pixel <= budget_bytes:
        return None
    side = math.isqrt(int(budget_bytes / per_pixel)) - 2 * margin
    tile = side - side % SIDE_MULTIPLE
    smallest = max(MIN_TILE, overlap + SIDE_MULTIPLE)
    if tile < smallest:
        needed = (smallest + 2 * margin) ** 2 * per_pixel
        raise ConfigError(f"a render memory budget of {budget_bytes / 2**20:.0f} MiB is too small: a "
                          f"{smallest}-pixel tile with its {margin}-pixel margin needs {needed / 2**20:.0f} MiB")
    return tile


def clipstyler_contrast(image: torch.Tensor) -> torch.Tensor:
    """CLIPstyler's saving step: contrast x1.5 around the grey mean, then a min-max stretch."""
    from torchvision.transforms.functional import adjust_contrast

    boosted = adjust_contrast(image.clamp(0, 1), 1.5)
    low, high = boosted.min(), boosted.max()
    return (boosted - low) / (high - low).clamp_min(1e-8)


RENDER_BUDGET_BYTES = 2 << 30  # activations of one render pass; larger outputs are tiled


def output_dimensions(input_size: tuple[int, int], working: tuple[int, int],
                      output_size: str | int | None) -> tuple[int, int]:
    """(width, height) of the saved image: the working size, the input's ('full'), or a long side N."""
    if output_size is None:
        return working
    if output_size == "full":
        return input_size
    return working_size(*input_size, int(output_size))


def _statistics_source(loaded: LoadedImage, size: tuple[int, int], unet_width: int) -> torch.Tensor:
    """The image whose instance-norm statistics a render at `size` uses: the content at that size
    when one pass over it fits the budget (then the render equals a plain whole-image pass), else
    the largest copy that fits. Statistics of a 2000-px copy describe a 4000-px image far better
    than those of the working size do: at the working size the U-Net's features see a coarser image."""
    from PIL import Image

    from clipstyler_opt.method.pixels import pil_to_tensor

    pixels = RENDER_BUDGET_BYTES / (ACTIVATION_BYTES_PER_PIXEL_PER_WIDTH * unet_width)
    scale = min(1.0, math.sqrt(pixels / (size[0] * size[1])))
    fitting = (max(SIDE_MULTIPLE, int(size[0] * scale)), max(SIDE_MULTIPLE, int(size[1] * scale)))
    return pil_to_tensor(loaded.rgb.resize(fitting, Image.Resampling.BICUBIC))


def finish_image(output: torch.Tensor, loaded: LoadedImage, config: StyleConfig, *, unet: nn.Module | None = None,
                 render_size: bool = True) -> Image.Image:
    """The saved image from the optimised working-size `output`: rendered at --output-size (the
    U-Net run on the content at that size, see `_statistics_source`), then CLIPstyler's contrast
    (--contrast), then the photo's colours (--keep-colors), then alpha."""
    from PIL import Image

    from clipstyler_opt.method.colors import keep_colors
    from clipstyler_opt.method.pixels import pil_to_tensor, tensor_to_pil

    height, width = output.shape[-2:]
    size = output_dimensions(loaded.rgb.size, (width, height), config.output_size if render_size else None)
    image = output.float()
    content = None
    if size != (width, height) and unet is not None:
        content = pil_to_tensor(loaded.rgb.resize(size, Image.Resampling.BICUBIC))
        tile = choose_tile(size[1], size[0], RENDER_BUDGET_BYTES, unet_width=config.unet_width)
        image = render(unet, content, stats_from=_statistics_source(loaded, size, config.unet_width), tile=tile)
    if config.contrast:
        image = clipstyler_contrast(image)
    if config.keep_colors:
        if content is None:
            rgb = loaded.rgb if loaded.rgb.size == (image.shape[-1], image.shape[-2]) else \
                loaded.rgb.resize((image.shape[-1], image.shape[-2]), Image.Resampling.BICUBIC)
            content = pil_to_tensor(rgb)
        image = keep_colors(image.cpu(), content)
    pil = tensor_to_pil(image)
    if loaded.alpha is not None:
        pil.putalpha(loaded.alpha.resize(pil.size, Image.Resampling.BICUBIC))
    return pil
