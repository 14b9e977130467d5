"""open_clip backbones (CLIP and SigLIP architectures) behind the `VisionLanguageBackbone` interface."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import StyleConfig
from ..errors import ConfigError, WeightsError
from .checkpoints import describe_load_error
from .fast_vit import speed_up_vision_tower
from .weights import WeightsFile, offline_requested, resolve_clip_weights

__all__ = ["OpenClipBackbone", "create_open_clip"]

log = logging.getLogger(__name__)
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")


class OpenClipBackbone(nn.Module):
    """Frozen open_clip model. Images arrive in [0, 1] at `input_size`; normalisation is applied here."""

    def __init__(self, model: nn.Module, tokenizer: Any, preprocess: dict[str, Any], provenance: dict[str, Any]):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        size = preprocess["size"]
        self.input_size: tuple[int, int] = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.interpolation: str = str(preprocess.get("interpolation", "bicubic"))
        self.register_buffer("mean", torch.tensor(preprocess["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(preprocess["std"]).view(1, 3, 1, 1), persistent=False)
        self.provenance = provenance

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image((pixels - self.mean.to(pixels.dtype)) / self.std.to(pixels.dtype))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts).to(self.mean.device)
        return self.model.encode_text(tokens)


def _register_config(path: Path | None) -> None:
    if path is None:
        return
    import open_clip

    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"--clip-model-config {path}: no such file")
    open_clip.add_model_config(path)


def create_open_clip(config: StyleConfig, device: torch.device, weights: WeightsFile | None = None, *,
                     fast_vit: bool = True) -> OpenClipBackbone:
    import open_clip

    _register_config(config.clip_model_config)
    name, tag = config.clip_model, config.clip_pretrained
    if name not in open_clip.list_models():
        raise ConfigError(f"unknown --clip-model {name!r}; open_clip knows {len(open_clip.list_models())} "
                          "architectures (python -c 'import open_clip; print(open_clip.list_models())')")
    try:  # before any weights are fetched: some tokenizers need extra packages or files
        tokenizer = open_clip.get_tokenizer(name)
    except Exception as exc:
        raise WeightsError(f"cannot build the tokenizer for {name}: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    if weights is None:
        weights = resolve_clip_weights(name, tag, explicit=config.clip_checkpoint, cache_dir=config.cache_dir,
                                       offline=offline_requested(config.offline))
    tag_cfg = open_clip.get_pretrained_cfg(name, tag)
    # open_clip only applies a tag's settings when it downloads by tag; we load a file, so apply them here.
    quick_gelu = bool(tag_cfg.get("quick_gelu", False))
    if quick_gelu and not open_clip.get_model_config(name).get("quick_gelu", False):
        log.info("%s/%s was trained with QuickGELU; building %s with QuickGELU", name, tag, name)
    overlay = {k: tag_cfg[k] for k in _PREPROCESS_KEYS if k in tag_cfg}
    try:
        model = open_clip.create_model(name, pretrained=str(weights.path), device=device,
                                       force_quick_gelu=quick_gelu, force_preprocess_cfg=overlay,
                                       weights_only=True)
    except Exception as exc:  # open_clip raises RuntimeError/KeyError/pickle errors for bad files
        raise WeightsError(describe_load_error(weights.path, exc)) from exc
    preprocess = dict(open_clip.get_model_preprocess_cfg(model))
    rewritten = speed_up_vision_tower(model.visual) if fast_vit else 0
    provenance = {"family": "open_clip", "model": name, "pretrained": tag, "quick_gelu": quick_gelu,
                  "weights": str(weights.path), "weights_origin": weights.origin, "fast_vit_modules": rewritten}
    return OpenClipBackbone(model, tokenizer, preprocess, provenance).to(device)
