"""Tiny random-init backbones saved as real checkpoint files, so tests drive the real loading code.

- a tiny open_clip architecture (JSON config registered with open_clip), saved as safetensors;
- a narrow VGG19-shaped network with torchvision's layer indices, saved with torch.save.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

TINY_CLIP_NAME = "clipopt-tiny-test"
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
# VGG19 layout with every width divided by 16: same layer indices as torchvision's vgg19.features.
TINY_VGG_WIDTHS = (4, 4, "M", 8, 8, "M", 16, 16, 16, 16, "M", 32, 32, 32, 32, "M", 32, 32, 32, 32, "M")


def write_tiny_clip(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    import open_clip
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / f"{TINY_CLIP_NAME}.json"
    config_path.write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(config_path)
    torch.manual_seed(seed)
    model = open_clip.create_model(TINY_CLIP_NAME)
    checkpoint = folder / "tiny-clip.safetensors"
    save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    return config_path, checkpoint


def tiny_vgg_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    state, index, channels = {}, 0, 3
    for item in TINY_VGG_WIDTHS:
        if item == "M":
            index += 1
            continue
        conv = nn.Conv2d(channels, int(item), 3, padding=1)
        # He init keeps activations at a useful scale through 16 layers, so the content loss matters.
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        nn.init.zeros_(conv.bias)
        state[f"features.{index}.weight"] = conv.weight.detach().clone()
        state[f"features.{index}.bias"] = conv.bias.detach().clone()
        channels, index = int(item), index + 2  # conv + relu
    state["classifier.0.weight"] = torch.zeros(4, 4)  # like torchvision's file: ignored by the loader
    return state


def write_tiny_vgg(folder: Path, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny-vgg19.pth"
    torch.save(tiny_vgg_state_dict(seed), path)
    return path


def write_all(folder: Path) -> dict[str, Path]:
    config_path, clip_checkpoint = write_tiny_clip(folder)
    return {"clip_model_config": config_path, "clip_checkpoint": clip_checkpoint,
            "vgg_checkpoint": write_tiny_vgg(folder)}
