"""The losses and optimiser move images the right way, shown with a hand-built embedding
(mean colour; colour words as known directions) and a structure-preserving VGG-shaped net."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import toy
from clipstyler_opt import StyleConfig, Stylizer


@pytest.fixture(scope="module")
def toy_stylizer(tmp_path_factory: pytest.TempPathFactory, tiny_paths: dict[str, Path]) -> Stylizer:
    toy.register_toy()
    vgg = tmp_path_factory.mktemp("identity-vgg") / "identity-vgg19.pth"
    torch.save(toy.identity_vgg_state_dict(), vgg)
    # The toy's colour direction is far easier to satisfy than a real CLIP's, so its weights are
    # scaled down until content and style compete, as they do with real backbones.
    config = toy.toy_config(StyleConfig(**tiny_paths), vgg_checkpoint=vgg, size=96, steps=40, lr=5e-3,
                            crops=8, crop_size=32, lambda_patch=20, lambda_dir=1, threshold=0.0,
                            device="cpu", precision="fp32")
    return Stylizer(config)


def colour_bias(image: Image.Image, channel: int) -> float:
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255
    others = [c for c in range(3) if c != channel]
    return float((rgb[..., channel] - rgb[..., others].mean(-1)).mean())


def structure(image: Image.Image, reference: Image.Image, side: int = 16) -> float:
    """Correlation of low-resolution luminance; 0 for a flat image."""
    size = (side, max(1, side * image.height // image.width))
    a = np.asarray(image.convert("L").resize(size, Image.BOX), dtype=np.float64).ravel()
    b = np.asarray(reference.convert("L").resize(size, Image.BOX), dtype=np.float64).ravel()
    return 0.0 if a.std() == 0 else float(np.corrcoef(a, b)[0, 1])


def test_red_makes_it_redder_and_blue_bluer_while_content_keeps_structure(toy_stylizer: Stylizer,
                                                                            photo: Path) -> None:
    content = Image.open(photo)
    red = toy_stylizer.stylize(photo, "red").image
    blue = toy_stylizer.stylize(photo, "blue").image
    assert colour_bias(red, 0) > colour_bias(blue, 0) + 0.05
    assert colour_bias(blue, 2) > colour_bias(red, 2) + 0.05
    assert colour_bias(red, 0) > colour_bias(content, 0)
    assert structure(red, content) > 0.8
    assert structure(blue, content) > 0.8


def test_without_content_loss_the_structure_is_lost(toy_stylizer: Stylizer, photo: Path) -> None:
    content = Image.open(photo)
    unconstrained = toy_stylizer.stylize(photo, "red", lambda_content=0.0).image
    assert structure(unconstrained, content) < 0.5
    assert colour_bias(unconstrained, 0) > 0.5
