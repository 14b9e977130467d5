"""VGG19 feature taps for the content loss, built from a torchvision-layout state dict."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsError
from .checkpoints import load_state_dict

__all__ = ["VGGFeatures", "VGG19_LAYOUT", "CONTENT_LAYERS", "build_vgg_features", "load_vgg_features"]

# torchvision's vgg19 `features`: conv widths, "M" = max-pool. Layer indices follow from it.
VGG19_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# CLIPstyler's code names these conv4_2/conv5_2, but torchvision's in-place ReLU means the
# tensors it compares are the post-ReLU activations: relu4_2 (index 22) and relu5_2 (index 31).
CONTENT_LAYERS = ("relu4_2", "relu5_2")


def _layer_names() -> list[str]:
    names, block, conv = [], 1, 1
    for item in VGG19_LAYOUT:
        if item == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


LAYER_NAMES = _layer_names()


def build_vgg_features(state_dict: dict[str, torch.Tensor], up_to: str) -> nn.Sequential:
    """VGG19-shaped `features` truncated after `up_to`. Channel widths are read from the
    weights, so a narrow test network with the same layer indices loads the same way."""
    last = LAYER_NAMES.index(up_to)
    layers: list[nn.Module] = []
    for index, name in enumerate(LAYER_NAMES[: last + 1]):
        if name.startswith("conv"):
            key = f"features.{index}.weight"
            if key not in state_dict:
                raise WeightsError(f"VGG checkpoint has no {key}; is it a torchvision VGG19 state dict?")
            out_ch, in_ch, kh, kw = state_dict[key].shape
            layers.append(nn.Conv2d(in_ch, out_ch, (kh, kw), padding=1))
        elif name.startswith("relu"):
            layers.append(nn.ReLU(inplace=False))
        else:
            layers.append(nn.MaxPool2d(2, 2))
    features = nn.Sequential(*layers)
    wanted = {k: v for k, v in state_dict.items() if k.startswith("features.")
              and int(k.split(".")[1]) <= last}
    try:
        features.load_state_dict({k.removeprefix("features."): v for k, v in wanted.items()}, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"VGG checkpoint does not fit the VGG19 layout: {str(exc).splitlines()[0]}") from None
    return features


class VGGFeatures(nn.Module):
    """Frozen VGG19 that returns the activations at `layers` for an RGB batch in [0, 1]."""

    def __init__(self, features: nn.Sequential, layers: tuple[str, ...] = CONTENT_LAYERS) -> None:
        super().__init__()
        self.features = features.eval().requires_grad_(False)
        self.tap_indices = [LAYER_NAMES.index(name) for name in layers]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = (image - self.mean.to(image.dtype)) / self.std.to(image.dtype)
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.tap_indices:
                taps.append(x)
            if index == self.tap_indices[-1]:
                break
        return taps


def load_vgg_features(path: Path, layers: tuple[str, ...] = CONTENT_LAYERS) -> VGGFeatures:
    state_dict = load_state_dict(path)
    return VGGFeatures(build_vgg_features(state_dict, up_to=max(layers, key=LAYER_NAMES.index)), layers)
