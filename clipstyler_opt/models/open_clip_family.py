"""The open_clip family's registry entry: CLIP, SigLIP, SigLIP2, hf-hub: and local-dir: models.

Declaring it imports neither torch nor open_clip (the memory profile reads open_clip's JSON
configs as files); building a backbone goes through `models/clip.py`.

Memory profile (one backbone, fp32; see `run/resources.py` for the whole step):
- weights: 4 bytes x (12 x layers x width² per transformer, both towers, plus the token
  embeddings);
- per view (the whole image or one crop) at the tower's input size:
  VIEW_BYTES_BASE x (size/224)² + VIEW_BYTES_PER_TOKEN_CHANNEL x layers x tokens x width, the
  memory one more view adds to a step's peak, forward and backward: 27.1 MB for ViT-B/32, fitted
  to peak RSS with random-init ViT-B/32 on a CPU at 32, 64 and 128 crops (the split between the
  two terms, which gives ViT-B/16 about 2.8x ViT-B/32, comes from autograd's saved tensors).
Dimensions come from the model's JSON config (a `--clip-model-config` file, open_clip's bundled
one, one added to an imported open_clip, or a local-dir's open_clip_config.json); timm towers
and hf-hub: models without one from a ViT-{S,M,B,L,H,g,bigG}-PATCH[-SIZE] pattern in their
name; a model matching neither is counted as a ViT-L/14 at 336 px, a conservative default
(large: a run the check lets through fits).
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from clipstyler_opt.core.backbone_spec import BackboneSpec, LoadContext
from clipstyler_opt.core.files import read_regular
from clipstyler_opt.models.families import OPEN_CLIP, BackboneFamily, TowerMemory, VisionLanguageBackbone

if TYPE_CHECKING:
    import torch
    from torch import nn

_MAX_CONFIG_BYTES = 16 << 20  # a model config JSON; anything larger is not one

__all__ = ["OPEN_CLIP_FAMILY", "TowerShape", "architecture_config", "tower_memory", "tower_shape"]

VIEW_BYTES_BASE = 10.3e6  # per view at 224 px: input, patches, embeddings
VIEW_BYTES_PER_TOKEN_CHANNEL = 36.4  # per layer
DEFAULT_VOCABULARY = 49408
# vision width, vision layers, text width, text layers
_VIT_SHAPES = {"S": (384, 12, 384, 12), "M": (512, 12, 512, 12), "B": (768, 12, 512, 12),
               "L": (1024, 24, 768, 12), "H": (1280, 32, 1024, 24), "g": (1408, 40, 1024, 24),
               "bigG": (1664, 48, 1280, 32)}
_VIT_NAME = re.compile(r"ViT-(S|M|B|L|H|g|bigG)-(\d+)(?:-(\d+))?")
PROVENANCE_KEYS = ("family", "spec", "model", "pretrained", "quick_gelu", "weights", "weights_origin",
                   "tokenizer", "preprocess", "fast_vit")


class TowerShape(NamedTuple):
    """The dimensions the memory profile needs."""

    width: int
    layers: int
    patch: int
    size: int
    text_width: int
    text_layers: int
    vocabulary: int = DEFAULT_VOCABULARY


CONSERVATIVE_SHAPE = TowerShape(1024, 24, 14, 336, 768, 12)  # ViT-L/14 at 336 px


def architecture_config(model: str, registered: tuple[Path, ...]) -> dict[str, Any] | None:
    """open_clip's JSON config for `model` (a registered file, or one bundled with open_clip),
    read without importing open_clip (which takes seconds); None when there is none.

    Example:
        >>> architecture_config("ViT-B-32", ())["vision_cfg"]["patch_size"]
        32
        >>> architecture_config("no-such-model", ()) is None
        True
    """
    candidates = [Path(path) for path in registered if Path(path).stem == model]
    found = importlib.util.find_spec("open_clip")
    for folder in (found.submodule_search_locations or []) if found else []:
        candidates.append(Path(folder) / "model_configs" / f"{model}.json")
    for path in candidates:
        try:
            config = json.loads(read_regular(path, _MAX_CONFIG_BYTES))  # a FIFO is refused, never waited on
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(config, dict):
            model_cfg = config.get("model_cfg", config)  # open_clip_config.json's form, or a plain config
            return model_cfg if isinstance(model_cfg, dict) else None
    return None


def _shape(config: dict[str, Any], name: str) -> TowerShape:
    """Dimensions from a model config; a timm tower's from its ViT-X-PATCH name; else conservative."""
    vision, text = config.get("vision_cfg") or {}, config.get("text_cfg") or {}
    match = _VIT_NAME.search(name)
    if not match and not all(isinstance(vision.get(key), int) for key in ("width", "layers", "patch_size")):
        return CONSERVATIVE_SHAPE
    size = vision.get("image_size", 224)
    size = size if isinstance(size, int) else int(size[0])
    width, layers, text_width, text_layers = _VIT_SHAPES[match.group(1) if match else "B"]
    patch = int(match.group(2)) if match else 32
    if all(isinstance(vision.get(key), int) for key in ("width", "layers", "patch_size")):
        width, layers, patch = vision["width"], vision["layers"], vision["patch_size"]
    elif match and match.group(3):
        size = int(match.group(3))
    if isinstance(text.get("width"), int) and isinstance(text.get("layers"), int):
        text_width, text_layers = text["width"], text["layers"]
    return TowerShape(width, layers, patch, size, text_width, text_layers,
                      int(text.get("vocab_size", DEFAULT_VOCABULARY)))


def _registered_in_open_clip(model: str) -> dict[str, Any] | None:
    """The config of an architecture added to an already imported open_clip (`add_model_config`
    from Python); None when open_clip is not imported, which is not worth seconds here."""
    open_clip = sys.modules.get("open_clip")
    config = open_clip.get_model_config(model) if open_clip is not None else None
    return config if isinstance(config, dict) else None


def tower_shape(spec: BackboneSpec, context: LoadContext) -> TowerShape:
    """The dimensions of `spec`'s model, read from files only.

    Raises:
        ConfigError: an open_clip name (no hf-hub:/local-dir:) with no config: open_clip cannot build it.
    """
    if spec.schema == "local-dir":
        try:
            data = json.loads(read_regular(Path(spec.model).expanduser() / "open_clip_config.json",
                                           _MAX_CONFIG_BYTES))
        except (OSError, ValueError, RecursionError):
            data = {}
        model_cfg = data.get("model_cfg") if isinstance(data, dict) else None
        return _shape(model_cfg if isinstance(model_cfg, dict) else {}, Path(spec.model).name)
    if spec.schema == "hf-hub":
        return _shape({}, spec.model)
    config = architecture_config(spec.model, tuple(context.model_configs)) or _registered_in_open_clip(spec.model)
    if config is None:
        from clipstyler_opt.models.clip import unknown_model_error

        raise unknown_model_error(spec.model)
    return _shape(config, spec.model)


def tower_memory(shape: TowerShape) -> TowerMemory:
    """The memory profile of a tower of `shape` (see the module docstring).

    Example:
        >>> memory = tower_memory(TowerShape(768, 12, 32, 224, 512, 12))  # ViT-B/32
        >>> round(memory.view_bytes / 1e6, 1), round(memory.weight_bytes / 1e6)
        (27.1, 592)
    """
    tokens = (shape.size // shape.patch) ** 2 + 1
    view = (VIEW_BYTES_BASE * (shape.size / 224) ** 2
            + VIEW_BYTES_PER_TOKEN_CHANNEL * shape.layers * tokens * shape.width)
    parameters = (12 * shape.layers * shape.width**2 + 12 * shape.text_layers * shape.text_width**2
                  + shape.vocabulary * shape.text_width)
    return TowerMemory(weight_bytes=4.0 * parameters, view_bytes=view)


def _memory(spec: BackboneSpec, context: LoadContext) -> TowerMemory:
    return tower_memory(tower_shape(spec, context))


def _requirements(spec: BackboneSpec, context: LoadContext) -> None:
    from clipstyler_opt.models.clip import check_requirements

    check_requirements(spec, context)


def _create(spec: BackboneSpec, context: LoadContext, device: torch.device) -> VisionLanguageBackbone:
    from clipstyler_opt.models.clip import create_open_clip

    return create_open_clip(spec, context, device)


def _random_weights(spec: BackboneSpec, folder: Path, seed: int) -> BackboneSpec:
    from clipstyler_opt.models.random_init import randomised

    return randomised(spec, folder, seed)


def _frozen_towers(backbone: VisionLanguageBackbone) -> Sequence[nn.Module]:
    """The image tower (the text tower stays fp32: text directions are computed in fp32)."""
    from torch import nn

    tower = getattr(getattr(backbone, "model", None), "visual", None)
    return [tower] if isinstance(tower, nn.Module) else []


OPEN_CLIP_FAMILY = BackboneFamily(
    name=OPEN_CLIP, create=_create, requirements=_requirements, provenance_keys=PROVENANCE_KEYS,
    memory=_memory, random_weights=_random_weights, frozen_towers=_frozen_towers,
)
