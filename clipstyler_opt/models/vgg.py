"""VGG19 feature taps for the content loss, built from a torchvision-layout state dict."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import torch
from torch import nn

from clipstyler_opt.core.errors import WeightsError
from clipstyler_opt.models.no_init import initialisation_skipped
from clipstyler_opt.weights.checkpoints import load_state_dict, weights_error

__all__ = [
    "CONTENT_LAYERS",
    "VGG19_LAYOUT",
    "VGGFeatures",
    "build_vgg_features",
    "load_vgg_features",
    "move_vgg_features",
    "plain_layout_copy",
]

# torchvision's vgg19 `features`: conv widths, "M" = max-pool. Layer indices follow from it.
VGG19_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# CLIPstyler's code names these conv4_2/conv5_2, but torchvision's in-place ReLU means the
# tensors it compares are the post-ReLU activations: relu4_2 (index 22) and relu5_2 (index 31).
CONTENT_LAYERS = ("relu4_2", "relu5_2")
# oneDNN and cuDNN run these convolutions fastest on channels-last (NHWC) tensors: measured on a
# 2-core CPU at 512², forward+backward takes 0.45x the time in bf16 and 0.88x in fp32.
CHANNELS_LAST_DEVICES = ("cpu", "cuda")


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


_FEATURE_KEY = re.compile(r"features\.(\d+)\.(weight|bias)")


def build_vgg_features(state_dict: dict[str, torch.Tensor], up_to: str, *, source: Path | str = "VGG state dict"
                       ) -> nn.Sequential:
    """VGG19-shaped `features` truncated after `up_to`. Channel widths are read from the
    weights, so a narrow test network with the same layer indices loads the same way.
    Anything else raises a WeightsError naming `source` and the first problem found."""
    last = LAYER_NAMES.index(up_to)
    found = _feature_tensors(state_dict, source)
    layers: list[nn.Module] = []
    wanted: dict[str, torch.Tensor] = {}
    channels = 3
    for index, name in enumerate(LAYER_NAMES[: last + 1]):
        tensors = found.get(index, {})
        if not name.startswith("conv"):
            if tensors:
                raise weights_error(source, f"features.{index}.{next(iter(tensors))} is not a VGG19 weight "
                                            f"(layer {index} is {name}, which has none)")
            layers.append(nn.ReLU(inplace=False) if name.startswith("relu") else nn.MaxPool2d(2, 2))
            continue
        weight, bias = _conv_tensors(tensors, index, name, channels, source)
        with initialisation_skipped():  # every weight is loaded below, strictly
            layers.append(nn.Conv2d(channels, weight.shape[0], 3, padding=1))
        wanted[f"{len(layers) - 1}.weight"], wanted[f"{len(layers) - 1}.bias"] = weight, bias
        channels = weight.shape[0]
    features = nn.Sequential(*layers)
    features.load_state_dict(wanted, strict=True)  # complete and shape-checked above
    return features


def _feature_tensors(state_dict: dict[str, torch.Tensor], source: Path | str) -> dict[int, dict[str, torch.Tensor]]:
    """`features.<index>.<weight|bias>` entries by layer index; other `features.` keys are errors."""
    found: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        if not key.startswith("features."):
            continue
        match = _FEATURE_KEY.fullmatch(key)
        if match is None:
            raise weights_error(source, f"unexpected key {key!r} (a torchvision VGG19 state dict has only "
                                        "features.<index>.weight/bias and classifier keys)")
        found.setdefault(int(match[1]), {})[match[2]] = value
    if not found:
        examples = ", ".join(list(state_dict)[:2])
        raise weights_error(source, f"no VGG19 feature layers (no features.<index>.weight keys; it has "
                                    f"{examples}, ...): is it a checkpoint of another architecture?")
    return found


def _conv_tensors(tensors: dict[str, torch.Tensor], index: int, name: str, in_channels: int,
                  source: Path | str) -> tuple[torch.Tensor, torch.Tensor]:
    def fail(problem: str) -> WeightsError:
        return weights_error(source, f"{problem} (layer {name}); is it a complete torchvision VGG19 state dict?")

    for part in ("weight", "bias"):
        if part not in tensors:
            raise fail(f"missing features.{index}.{part}")
        if not tensors[part].is_floating_point():
            raise fail(f"features.{index}.{part} holds {tensors[part].dtype} values, not floating point")
    weight, bias = tensors["weight"], tensors["bias"]
    if weight.ndim != 4 or tuple(weight.shape[1:]) != (in_channels, 3, 3) or weight.shape[0] < 1:
        raise fail(f"features.{index}.weight has shape {tuple(weight.shape)}, expected (out, {in_channels}, 3, 3)")
    if tuple(bias.shape) != (weight.shape[0],):
        raise fail(f"features.{index}.bias has shape {tuple(bias.shape)}, expected ({weight.shape[0]},)")
    return weight, bias


class VGGFeatures(nn.Module):
    """Frozen VGG19 that returns the activations at `layers` for an RGB batch in [0, 1]."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, features: nn.Sequential, layers: tuple[str, ...] = CONTENT_LAYERS, *,
                 channels_last_on: tuple[str, ...] = CHANNELS_LAST_DEVICES) -> None:
        super().__init__()
        self.features = features.eval().requires_grad_(False)
        self.channels_last_on = channels_last_on  # device types whose inputs are made channels-last
        self.tap_indices = [LAYER_NAMES.index(name) for name in layers]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        if image.device.type in self.channels_last_on:
            image = image.contiguous(memory_format=torch.channels_last)
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
    """Frozen VGG19 taps from a torchvision-layout checkpoint; every malformed file is a WeightsError."""
    state_dict = load_state_dict(path)
    return VGGFeatures(build_vgg_features(state_dict, up_to=max(layers, key=LAYER_NAMES.index), source=path), layers)


def move_vgg_features(vgg: VGGFeatures, device: torch.device) -> VGGFeatures:
    """`vgg` on `device`, its weights in the memory layout its convolutions run fastest in there."""
    layout = torch.channels_last if device.type in vgg.channels_last_on else torch.contiguous_format
    return vgg.to(device, memory_format=layout)  # type: ignore[call-overload]  # torch's overloads omit this pair


def plain_layout_copy(vgg: VGGFeatures) -> VGGFeatures:
    """A copy that computes on contiguous (NCHW) tensors everywhere, as torchvision's VGG does."""
    features = copy.deepcopy(vgg.features).to(memory_format=torch.contiguous_format)
    taps = tuple(LAYER_NAMES[index] for index in vgg.tap_indices)
    return VGGFeatures(features, taps, channels_last_on=()).to(vgg.mean.device)
