"""Speed benchmark: median seconds per optimisation step, variants measured side by side.

Random weights cost exactly the compute of pretrained ones, so the benchmark writes random-init
checkpoints of the real architectures and drives the normal loading path with them. Variants
are interleaved round by round, so drift in machine load affects all of them alike. Variants
with the same backbones share one loaded `Stylizer`.

Per variant it records the step times (after one warm-up step, which also pays for compiling),
the setup time of each run (everything before the first step: content references, text
directions, crops), and the peak memory of its runs: on CUDA `max_memory_allocated`, on a CPU
the peak resident set size (VmHWM, reset through /proc/self/clear_refs before each run; None
where that file is not writable). Peaks are also given as growth over the memory in use when
the variant's run started, since the loaded backbones of every variant stay in memory.

The "reference" variant restructures one step the way CLIPstyler's released training loop does
(crops drawn one at a time with torchvision, separate CLIP passes for crops and the whole image,
CLIP weights left trainable), on the same backbones and losses, as a baseline for the speed-up.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import itertools
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from clipstyler_opt.core.config import LEGACY_BACKBONE_FIELDS, StyleConfig
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.method.losses import content_loss, directional_loss, thresholded_mean, total_variation
from clipstyler_opt.method.pixels import pil_to_tensor
from clipstyler_opt.models import OPEN_CLIP, check_backbone_requirements, family_of
from clipstyler_opt.models.random_init import write_random_vgg
from clipstyler_opt.models.unet import UNet
from clipstyler_opt.models.vgg import plain_layout_copy
from clipstyler_opt.run.engine import BACKBONE_FIELDS, Progress, Stylizer, pad_to_multiple, working_size
from clipstyler_opt.run.images import LoadedImage, load_image

__all__ = [
    "PAPER_STEPS",
    "REFERENCE_LABEL",
    "BenchRow",
    "BenchVariant",
    "check_reference",
    "peak_memory",
    "random_weights",
    "reset_peak_memory",
    "run_benchmark",
]

PROMPT = "starry night by Vincent van Gogh"
REFERENCE_LABEL = "CLIPstyler-style loop"
PAPER_STEPS = 200
_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


@dataclass(frozen=True)
class BenchVariant:
    label: str
    config: StyleConfig
    prompt: str = PROMPT


@dataclass
class BenchRow:
    variant: str
    precision: str
    preset: str = "default"
    compile: str = "off"
    bf16_weights: bool = False
    steps_per_image: int = PAPER_STEPS  # the variant's own --steps (a preset may change it)
    preset_applied: dict[str, object] = field(default_factory=dict)
    step_times: list[float] = field(default_factory=list)
    setup_times: list[float] = field(default_factory=list)
    first_step_times: list[float] = field(default_factory=list)  # the warm-up steps, compiling included
    peak_memory_mb: float | None = None
    peak_growth_mb: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.step_times) if self.step_times else float("nan")

    @property
    def setup_s(self) -> float | None:
        return statistics.median(self.setup_times) if self.setup_times else None

    def seconds_per_image(self, steps: int) -> float:
        """Setup plus `steps` median steps: one image once the process is warm (compiled, loaded)."""
        return (self.setup_s or 0.0) + steps * self.median_s

    def add_peak(self, peak: tuple[float, float] | None) -> None:
        if peak is not None:
            self.peak_memory_mb = max(self.peak_memory_mb or 0.0, peak[0])
            self.peak_growth_mb = max(self.peak_growth_mb or 0.0, peak[1])


def random_weights(config: StyleConfig, folder: Path) -> StyleConfig:
    """`config` with every backbone without a local file replaced by random-init files of its
    architecture, as its family writes them (`BackboneFamily.random_weights`; a family without
    them is a one-line ConfigError)."""
    check_backbone_requirements(config.backbone_specs(), config.load_context())
    specs = [family_of(spec).random_spec(spec, folder) for spec in config.backbone_specs()]
    clip_defaults = {name: StyleConfig.__dataclass_fields__[name].default
                     for name in LEGACY_BACKBONE_FIELDS}
    return config.replace(**clip_defaults, backbone=tuple(str(spec) for spec in specs),
                          vgg_checkpoint=config.vgg_checkpoint or write_random_vgg(folder))


def check_reference(config: StyleConfig) -> None:
    """The CLIPstyler-style reference loop rebuilds the first backbone with open_clip's own,
    trainable modules, so it needs an open_clip backbone: a one-line ConfigError otherwise.

    Example:
        >>> check_reference(StyleConfig())  # ViT-B-32-quickgelu/openai: an open_clip model
    """
    spec = config.backbone_specs()[0]
    family = family_of(spec)
    if family.name != OPEN_CLIP:
        raise ConfigError(f"the CLIPstyler-style reference loop runs open_clip backbones only, and {spec} is of "
                          f"the {family.name!r} family; pass --no-reference")


def _reference_step_fn(stylizer: Stylizer, config: StyleConfig, content: torch.Tensor,
                       direction: torch.Tensor) -> Callable[[], None]:
    from torchvision import transforms

    from clipstyler_opt.models.clip import create_open_clip

    runtime = stylizer.runtime
    # open_clip's own modules, and trainable: the released code never freezes CLIP.
    spec = stylizer.members[0].spec
    clip = create_open_clip(spec, config.load_context(), runtime.device, fast_vit=False).requires_grad_(True)
    size = clip.input_size
    crop = transforms.RandomCrop(config.crop_size)
    augment = transforms.Compose([transforms.RandomPerspective(fill=0, p=1, distortion_scale=config.distortion),
                                  transforms.Resize(size)])
    padded = pad_to_multiple(content)
    height, width = content.shape[-2:]
    device = content.device
    unet = UNet(config.unet_width).to(device)
    optimizer = torch.optim.Adam(unet.parameters(), lr=config.lr)
    vgg = plain_layout_copy(stylizer.vgg)  # torchvision's VGG19 on NCHW tensors, as the released code runs it
    w = config
    threshold = config.threshold if config.threshold is not None else 0.7
    with torch.no_grad(), runtime.autocast():
        e_c = F.normalize(clip.encode_image(F.interpolate(content, size=size, mode="bicubic")).float(), dim=-1)
        reference_features = vgg(content)

    def step() -> None:
        optimizer.zero_grad()
        with runtime.autocast():
            output = unet(padded)[..., :height, :width]
            patches = torch.cat([augment(crop(output.float())) for _ in range(config.crops)])
            loss_patch = thresholded_mean(directional_loss(clip.encode_image(patches), e_c, direction),
                                          threshold)
            whole = F.interpolate(output, size=size, mode="bicubic")
            loss_dir = directional_loss(clip.encode_image(whole), e_c, direction).mean()
            loss = (w.lambda_patch * loss_patch + w.lambda_dir * loss_dir + w.lambda_tv * total_variation(output)
                    + w.lambda_content * content_loss(vgg(output), reference_features))
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return step


def _shared_stylizers(variants: list[BenchVariant]) -> list[Stylizer]:
    """One Stylizer per distinct set of backbones (and weight storage), shared by its variants."""
    def key(config: StyleConfig) -> tuple[object, ...]:
        return (*(getattr(config, name) for name in BACKBONE_FIELDS), config.bf16_weights)

    loaded: dict[tuple[object, ...], Stylizer] = {}
    for variant in variants:
        if key(variant.config) not in loaded:
            loaded[key(variant.config)] = Stylizer(variant.config)
    return [loaded[key(v.config)] for v in variants]


def _run_variant(row: BenchRow, stylizer: Stylizer, config: StyleConfig, loaded: LoadedImage, steps: int,
                 on_step: Callable[[str], None] | None, prompt: str = PROMPT) -> None:
    marks: list[float] = []

    def record(event: Progress) -> None:
        marks.append(event.elapsed)
        if on_step:
            on_step(row.variant)

    overrides = {name: getattr(config, name) for name in config.field_names()
                 if getattr(config, name) != getattr(stylizer.config, name)}
    overrides.update(steps=steps + 1, early_stop=False)
    device = stylizer.runtime.device
    start = reset_peak_memory(device)
    result = stylizer.stylize(loaded, prompt, progress=record, **overrides)
    row.add_peak(peak_memory(device, start))
    row.first_step_times.append(marks[0])
    row.step_times += [b - a for a, b in itertools.pairwise(marks)]  # drops the warm-up step
    row.setup_times.append(result.timings["setup_s"])
    row.precision = result.precision  # what ran (auto resolved, or a fallback)
    row.notes = list(dict.fromkeys([*row.notes, *result.warnings]))


def run_benchmark(variants: list[BenchVariant], image: Path, *, steps: int, rounds: int, reference: bool,
                  on_step: Callable[[str], None] | None = None) -> list[BenchRow]:
    """Per round, every variant runs one warm-up step plus `steps` timed steps. The reference uses
    the first variant's first backbone, device and precision, at the settings without its preset."""
    if reference:
        check_reference(variants[0].config)
    stylizers = _shared_stylizers(variants)
    rows = [BenchRow(v.label, v.config.precision, v.config.preset, v.config.compile, v.config.bf16_weights,
                     v.config.steps, v.config.preset_applied) for v in variants]
    loaded = load_image(image)
    reference_step = None
    if reference:
        base, config = stylizers[0], variants[0].config.replace(preset="default")
        w, h = working_size(*loaded.rgb.size, config.size)
        content = pil_to_tensor(loaded.rgb.resize((w, h))).to(base.runtime.device)
        member = base.members[0]
        direction = F.normalize(member.texts(PROMPT, "imagenet") - member.texts(config.source_text, "imagenet"),
                                dim=-1)
        reference_step = _reference_step_fn(base, config, content, direction)
        rows.append(BenchRow(REFERENCE_LABEL, base.runtime.precision, steps_per_image=config.steps))
    for _ in range(rounds):
        # rows may end with the reference row, which runs below
        for row, stylizer, variant in zip(rows, stylizers, variants, strict=False):
            _run_variant(row, stylizer, variant.config, loaded, steps, on_step, variant.prompt)
        if reference_step is not None:
            start = reset_peak_memory(stylizers[0].runtime.device)
            warm = time.perf_counter()
            reference_step()
            rows[-1].first_step_times.append(time.perf_counter() - warm)
            for _ in range(steps):
                tick = time.perf_counter()
                reference_step()
                rows[-1].step_times.append(time.perf_counter() - tick)
                if on_step:
                    on_step("reference")
            rows[-1].add_peak(peak_memory(stylizers[0].runtime.device, start))
    return rows


# --- peak memory ---
def _status_mb(key: str) -> float | None:
    try:
        match = re.search(rf"^{key}:\s+(\d+) kB", _STATUS.read_text(), re.M)
    except OSError:
        return None
    return int(match.group(1)) / 1024 if match else None


def reset_peak_memory(device: torch.device) -> float | None:
    """Reset the peak-memory counter; the memory in use now (MB), or None where no peak can be measured."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / 2**20
    if device.type != "cpu":
        return None
    _release_free_memory()
    try:
        _CLEAR_REFS.write_text("5")  # Linux: VmHWM := VmRSS
    except OSError:
        return None
    return _status_mb("VmRSS")


def _release_free_memory() -> None:
    """Hand memory freed by earlier runs back to the system (glibc's malloc_trim), so that a
    variant's growth is not hidden by what the allocator kept from the one before."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: peaks then include memory kept from earlier runs
        ctypes.CDLL(None).malloc_trim(0)


def peak_memory(device: torch.device, start: float | None) -> tuple[float, float] | None:
    """(peak MB, growth over `start` MB) since `reset_peak_memory`, or None."""
    if start is None:
        return None
    if device.type == "cuda":
        peak: float | None = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = _status_mb("VmHWM")
    return None if peak is None else (peak, max(0.0, peak - start))
