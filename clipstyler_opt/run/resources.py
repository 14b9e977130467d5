"""Will a run fit? A documented estimate of the memory a run adds, the memory and disk space
available, and the one-line errors (with smaller settings) when it does not.

What decides whether a run fits is the memory it adds to the process: its peak resident set
(CPU) or allocation (CUDA) minus what was in use before its backbones were loaded. The estimate
models that growth as

    growth = LOAD_OVERHEAD + weights + pixels x (U-Net + VGG19 bytes per pixel) + Σ_members views x view_bytes

- weights: VGG19's 20.0 M parameters and each backbone's, 4 bytes each (the family's memory
  profile, `BackboneFamily.memory`);
- LOAD_OVERHEAD: what loading adds besides the weights (open_clip's imports, allocator arenas);
- per working-image pixel (padded to a multiple of 8): U-Net (width 16, linear in the width) and
  VGG19 up to relu5_2, forward and backward at the step's peak;
- per view (the whole image plus each crop, all in one batch), at the backbone's input size: the
  family's profile (open_clip: see `models/open_clip_family.py`);
- fp16/bf16 autocast: activations x HALF_PRECISION_FACTOR, plus half-precision copies of the
  weights made during the step (0.5 x weights).

With --output-size the saved image is rendered after the optimisation, when the step's
activations are gone but the weights are still loaded; the render adds

    render = min(one fp32 U-Net pass over the output, RENDER_BUDGET) + RENDER_BYTES_PER_PIXEL x output pixels

(the pass is tiled to stay within the budget; per output pixel: the content and the output in fp32,
the blending weights, one more float copy for --contrast or --keep-colors, and the 8-bit images),
and the growth is LOAD_OVERHEAD + weights + the larger of the step's activations and the render.

The constants were fitted to peak RSS on a CPU (random-init ViT-B/32 + VGG19, one process per
setting, 2 steps each, at 512 px with 32, 64 and 128 crops and at 256 px with 64 crops, fp32 and
bf16), and the README's Safety section lists the estimate against the measured growth at the
defaults and presets. A family without a memory profile is a one-line error (exit 2). Only a run
whose estimate exceeds the available memory is refused.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import OutputError, ResourceError
from clipstyler_opt.method.render import ACTIVATION_BYTES_PER_PIXEL_PER_WIDTH, RENDER_BUDGET_BYTES, output_dimensions
from clipstyler_opt.models import family_of
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
    "render_bytes",
    "smaller_settings",
]

UNET_BYTES_PER_PIXEL = 3100  # at width 16
VGG_BYTES_PER_PIXEL = 2100
VGG_PARAMETERS = 20_024_384  # torchvision's vgg19.features
LOAD_OVERHEAD_BYTES = 285e6
HALF_PRECISION_FACTOR = 0.55
HALF_WEIGHT_COPIES = 0.5
OUTPUT_OVERHEAD_BYTES = 64 * 1024
# per output pixel: content, output and one more copy in fp32 (3 x 12 bytes), the blending weight (4),
# and the 8-bit content and saved images (2 x 3 bytes)
RENDER_BYTES_PER_PIXEL = 3 * 4 + 3 * 4 + 4 + 3 * 4 + 2 * 3
MIN_SIZE = 64


def estimate_peak_bytes(config: StyleConfig, width: int, height: int, precision: str | None = None) -> int:
    """The memory a run adds (see the module docstring for the model) for an input image of
    `width` x `height` at `config`'s size, crops and backbones; `precision` is the resolved one
    (fp32, fp16, bf16), else `config.precision` ("auto" counts as fp32).

    Raises:
        ConfigError: a backbone whose family declares no memory profile, or an unknown model.

    Example:
        >>> from clipstyler_opt.core.config import StyleConfig
        >>> round(estimate_peak_bytes(StyleConfig(), 512, 512, "fp32") / 2**30, 1)  # GiB, ViT-B/32 at 512 px
        3.8
    """
    w, h = working_size(width, height, config.size)
    pixels = (-(-w // SIDE_MULTIPLE) * SIDE_MULTIPLE) * (-(-h // SIDE_MULTIPLE) * SIDE_MULTIPLE)
    activations = pixels * (UNET_BYTES_PER_PIXEL * config.unet_width / 16 + VGG_BYTES_PER_PIXEL)
    weights = 4.0 * VGG_PARAMETERS
    context = config.load_context()
    for spec in config.backbone_specs():
        memory = family_of(spec).tower_memory(spec, context)
        weights += memory.weight_bytes
        activations += memory.view_bytes * (1 + config.crops)
    if (precision or config.precision) in ("fp16", "bf16"):
        activations *= HALF_PRECISION_FACTOR
        weights *= 1 + HALF_WEIGHT_COPIES
    return int(LOAD_OVERHEAD_BYTES + weights + max(activations, render_bytes(config, width, height)))


def render_bytes(config: StyleConfig, width: int, height: int) -> int:
    """What the --output-size render adds (0 without it) for an input of `width` x `height`.

    Example:
        >>> from clipstyler_opt.core.config import StyleConfig
        >>> render_bytes(StyleConfig(), 4000, 3000)
        0
        >>> round(render_bytes(StyleConfig(output_size="full"), 4000, 3000) / 2**30, 2)  # GiB
        2.51
    """
    working = working_size(width, height, config.size)
    out_w, out_h = output_dimensions((width, height), working, config.output_size)
    if (out_w, out_h) == working:
        return 0
    padded = (-(-out_w // SIDE_MULTIPLE) * SIDE_MULTIPLE) * (-(-out_h // SIDE_MULTIPLE) * SIDE_MULTIPLE)
    one_pass = padded * ACTIVATION_BYTES_PER_PIXEL_PER_WIDTH * config.unet_width
    return int(min(one_pass, RENDER_BUDGET_BYTES) + RENDER_BYTES_PER_PIXEL * out_w * out_h)


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
    if config.output_size is not None and \
            estimate_peak_bytes(config.replace(output_size=None), width, height, precision) <= available:
        raise ResourceError(f"rendering at --output-size {config.output_size} needs about {_gib(needed)} of memory "
                            f"but {device} has about {_gib(available)} available; try a smaller --output-size "
                            "(the optimisation itself fits)")
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
