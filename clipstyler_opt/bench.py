"""Speed benchmark: median seconds per optimisation step, variants measured side by side.

Random weights cost exactly the compute of pretrained ones, so the benchmark writes random-init
checkpoints of the real architectures and drives the normal loading path with them. Variants
are interleaved round by round, so drift in machine load affects all of them alike.

The "reference" variant restructures one step the way CLIPstyler's released training loop does
(crops drawn one at a time with torchvision, separate CLIP passes for crops and the whole image,
CLIP weights left trainable), on the same backbones and losses, as a baseline for the speed-up.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .backbones.random_init import randomised, write_random_vgg
from .config import StyleConfig
from .engine import Progress, Stylizer, pad_to_multiple, working_size
from .imageio import load_image, pil_to_tensor
from .losses import content_loss, directional_loss, thresholded_mean, total_variation
from .unet import UNet

__all__ = ["BenchRow", "BenchVariant", "run_benchmark", "random_weights"]

PROMPT = "starry night by Vincent van Gogh"


@dataclass
class BenchRow:
    variant: str
    precision: str
    step_times: list[float] = field(default_factory=list)
    peak_memory_mb: float | None = None

    @property
    def median_s(self) -> float:
        return statistics.median(self.step_times) if self.step_times else float("nan")


@dataclass(frozen=True)
class BenchVariant:
    label: str
    config: StyleConfig


def random_weights(config: StyleConfig, folder: Path) -> StyleConfig:
    """`config` with every backbone without a local file replaced by random-init files of its architecture."""
    specs = [randomised(spec, folder) for spec in config.backbone_specs()]
    clip_defaults = {name: StyleConfig.__dataclass_fields__[name].default
                     for name in ("clip_model", "clip_pretrained", "clip_checkpoint")}
    return config.replace(**clip_defaults, backbone=tuple(str(spec) for spec in specs),
                          vgg_checkpoint=config.vgg_checkpoint or write_random_vgg(folder))


def _reference_step_fn(stylizer: Stylizer, config: StyleConfig, content: torch.Tensor,
                       direction: torch.Tensor) -> Callable[[], None]:
    from torchvision import transforms

    from .backbones.clip import create_open_clip

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
    w = config
    threshold = config.threshold if config.threshold is not None else 0.7
    with torch.no_grad(), runtime.autocast():
        e_c = F.normalize(clip.encode_image(F.interpolate(content, size=size, mode="bicubic")).float(), dim=-1)
        reference_features = stylizer.vgg(content)

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
                    + w.lambda_content * content_loss(stylizer.vgg(output), reference_features))
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return step


def run_benchmark(variants: list[BenchVariant], image: Path, *, steps: int, rounds: int, reference: bool,
                  on_step: Callable[[str], None] | None = None) -> list[BenchRow]:
    """Per round, every variant runs one warm-up step plus `steps` timed steps. The reference uses
    the first variant's first backbone, device and precision."""
    stylizers = [Stylizer(v.config) for v in variants]
    rows = [BenchRow(v.label, s.runtime.precision) for v, s in zip(variants, stylizers)]
    loaded = load_image(image)
    reference_step = None
    if reference:
        base, config = stylizers[0], variants[0].config
        w, h = working_size(*loaded.rgb.size, config.size)
        content = pil_to_tensor(loaded.rgb.resize((w, h))).to(base.runtime.device)
        member = base.members[0]
        direction = F.normalize(member.texts(PROMPT, "imagenet") - member.texts(config.source_text, "imagenet"),
                                dim=-1)
        reference_step = _reference_step_fn(base, config, content, direction)
        rows.append(BenchRow("CLIPstyler-style loop", base.runtime.precision))
    for _ in range(rounds):
        for row, stylizer in zip(rows, stylizers):
            marks: list[float] = []

            def record(event: Progress, marks: list[float] = marks, label: str = row.variant) -> None:
                marks.append(event.elapsed)
                if on_step:
                    on_step(label)

            _reset_peak(stylizer.runtime.device)
            stylizer.stylize(loaded, PROMPT, steps=steps + 1, progress=record)
            row.step_times += [b - a for a, b in zip(marks, marks[1:])]  # drops the warm-up step
            row.peak_memory_mb = _peak(stylizer.runtime.device)
        if reference_step is not None:
            reference_step()  # warm-up
            for _ in range(steps):
                start = time.perf_counter()
                reference_step()
                rows[-1].step_times.append(time.perf_counter() - start)
                if on_step:
                    on_step("reference")
    return rows


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
