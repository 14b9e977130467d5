"""The losses and optimiser move images the right way, shown with a hand-built embedding
(mean colour; colour words as known directions) and a structure-preserving VGG-shaped net."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import toy
from PIL import Image

from clipstyler_opt import Stylizer


@pytest.fixture(scope="module")
def toy_stylizer(tmp_path_factory: pytest.TempPathFactory, tiny_paths: dict[str, Path]) -> Stylizer:
    return toy.toy_stylizer(tmp_path_factory.mktemp("identity-vgg"), tiny_paths)


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
