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


# --- a tiny SigLIP-architecture model: timm image tower, Hugging Face tokenizer ---
TINY_SIGLIP_NAME = "clipopt-tiny-siglip"
TINY_SIGLIP_TIMM = "clipopt_tiny_siglip_vit"
TINY_SIGLIP_TOKENIZER_REPO = "clipopt-test/tiny-siglip-tokenizer"
TINY_SIGLIP_VOCAB = 300
_CORPUS = ["a photo of a cat", "a Photo", "starry night by Vincent van Gogh", "ukiyo-e woodblock print",
           "a bad photo of a sculpture", "a painting of the starry night", "oil painting", "pencil sketch",
           "red", "green", "blue", "a rendering of a photo", "art of the cat", "the plastic toy"]


def register_tiny_timm_tower() -> None:
    """A two-block, 64-wide SigLIP-style ViT (no class token, attention-pool head) at 32 px."""
    import timm
    from timm.models import register_model
    from timm.models.vision_transformer import VisionTransformer

    if timm.is_model(TINY_SIGLIP_TIMM):
        return

    @register_model
    def clipopt_tiny_siglip_vit(pretrained: bool = False, **kwargs: object) -> VisionTransformer:
        options = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2, mlp_ratio=2.0,
                       class_token=False, global_pool="map")
        options.update({k: v for k, v in kwargs.items() if k not in ("pretrained_cfg", "pretrained_cfg_overlay",
                                                                     "cache_dir")})
        return VisionTransformer(**options)  # type: ignore[arg-type]


TINY_SIGLIP_CONFIG = {
    "model_cfg": {
        "embed_dim": 64,
        "init_logit_bias": -10,
        "custom_text": True,
        "vision_cfg": {"image_size": 32, "timm_model_name": TINY_SIGLIP_TIMM, "timm_model_pretrained": False,
                       "timm_pool": "map", "timm_proj": "none"},
        "text_cfg": {"context_length": 16, "vocab_size": TINY_SIGLIP_VOCAB,
                     "hf_tokenizer_name": TINY_SIGLIP_TOKENIZER_REPO, "tokenizer_kwargs": {"clean": "canonicalize"},
                     "width": 64, "heads": 2, "layers": 1, "no_causal_mask": True, "proj_bias": True,
                     "pool_type": "last", "norm_kwargs": {"eps": 1e-6}},
    },
    "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "interpolation": "bicubic",
                       "resize_mode": "squash"},
}


def write_tiny_tokenizer(folder: Path) -> Path:
    """A byte-pair tokenizer trained at test time with the `tokenizers` library, saved the way
    Hugging Face folders hold one (tokenizer.json + tokenizer_config.json)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=TINY_SIGLIP_VOCAB, special_tokens=["<pad>", "</s>", "<unk>"])
    tokenizer.train_from_iterator(_CORPUS * 4, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "pad_token": "<pad>", "eos_token": "</s>",
        "unk_token": "<unk>", "model_max_length": 64}))
    return folder


def write_tiny_siglip(folder: Path, seed: int = 0) -> dict[str, Path]:
    import open_clip
    from safetensors.torch import save_file

    register_tiny_timm_tower()
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / f"{TINY_SIGLIP_NAME}.json"
    config_path.write_text(json.dumps(TINY_SIGLIP_CONFIG))
    model_only = folder / "model-only" / f"{TINY_SIGLIP_NAME}.json"
    model_only.parent.mkdir(exist_ok=True)
    model_only.write_text(json.dumps(TINY_SIGLIP_CONFIG["model_cfg"]))
    open_clip.add_model_config(model_only)
    torch.manual_seed(seed)
    model = open_clip.create_model(TINY_SIGLIP_NAME)
    checkpoint = folder / "tiny-siglip.safetensors"
    save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    return {"config": config_path, "checkpoint": checkpoint, "tokenizer": write_tiny_tokenizer(folder / "tokenizer")}
