"""open_clip backbones (CLIP, SigLIP, SigLIP2, any open_clip model) behind `VisionLanguageBackbone`.

Everything is resolved locally first (weights, model config, tokenizer), then open_clip is handed
local paths only; it never fetches anything itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clipstyler_opt.core.backbone_spec import BackboneSpec, LoadContext
from clipstyler_opt.core.errors import ConfigError, WeightsError
from clipstyler_opt.core.files import describe_os_error, read_regular, read_text, scratch_folder, write_bytes
from clipstyler_opt.models.fast_vit import speed_up_vision_tower
from clipstyler_opt.models.no_init import initialisation_skipped
from clipstyler_opt.models.tokenizers import build_tokenizer, require_extra_for, resolve_tokenizer_folder
from clipstyler_opt.weights.checkpoints import checkpoint_format, describe_load_error
from clipstyler_opt.weights.resolve import WeightsFile, resolve_clip_weights, resolve_hub_file

__all__ = ["OpenClipBackbone", "check_requirements", "create_open_clip", "unknown_model_error"]

log = logging.getLogger(__name__)
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")
APPLIED_RESIZE_MODE = "squash"  # method/losses.resize_for_backbone: no centre crop, whatever the model's config says
_LOCAL_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class OpenClipBackbone(nn.Module):
    """Frozen open_clip model. Images arrive in [0, 1] at `input_size`; normalisation is applied here."""

    mean: torch.Tensor  # buffers
    std: torch.Tensor

    def __init__(self, model: nn.Module, tokenizer: Any, preprocess: dict[str, Any], provenance: dict[str, Any]):
        super().__init__()
        self.model: Any = model.eval().requires_grad_(False)  # open_clip's model: untyped
        self.tokenizer = tokenizer
        size = preprocess["size"]
        self.input_size: tuple[int, int] = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.interpolation: str = str(preprocess.get("interpolation", "bicubic"))
        self.resize_mode: str = str(preprocess.get("resize_mode", "shortest"))
        self.register_buffer("mean", torch.tensor(preprocess["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(preprocess["std"]).view(1, 3, 1, 1), persistent=False)
        self.provenance = provenance

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image((pixels - self.mean.to(pixels.dtype)) / self.std.to(pixels.dtype))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Raw text embeddings. A causal tower pooling at the EOT token runs on the tokens up to the
        batch's last pooled position only: the padded result up to float rounding, and 6-8x faster for
        CLIP's prompt templates (e.g. 13 and 17 positions instead of 77). Other towers (SigLIP: not causal)
        see the padded sequence."""
        tokens = self.tokenizer(texts).to(self.mean.device)
        trimmed = _encode_text_trimmed(self.model, tokens)
        return trimmed if trimmed is not None else self.model.encode_text(tokens)


_MAX_CONFIG_BYTES = 16 << 20  # a model config JSON; anything larger is not one


def unknown_model_error(name: str, known: int | None = None) -> ConfigError:
    """The one-line error for an architecture open_clip does not know (exit 2).

    Example:
        >>> str(unknown_model_error("no-such-model"))[:29]
        "unknown model 'no-such-model'"
    """
    count = f"open_clip knows {known} architectures; " if known is not None else ""
    return ConfigError(f"unknown model {name!r}; {count}clipopt weights list shows the common ones, and "
                       "--clip-model-config FILE.json registers another")


def _encode_text_trimmed(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor | None:
    """open_clip's text forward on `tokens[:, :L]`, L = 1 + the batch's last pooled position, or
    None where that would not be exact. With a causal mask, position i only sees positions <= i,
    so nothing after the pooled token (the EOT: the highest id for `argmax` pooling, the first
    `eos_id` for `eos`) can change the output; positional embeddings and the mask are cut to L."""
    from open_clip.transformer import TextTransformer

    tower: Any = getattr(model, "text", model)  # CustomTextCLIP keeps a TextTransformer; CLIP inlines its parts
    pool_type: Any
    eos_id: Any
    if tower is model:
        pool_type, eos_id = getattr(model, "text_pool_type", None), getattr(model, "text_eos_id", None)
    elif isinstance(tower, TextTransformer) and tower.cls_emb is None and not tower.use_pad_mask:
        pool_type, eos_id = tower.pool_type, tower.eos_id
    else:
        return None
    mask = getattr(tower, "attn_mask", None)
    parts = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")
    if mask is None or pool_type not in ("argmax", "eos") or (pool_type == "eos" and eos_id is None) \
            or not all(hasattr(tower, name) for name in parts):
        return None
    pooled_at = tokens.argmax(dim=-1) if pool_type == "argmax" else torch.eq(tokens, eos_id).int().argmax(dim=-1)
    length = int(pooled_at.max()) + 1
    cast_dtype = tower.transformer.get_cast_dtype()
    x = tower.token_embedding(tokens[:, :length]).to(cast_dtype) + tower.positional_embedding[:length].to(cast_dtype)
    x = tower.transformer(x, attn_mask=mask[:length, :length])
    x = tower.ln_final(x[torch.arange(x.shape[0], device=x.device), pooled_at])
    projection = tower.text_projection
    if projection is None:
        return x
    return projection(x) if isinstance(projection, nn.Linear) else x @ projection


_CONFIG_PREPROCESS: dict[str, dict[str, Any]] = {}  # preprocess_cfg given in registered JSON files


def _register_configs(paths: tuple[Path, ...]) -> None:
    """Register JSON architectures with open_clip (name = file stem). A file may be a plain
    model config or open_clip_config.json's {"model_cfg", "preprocess_cfg"} form."""
    import open_clip

    for path in paths:
        path = Path(path).expanduser()
        text = read_text(path, limit=_MAX_CONFIG_BYTES, what="--clip-model-config")  # a FIFO: error, no hang
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"--clip-model-config {path}: not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"--clip-model-config {path}: not a JSON object")
        model_cfg = data.get("model_cfg", data)
        if not {"embed_dim", "vision_cfg", "text_cfg"} <= set(model_cfg):
            raise ConfigError(f"--clip-model-config {path}: needs embed_dim, vision_cfg and text_cfg")
        if "preprocess_cfg" in data:
            _CONFIG_PREPROCESS[path.stem] = dict(data["preprocess_cfg"])
        with scratch_folder("clipopt-arch-") as folder:
            plain = write_bytes(folder / f"{path.stem}.json", json.dumps(model_cfg).encode())
            open_clip.add_model_config(plain)


def _tag_settings(name: str, tag: str | None) -> tuple[dict[str, Any], str]:
    """(tag settings to apply: preprocessing keys and quick_gelu, where they came from). Without
    a tag, the settings all of the model's known tags agree on; a registered JSON's own
    preprocess_cfg; or open_clip's defaults for an architecture with no tags at all."""
    import open_clip

    def settings(cfg: dict[str, Any]) -> dict[str, Any]:
        picked = {k: cfg[k] for k in _PREPROCESS_KEYS if k in cfg}
        return {**picked, "quick_gelu": bool(cfg.get("quick_gelu", False))}

    if tag:
        return settings(open_clip.get_pretrained_cfg(name, tag)), f"pretrained tag {tag}"
    if name in _CONFIG_PREPROCESS:
        return {k: v for k, v in _CONFIG_PREPROCESS[name].items() if k in _PREPROCESS_KEYS}, "model config file"
    tags = open_clip.list_pretrained_tags_by_model(name)
    variants = {json.dumps(settings(open_clip.get_pretrained_cfg(name, t)), sort_keys=True) for t in tags}
    if len(variants) > 1:
        raise ConfigError(f"{name}'s pretrained tags ({', '.join(tags)}) preprocess differently; name the tag the "
                          f"file was trained with: {name}/TAG:file=PATH")
    if variants:
        return json.loads(variants.pop()), f"all pretrained tags of {name}"
    return {}, "open_clip defaults"


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(read_regular(path, _MAX_CONFIG_BYTES))
    except OSError as exc:
        raise WeightsError(f"{what} {path}: cannot read ({describe_os_error(exc)})") from None
    except (ValueError, RecursionError) as exc:
        raise WeightsError(f"{what} {path}: cannot read ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("model_cfg"), dict):
        raise WeightsError(f"{what} {path}: not an open_clip config (no model_cfg)")
    return data


def _local_weights(folder: Path) -> Path:
    for name in _LOCAL_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    raise WeightsError(f"{folder}: no {' or '.join(_LOCAL_WEIGHTS)} in the folder")


def _resolve_source(spec: BackboneSpec, context: LoadContext) -> tuple[str, dict[str, Any], WeightsFile, Path | None]:
    """(name for open_clip, model config, weights file, model folder or None)."""
    import open_clip

    if spec.schema == "local-dir":
        folder = Path(spec.model).expanduser()
        if not folder.is_dir():
            raise WeightsError(f"local-dir:{folder}: no such folder")
        config = _read_json(folder / "open_clip_config.json", "model config")
        return f"local-dir:{folder}", config["model_cfg"], WeightsFile(_local_weights(folder), "explicit"), folder
    if spec.schema == "hf-hub":
        where = dict(what=f"open_clip model {spec.source}", explicit=None, explicit_flag="a local-dir: spec",
                     cache_dir=context.cache_dir, offline=context.offline)
        config_file = resolve_hub_file(spec.model, ["open_clip_config.json"], **where)  # type: ignore[arg-type]
        config = _read_json(config_file.path, "model config")
        require_extra_for(spec.source, config["model_cfg"])
        weights = resolve_hub_file(spec.model, list(_LOCAL_WEIGHTS), **where)  # type: ignore[arg-type]
        if weights.path.parent != config_file.path.parent:
            raise WeightsError(f"{spec.source}: config and weights come from different snapshots; "
                               "clear the cache entry and retry")
        return f"local-dir:{config_file.path.parent}", config["model_cfg"], weights, config_file.path.parent
    name = spec.model  # known, with a tag or a file: check_requirements ran first
    model_cfg = open_clip.get_model_config(name)
    require_extra_for(name, model_cfg)
    weights = resolve_clip_weights(name, spec.pretrained, explicit=spec.file, cache_dir=context.cache_dir,
                                   offline=context.offline,
                                   explicit_flag="file=" if spec.file else context.weights_option)
    return name, model_cfg, weights, None


def check_requirements(spec: BackboneSpec, context: LoadContext) -> None:
    """Fail fast, before any weights are looked for (one-line ConfigError, exit 2): an architecture
    or pretrained tag open_clip does not know, a name with neither a tag nor a file, and the extra
    packages a model needs."""
    import open_clip

    _register_configs(context.model_configs)
    if spec.schema is None:
        name = spec.model
        if name not in open_clip.list_models():
            raise unknown_model_error(name, len(open_clip.list_models()))
        if spec.pretrained is None and spec.file is None:
            raise ConfigError(f"backbone {name}: give a pretrained tag ({name}/TAG) or a local file "
                              f"({name}:file=PATH)")
        tags = open_clip.list_pretrained_tags_by_model(name)
        if spec.pretrained is not None and tags and not open_clip.get_pretrained_cfg(name, spec.pretrained):
            raise ConfigError(f"unknown pretrained tag {spec.pretrained!r} for {name}; its tags are "
                              f"{', '.join(tags)}")
        require_extra_for(name, open_clip.get_model_config(name))
    elif spec.schema == "local-dir" and (Path(spec.model) / "open_clip_config.json").is_file():
        require_extra_for(spec.source, _read_json(Path(spec.model) / "open_clip_config.json", "model config")
                          ["model_cfg"])


def create_open_clip(spec: BackboneSpec, context: LoadContext, device: torch.device, *,
                     fast_vit: bool = True) -> OpenClipBackbone:
    import open_clip

    check_requirements(spec, context)
    name, model_cfg, weights, folder = _resolve_source(spec, context)
    hf_tokenizer = model_cfg.get("text_cfg", {}).get("hf_tokenizer_name")
    tokenizer_files = None
    if hf_tokenizer:
        tokenizer_files = resolve_tokenizer_folder(hf_tokenizer, explicit=spec.tokenizer, bundled=folder,
                                                   cache_dir=context.cache_dir, offline=context.offline)
    tokenizer = build_tokenizer(spec.model, model_cfg, tokenizer_files.path if tokenizer_files else None)
    options: dict[str, Any] = {}
    quick_gelu = bool(model_cfg.get("quick_gelu", False))
    preprocess_source = "model folder"
    if spec.schema is None:
        # open_clip only applies a tag's settings when it downloads by tag; we load a file, so apply them here.
        tag_settings, preprocess_source = _tag_settings(name, spec.pretrained)
        quick_gelu = quick_gelu or bool(tag_settings.pop("quick_gelu", False))
        options = dict(pretrained=str(weights.path.absolute()), force_quick_gelu=quick_gelu,
                       force_preprocess_cfg=tag_settings)
    try:
        # With a file given, open_clip loads every weight strictly, so the random draws are wasted.
        with (_suffixed_for_open_clip(weights.path, options) as options,
              initialisation_skipped() if "pretrained" in options else nullcontext()):
            model = open_clip.create_model(name, device=device, weights_only=True, **options)
    except WeightsError:
        raise
    except Exception as exc:  # open_clip raises RuntimeError/KeyError/pickle errors for bad files
        raise WeightsError(describe_load_error(weights.path, exc)) from exc
    preprocess = dict(open_clip.get_model_preprocess_cfg(model))
    rewritten = speed_up_vision_tower(model.visual) if fast_vit else 0
    fast = (f"applied to {rewritten} modules" if rewritten else
            "skipped: this image tower has no layout it reproduces (e.g. timm towers)" if fast_vit else "off")
    provenance = {
        "family": "open_clip", "spec": str(spec), "model": spec.source, "pretrained": spec.pretrained,
        "quick_gelu": quick_gelu, "weights": str(weights.path), "weights_origin": weights.origin,
        "tokenizer": str(tokenizer_files.path) if tokenizer_files else "open_clip bundled BPE",
        "preprocess": {"size": list(_pair(preprocess["size"])), "mean": list(preprocess["mean"]),
                       "std": list(preprocess["std"]), "interpolation": preprocess.get("interpolation"),
                       # what is applied: every view is the whole image (or crop) squashed to the input size
                       "resize_mode": APPLIED_RESIZE_MODE, "model_resize_mode": preprocess.get("resize_mode"),
                       "from": preprocess_source},
        "fast_vit": fast,
    }
    return OpenClipBackbone(model, tokenizer, preprocess, provenance).to(device)


@contextmanager
def _suffixed_for_open_clip(path: Path, options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """open_clip picks the loader by file suffix; ours reads the format from the bytes. A file
    whose name does not say its format (a safetensors file called `openai`, say) is handed to
    open_clip through a link whose suffix does."""
    if "pretrained" not in options:
        yield options
        return
    wanted = ".safetensors" if checkpoint_format(path) == "safetensors" else ".pt"
    if (path.suffix == ".safetensors") == (wanted == ".safetensors"):
        yield options
        return
    with scratch_folder("clipopt-weights-") as folder:
        link = folder / f"weights{wanted}"
        link.symlink_to(path.absolute())
        yield {**options, "pretrained": str(link)}


def _pair(size: Any) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
