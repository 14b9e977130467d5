"""A hand-built differentiable "CLIP": images embed as their mean colour, and colour words embed
as known directions. It lets tests check that the losses and the optimiser move an image the
right way without any pretrained weights."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.models import TowerMemory, register_backbone

if TYPE_CHECKING:
    from clipstyler_opt import Stylizer

COLOURS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}
NEUTRAL = (1.0, 1.0, 1.0)  # anything without a colour word, e.g. "a Photo", is grey


class ToyColourBackbone(nn.Module):
    input_size = (16, 16)
    interpolation = "bilinear"

    def __init__(self) -> None:
        super().__init__()
        self.provenance = {"family": "toy-colour"}
        self.image_calls = 0

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        self.image_calls += 1
        return pixels.float().mean(dim=(2, 3))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for text in texts:
            words = [w for w in COLOURS if w in text.lower()]
            rows.append(COLOURS[words[0]] if words else NEUTRAL)
        return torch.tensor(rows)


def register_toy() -> None:
    """The toy family, with every capability declared: it needs no extras and no files, holds no
    layer weights to store in bf16, and one view costs it a few bytes."""
    register_backbone("toy-colour", lambda spec, context, device: ToyColourBackbone().to(device),
                      memory=lambda spec, context: TowerMemory(weight_bytes=0, view_bytes=3 * 16 * 16 * 4),
                      random_weights=lambda spec, folder, seed: spec, frozen_towers=lambda backbone: ())


def toy_config(base: StyleConfig, **changes: object) -> StyleConfig:
    """`base` with a registered toy family as its only backbone (the --clip-* options cleared)."""
    clip_defaults = {name: StyleConfig.__dataclass_fields__[name].default
                     for name in ("clip_model", "clip_pretrained", "clip_checkpoint")}
    return base.replace(**{**clip_defaults, "backbone": "toy-colour", "templates": "none", **changes})


def identity_vgg_state_dict(width: int = 8) -> dict[str, torch.Tensor]:
    """A VGG19-shaped net whose features are max-pooled copies of the input's positive and
    negative parts: its content loss is a plain low-resolution image match, a known structure prior."""
    from tiny import TINY_VGG_WIDTHS

    state, index, channels = {}, 0, 3
    for item in TINY_VGG_WIDTHS:
        if item == "M":
            index += 1
            continue
        weight = torch.zeros(width, channels, 3, 3)
        if channels == 3:
            for c in range(3):
                weight[c, c, 1, 1], weight[3 + c, c, 1, 1] = 1.0, -1.0
        else:
            nn.init.dirac_(weight)
        state[f"features.{index}.weight"] = weight
        state[f"features.{index}.bias"] = torch.zeros(width)
        channels, index = width, index + 2
    return state


def toy_stylizer(folder: Path, tiny_paths: dict[str, Path], **changes: object) -> Stylizer:
    """A Stylizer on the toy colour embedding and the structure-preserving VGG. The toy's colour
    direction is far easier to satisfy than a real CLIP's, so its weights are scaled down until
    content and style compete, as they do with real backbones."""
    from clipstyler_opt import Stylizer

    register_toy()
    vgg = folder / "identity-vgg19.pth"
    torch.save(identity_vgg_state_dict(), vgg)
    settings = dict(vgg_checkpoint=vgg, size=96, steps=40, lr=5e-3, crops=8, crop_size=32, lambda_patch=20,
                    lambda_dir=1, threshold=0.0, device="cpu", precision="fp32")
    return Stylizer(toy_config(StyleConfig(**tiny_paths), **{**settings, **changes}))
