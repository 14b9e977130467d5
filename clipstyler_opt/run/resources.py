"""Will a run fit? A rough, documented estimate of the memory one optimisation step needs, the
memory and disk space available, and the one-line errors (with smaller settings) when it does not.

The estimate counts what autograd keeps for the backward pass, measured once on a CPU in fp32
with `torch.autograd.graph.saved_tensors_hooks` (frozen weights excluded):

- U-Net (width 16): ~2,300 bytes per working-image pixel (padded to a multiple of 8), linear in
  the width;
- VGG19 up to relu5_2: ~1,540 bytes per pixel;
- CLIP image tower, per view (the whole image plus each crop, all in one batch): ~26 MB for
  ViT-B/32 at 224 px, modelled as 10 MB x (input/224)^2 + 35.2 bytes x layers x tokens x width
  (which also gives the measured ~74 MB of ViT-B/16). Dimensions come from open_clip's JSON
  config of the model (read, not imported); timm towers from a ViT-{S,M,B,L,H,g,bigG}-PATCH name;
  anything else is counted as ViT-B/32;
- fp16/bf16 autocast halves the activations (measured 0.5-0.58) but adds half-precision copies
  of the weights.

peak = weights + 2 x activations (the backward pass holds gradients of similar size). It errs
high: on a CPU in fp32, random-weight ViT-B/32 + VGG19 + U-Net steps peaked at 3.0 GiB for the whole
process at 512 px with 16 crops (estimate 3.3 GiB) and 3.7 GiB at 256 px with 64 crops (estimate
4.3 GiB). Only a run whose estimate exceeds the available memory is refused.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import torch

from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import OutputError, ResourceError
from clipstyler_opt.models.unet import SIDE_MULTIPLE
from clipstyler_opt.run.engine import working_size

__all__ = [
    "available_memory",
    "check_free_space",
    "check_memory",
    "estimate_peak_bytes",
    "is_out_of_memory",
    "out_of_memory_as_error",
    "out_of_memory_error",
    "output_bytes_estimate",
    "smaller_settings",
]

UNET_BYTES_PER_PIXEL = 2300  # at width 16
VGG_BYTES_PER_PIXEL = 1540
VGG_PARAMETERS = 20_024_384  # torchvision's vgg19.features
VIEW_BYTES_BASE = 10e6  # per view at 224 px: input, patches, embeddings
VIEW_BYTES_PER_TOKEN_CHANNEL = 35.2  # per layer
HALF_PRECISION_FACTOR = 0.5
BACKWARD_FACTOR = 2
OUTPUT_OVERHEAD_BYTES = 64 * 1024
MIN_SIZE = 64
# vision width, vision layers, text width, text layers
_VIT_SHAPES = {"S": (384, 12, 384, 12), "M": (512, 12, 512, 12), "B": (768, 12, 512, 12),
               "L": (1024, 24, 768, 12), "H": (1280, 32, 1024, 24), "g": (1408, 40, 1024, 24),
               "bigG": (1664, 48, 1280, 32)}
_VIT_NAME = re.compile(r"ViT-(S|M|B|L|H|g|bigG)-(\d+)(?:-(\d+))?")


class _Shape(NamedTuple):
    width: int
    layers: int
    patch: int
    size: int
    text_width: int
    text_layers: int
    vocabulary: int = 49408


def _architecture(model: str, registered: tuple[Path, ...]) -> dict[str, Any]:
    """open_clip's JSON config for `model` (a registered file, or one bundled with open_clip),
    read without importing open_clip (which takes seconds); {} when there is none."""
    from clipstyler_opt.core.files import read_regular

    candidates = [Path(path) for path in registered if Path(path).stem == model]
    spec = importlib.util.find_spec("open_clip")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidates.append(Path(folder) / "model_configs" / f"{model}.json")
    for path in candidates:
        try:
            config = json.loads(read_regular(path, 16 << 20))
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(config, dict):
            return config
    return {}


def _clip_shape(model: str, registered: tuple[Path, ...]) -> _Shape:
    """The tower's dimensions from its config; a timm tower from its ViT-X-PATCH name; else ViT-B/32."""
    config = _architecture(model, registered)
    vision, text = config.get("vision_cfg") or {}, config.get("text_cfg") or {}
    size = vision.get("image_size", 224)
    size = size if isinstance(size, int) else int(size[0])
    match = _VIT_NAME.match(model)
    width, layers, text_width, text_layers = _VIT_SHAPES[match.group(1) if match else "B"]
    patch = int(match.group(2)) if match else 32
    if all(isinstance(vision.get(key), int) for key in ("width", "layers", "patch_size")):
        width, layers, patch = vision["width"], vision["layers"], vision["patch_size"]
    elif match and match.group(3):
        size = int(match.group(3))
    if isinstance(text.get("width"), int) and isinstance(text.get("layers"), int):
        text_width, text_layers = text["width"], text["layers"]
    return _Shape(width, layers, patch, size, text_width, text_layers, int(text.get("vocab_size", 49408)))


def _clip_bytes(shape: _Shape, views: int) -> tuple[float, float]:
    """(weight bytes, fp32 activation bytes for `views` views) of one CLIP model."""
    tokens = (shape.size // shape.patch) ** 2 + 1
    per_view = (VIEW_BYTES_BASE * (shape.size / 224) ** 2
                + VIEW_BYTES_PER_TOKEN_CHANNEL * shape.layers * tokens * shape.width)
    parameters = (12 * shape.layers * shape.width**2 + 12 * shape.text_layers * shape.text_width**2
                  + shape.vocabulary * shape.text_width)
    return 4.0 * parameters, per_view * views


def estimate_peak_bytes(config: StyleConfig, width: int, height: int, precision: str | None = None) -> int:
    """Rough peak memory of one optimisation step for an input image of `width` x `height` at
    `config`'s size, crops and backbones (see the module docstring for the model); `precision`
    is the resolved one (fp32, fp16, bf16), else `config.precision` ("auto" counts as fp32)."""
    w, h = working_size(width, height, config.size)
    pixels = (-(-w // SIDE_MULTIPLE) * SIDE_MULTIPLE) * (-(-h // SIDE_MULTIPLE) * SIDE_MULTIPLE)
    activations = pixels * (UNET_BYTES_PER_PIXEL * config.unet_width / 16 + VGG_BYTES_PER_PIXEL)
    weights = 4.0 * VGG_PARAMETERS
    for spec in config.backbone_specs():
        shape = _clip_shape(spec.model, tuple(config.clip_model_config))
        clip_weights, clip_activations = _clip_bytes(shape, 1 + config.crops)
        weights += clip_weights
        activations += clip_activations
    if (precision or config.precision) in ("fp16", "bf16"):
        activations *= HALF_PRECISION_FACTOR
        weights *= 1 + HALF_PRECISION_FACTOR / 2  # autocast's half-precision copies of the weights
    return int(weights + BACKWARD_FACTOR * activations)


def available_memory(device: torch.device) -> int | None:
    """Bytes free for this run: on CUDA what the driver reports free; on the CPU the smaller of
    MemAvailable and the cgroup's remaining limit; None where it cannot be known (e.g. MPS)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    candidates = [value for value in (_meminfo_available(), _cgroup_remaining()) if value is not None]
    if not candidates:
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            return None
    return min(candidates)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_remaining() -> int | None:
    root = Path("/sys/fs/cgroup")
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            limit = (root / limit_file).read_text().strip()
            usage = int((root / usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:  # "max", or v1's "no limit" sentinel
            return max(0, int(limit) - usage)
    return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def smaller_settings(config: StyleConfig, width: int, height: int, budget: int,
                     precision: str | None = None) -> tuple[int, int] | None:
    """The first (size, crops), halving the crops and taking 3/4 of the size in turn, whose
    estimate fits in `budget` bytes; None when not even --size 64 --crops 1 fits."""
    size, crops = config.size, config.crops
    for turn in range(200):
        if turn % 2 == 0 and crops > 1:
            crops = max(1, crops // 2)
        elif size > MIN_SIZE:
            size = max(MIN_SIZE, size * 3 // 4 // SIDE_MULTIPLE * SIDE_MULTIPLE)
        elif crops == 1:
            return None
        else:
            continue
        if estimate_peak_bytes(config.replace(size=size, crops=crops), width, height, precision) <= budget:
            return size, crops
    return None


def check_memory(config: StyleConfig, width: int, height: int, device: torch.device,
                 precision: str | None = None) -> None:
    """Raise ResourceError (exit 9) when the estimated peak exceeds the memory available on
    `device`, naming a smaller --size and --crops that would fit. Unknown availability passes."""
    available = available_memory(device)
    if available is None:
        return
    needed = estimate_peak_bytes(config, width, height, precision)
    if needed <= available:
        return
    fits = smaller_settings(config, width, height, available, precision)
    hint = (f"try --size {fits[0]} --crops {fits[1]}" if fits else
            f"not even --size {MIN_SIZE} --crops 1 fits; free memory or use another --device")
    raise ResourceError(f"this run needs about {_gib(needed)} of memory (--size {config.size}, --crops "
                        f"{config.crops}) but {device} has about {_gib(available)} available; {hint}")


def output_bytes_estimate(width: int, height: int, files: int = 1) -> int:
    """Disk space for `files` images of `width` x `height`: 4 bytes a pixel plus 64 KiB each
    (metadata, sidecar); PNG and JPEG compress below that."""
    return files * (width * height * 4 + OUTPUT_OVERHEAD_BYTES)


def check_free_space(folder: Path, needed_bytes: int) -> None:
    """Raise OutputError (exit 5) when the file system holding `folder` (or, before it exists,
    its nearest existing parent) has less than `needed_bytes` free."""
    probe = Path(os.path.abspath(folder))
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError as exc:
        raise OutputError(f"{folder}: cannot check free space ({exc.strerror or exc})") from None
    if free < needed_bytes:
        raise OutputError(f"{folder}: only {free / 2**20:.1f} MiB free, the output needs about "
                          f"{needed_bytes / 2**20:.1f} MiB")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's OutOfMemoryError, MemoryError, and RuntimeErrors that say memory ran out."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def out_of_memory_error(config: StyleConfig | None = None) -> ResourceError:
    """The one-line error for a run that ran out of memory, naming smaller settings to try."""
    if config is None:
        return ResourceError("out of memory; try a smaller --size (e.g. 3/4 of it) and fewer --crops (e.g. half)")
    size = max(MIN_SIZE, config.size * 3 // 4 // SIDE_MULTIPLE * SIDE_MULTIPLE)
    return ResourceError(f"out of memory at --size {config.size} --crops {config.crops}; try --size {size} "
                         f"--crops {max(1, config.crops // 2)}")


@contextmanager
def out_of_memory_as_error(config: StyleConfig) -> Iterator[None]:
    """Turn running out of memory inside the block into `out_of_memory_error(config)`."""
    try:
        yield
    except Exception as exc:
        if is_out_of_memory(exc):
            raise out_of_memory_error(config) from exc
        raise
