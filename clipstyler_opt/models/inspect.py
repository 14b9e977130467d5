"""What a checkpoint file holds: its architecture, read from tensor names and shapes alone.

Nothing is built. An open_clip image tower is recognised by its keys (`visual.conv1` and
`visual.transformer.resblocks.N` for open_clip's ViT, `visual.trunk.*` for a timm tower such as
SigLIP's, `visual.layerN` for a ModifiedResNet), a VGG by torchvision's `features.N.weight`
layout. The numbers read from the shapes are then compared with every architecture open_clip
knows (`open_clip.list_models()` + `get_model_config`) to name candidates.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from clipstyler_opt.core.errors import WeightsError
from clipstyler_opt.models.vgg import LAYER_NAMES, VGG19_LAYOUT, load_vgg_features
from clipstyler_opt.weights.checkpoints import checkpoint_format, describe_load_error, load_state_dict, weights_error

__all__ = [
    "Architecture",
    "CheckpointReport",
    "TensorInfo",
    "check_integrity",
    "infer_architecture",
    "inspect_checkpoint",
    "open_clip_candidates",
    "tensor_table",
]

_VGG19_CONVS = [index for index, name in enumerate(LAYER_NAMES) if name.startswith("conv")]
_VGG19_WIDTHS = [width for width in VGG19_LAYOUT if width != "M"]
_TEXT_KEYS = {"vocab_size", "text_width", "text_layers", "context_length"}
_MIN_SHARED = 4  # numbers a config must share with the file before it counts as a candidate


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Architecture:
    """`family`: open_clip-vit, open_clip-timm, open_clip-resnet, vgg or unknown."""

    family: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckpointReport:
    path: Path
    size_bytes: int
    sha256: str
    format: str
    tensors: int
    parameters: int
    dtypes: dict[str, int]  # dtype -> tensor elements of that type
    architecture: Architecture
    content_network: str | None = None  # VGG files: "loads" or why load_vgg_features refused it

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path), "architecture": {
            **asdict(self.architecture), "candidates": list(self.architecture.candidates)}}


def tensor_table(state: Mapping[str, torch.Tensor]) -> dict[str, TensorInfo]:
    return {key: TensorInfo(tuple(value.shape), str(value.dtype).removeprefix("torch."))
            for key, value in state.items()}


def _blocks(table: Mapping[str, TensorInfo], prefix: str) -> int:
    return len({key[len(prefix):].split(".", 1)[0] for key in table if key.startswith(prefix)})


def _shape(table: Mapping[str, TensorInfo], key: str) -> tuple[int, ...] | None:
    return table[key].shape if key in table else None


def _grid_side(tokens: int) -> int | None:
    side = math.isqrt(tokens)
    return side if side * side == tokens else None


def _text_details(table: Mapping[str, TensorInfo], prefix: str) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if (embedding := _shape(table, f"{prefix}token_embedding.weight")) is not None:
        details["vocab_size"], details["text_width"] = embedding[0], embedding[1]
    if (positions := _shape(table, f"{prefix}positional_embedding")) is not None:
        details["context_length"] = positions[0]
    if layers := _blocks(table, f"{prefix}transformer.resblocks."):
        details["text_layers"] = layers
    if (projection := _shape(table, "text_projection")) is not None:  # (text width, embed dim)
        details["embed_dim"] = projection[-1]
    elif (projection := _shape(table, "text.text_projection.weight")) is not None:  # nn.Linear: (out, in)
        details["embed_dim"] = projection[0]
    return details


def _vit(table: Mapping[str, TensorInfo]) -> Architecture:
    width, _, patch, _ = table["visual.conv1.weight"].shape
    details: dict[str, Any] = {"width": width, "patch_size": patch,
                               "layers": _blocks(table, "visual.transformer.resblocks.")}
    positions = _shape(table, "visual.positional_embedding")
    if positions is not None and (side := _grid_side(positions[0] - 1)):
        details["image_size"] = side * patch
    details.update(_text_details(table, ""))
    if (projection := _shape(table, "visual.proj")) is not None:
        details["embed_dim"] = projection[1]
    return Architecture("open_clip-vit", "open_clip CLIP with open_clip's ViT image tower", details)


def _timm(table: Mapping[str, TensorInfo]) -> Architecture:
    details: dict[str, Any] = {}
    if (patch_embed := _shape(table, "visual.trunk.patch_embed.proj.weight")) is not None and len(patch_embed) == 4:
        details["width"], details["patch_size"] = patch_embed[0], patch_embed[2]
        positions = _shape(table, "visual.trunk.pos_embed")
        tokens = positions[-2] - ("visual.trunk.cls_token" in table) if positions and len(positions) >= 2 else 0
        if (side := _grid_side(tokens)) is not None and tokens:
            details["image_size"] = side * patch_embed[2]
    if layers := _blocks(table, "visual.trunk.blocks."):
        details["layers"] = layers
    details.update(_text_details(table, "text." if "text.token_embedding.weight" in table else ""))
    if (head := _shape(table, "visual.head.proj.weight")) is not None:
        details["embed_dim"] = head[0]
    pool = " and an attention-pool head" if "visual.trunk.attn_pool.latent" in table else ""
    sigmoid = "; a logit bias, so SigLIP-style (sigmoid loss)" if "logit_bias" in table else ""
    return Architecture("open_clip-timm", f"open_clip model with a timm image tower{pool}{sigmoid}", details)


def _resnet(table: Mapping[str, TensorInfo]) -> Architecture:
    details: dict[str, Any] = {"layers": tuple(_blocks(table, f"visual.layer{stage}.") for stage in range(1, 5))}
    if (first := _shape(table, "visual.layer1.0.conv1.weight")) is not None:
        details["width"] = first[1]
    if (positions := _shape(table, "visual.attnpool.positional_embedding")) is not None and \
            (side := _grid_side(positions[0] - 1)):
        details["image_size"] = side * 32  # a ModifiedResNet downsamples by 32
    details.update(_text_details(table, ""))
    return Architecture("open_clip-resnet", "open_clip CLIP with a ModifiedResNet image tower", details)


def _vgg(table: Mapping[str, TensorInfo]) -> Architecture:
    convs = sorted(int(m[1]) for key in table if (m := re.fullmatch(r"features\.(\d+)\.weight", key)))
    widths = [table[f"features.{index}.weight"].shape[0] for index in convs]
    classifier = any(key.startswith("classifier.") for key in table)
    details = {"conv_layers": len(convs), "widths": widths, "classifier": classifier}
    if convs != _VGG19_CONVS:
        return Architecture("vgg", f"VGG-style features with {len(convs)} conv layers, not VGG19's layer layout",
                            details)
    full = widths == _VGG19_WIDTHS
    summary = "VGG19 (torchvision layout)" if full else "VGG19 layer layout (torchvision indices), other widths"
    return Architecture("vgg", summary, details, ("vgg19",) if full else ())


def infer_architecture(table: Mapping[str, TensorInfo]) -> Architecture:
    """The family and the numbers its tensor shapes give away; candidates are left empty."""
    if "visual.layer1.0.conv1.weight" in table:
        return _resnet(table)
    if "visual.conv1.weight" in table and len(table["visual.conv1.weight"].shape) == 4:
        return _vit(table)
    if any(key.startswith("visual.trunk.") for key in table):
        return _timm(table)
    if any(re.fullmatch(r"features\.\d+\.weight", key) for key in table):
        return _vgg(table)
    return Architecture("unknown", "no known layout (neither an open_clip model nor a torchvision VGG)")


def _config_details(cfg: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(family, numbers) an open_clip model config implies, with open_clip's own defaults."""
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    try:
        vision, text = CLIPVisionCfg(**cfg["vision_cfg"]), CLIPTextCfg(**cfg["text_cfg"])
    except (KeyError, TypeError):
        return None
    size = vision.image_size
    image_size = size if isinstance(size, int) else size[0] if len(set(size)) == 1 else tuple(size)
    details: dict[str, Any] = {"embed_dim": cfg.get("embed_dim"), "image_size": image_size}
    if not text.hf_model_name:
        details.update(vocab_size=text.vocab_size, text_width=text.width, text_layers=text.layers,
                       context_length=text.context_length)
    if vision.timm_model_name:
        patch = re.search(r"patch(\d+)", vision.timm_model_name)
        return "open_clip-timm", {**details, **({"patch_size": int(patch[1])} if patch else {})}
    if isinstance(vision.layers, (list, tuple)):
        return "open_clip-resnet", {**details, "layers": tuple(vision.layers), "width": vision.width}
    return "open_clip-vit", {**details, "layers": vision.layers, "width": vision.width, "patch_size": vision.patch_size}


def open_clip_candidates(architecture: Architecture) -> tuple[str, ...]:
    """open_clip architectures of the same family that agree on every number both sides know
    (at least four of them). The activation (GELU or QuickGELU) leaves no trace in the weights,
    so `-quickgelu` variants come as pairs."""
    import open_clip

    if not architecture.family.startswith("open_clip-"):
        return ()
    found = []
    for name in open_clip.list_models():
        implied = _config_details(open_clip.get_model_config(name) or {})
        if implied is None or implied[0] != architecture.family:
            continue
        if _TEXT_KEYS & architecture.details.keys() and not _TEXT_KEYS & implied[1].keys():
            continue  # a Hugging Face text tower: its weights would have other names
        shared = [key for key, value in architecture.details.items() if implied[1].get(key) is not None]
        if len(shared) >= _MIN_SHARED and all(architecture.details[key] == implied[1][key] for key in shared):
            found.append(name)
    return tuple(found)


def check_integrity(path: Path) -> str:
    """The file's format, after checking its structure without building a model: a safetensors
    header that covers the file exactly; a PyTorch zip whose members pass their CRC checks and
    that loads as a state dict; a legacy PyTorch file that loads as one. Raises WeightsError."""
    kind = checkpoint_format(path)
    try:
        if kind == "safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                handle.keys()
            return kind
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                broken = archive.testzip()
            if broken is not None:
                raise weights_error(path, f"corrupt: {broken} fails its CRC check")
    except WeightsError:
        raise
    except Exception as exc:  # safetensors and zipfile raise their own types
        raise WeightsError(describe_load_error(path, exc)) from None
    load_state_dict(path)
    return kind


def inspect_checkpoint(path: Path) -> CheckpointReport:
    """Everything `clipopt weights info` shows. A file that does not load as a state dict raises
    a one-line WeightsError naming it."""
    from clipstyler_opt.core.digests import file_sha256

    path = Path(path)
    kind = checkpoint_format(path)
    state = load_state_dict(path)
    table = tensor_table(state)
    del state
    architecture = infer_architecture(table)
    if architecture.family.startswith("open_clip-"):
        architecture = replace(architecture, candidates=open_clip_candidates(architecture))
    content = None
    if architecture.family == "vgg":
        try:
            load_vgg_features(path)
            content = "loads"
        except WeightsError as exc:
            content = str(exc)
    dtypes: Counter[str] = Counter()
    for info in table.values():
        dtypes[info.dtype] += info.numel
    return CheckpointReport(path, path.stat().st_size, file_sha256(path), kind, len(table),
                            sum(dtypes.values()), dict(dtypes), architecture, content)
