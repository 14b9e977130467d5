"""Speed benchmark: median seconds per optimisation step, variants measured side by side.

Random weights cost exactly the compute of pretrained ones, so the benchmark writes random-init
checkpoints of the real architectures and drives the normal loading path with them. Variants
are interleaved round by round, so drift in machine load affects all of them alike.

The "reference" variant restructures one step the way CLIPstyler's released training loop does
(crops drawn one at a time with torchvision, separate CLIP passes for crops and the whole image,
CLIP weights left trainable), on the same backbones and losses, as a baseline for the speed-up.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .config import StyleConfig
from .engine import Progress, Stylizer, pad_to_multiple, working_size
from .imageio import load_image, pil_to_tensor
from .losses import LossWeights, content_loss, directional_loss, thresholded_mean, total_variation
from .unet import UNet

__all__ = ["BenchRow", "write_random_checkpoints", "run_benchmark", "temporary_checkpoints"]

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


def write_random_checkpoints(folder: Path, clip_model: str) -> tuple[Path, Path]:
    import open_clip
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(0)
    clip_path, vgg_path = folder / f"{clip_model}-random.safetensors", folder / "vgg19-random.pth"
    logging.disable(logging.WARNING)  # open_clip warns that no pretrained weights were loaded: intended here
    try:
        model = open_clip.create_model(clip_model)
    finally:
        logging.disable(logging.NOTSET)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(clip_path))
    features = torchvision.models.vgg19(weights=None).features
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, vgg_path)
    return clip_path, vgg_path


def _reference_step_fn(stylizer: Stylizer, config: StyleConfig, content: torch.Tensor,
                       direction: torch.Tensor) -> Callable[[], None]:
    from torchvision import transforms

    from .backbones.clip import create_open_clip

    runtime = stylizer.runtime
    # open_clip's own modules, and trainable: the released code never freezes CLIP.
    clip = create_open_clip(config, runtime.device, fast_vit=False).requires_grad_(True)
    size = clip.input_size
    crop = transforms.RandomCrop(config.crop_size)
    augment = transforms.Compose([transforms.RandomPerspective(fill=0, p=1, distortion_scale=config.distortion),
                                  transforms.Resize(size)])
    padded = pad_to_multiple(content)
    height, width = content.shape[-2:]
    device = content.device
    unet = UNet(config.unet_width).to(device)
    optimizer = torch.optim.Adam(unet.parameters(), lr=config.lr)
    w = LossWeights(config.lambda_patch, config.lambda_dir, config.lambda_content, config.lambda_tv)
    with torch.no_grad(), runtime.autocast():
        e_c = F.normalize(clip.encode_image(F.interpolate(content, size=size, mode="bicubic")).float(), dim=-1)
        reference_features = stylizer.vgg(content)

    def step() -> None:
        optimizer.zero_grad()
        with runtime.autocast():
            output = unet(padded)[..., :height, :width]
            patches = torch.cat([augment(crop(output.float())) for _ in range(config.crops)])
            loss_patch = thresholded_mean(directional_loss(clip.encode_image(patches), e_c, direction),
                                          config.threshold)
            whole = F.interpolate(output, size=size, mode="bicubic")
            loss_dir = directional_loss(clip.encode_image(whole), e_c, direction).mean()
            loss = (w.patch * loss_patch + w.dir * loss_dir + w.tv * total_variation(output)
                    + w.content * content_loss(stylizer.vgg(output), reference_features))
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return step


def run_benchmark(config: StyleConfig, image: Path, precisions: list[str], *, steps: int, rounds: int,
                  reference: bool, on_step: Callable[[str], None] | None = None) -> list[BenchRow]:
    """Per round, every variant runs one warm-up step plus `steps` timed steps."""
    stylizers = {p: Stylizer(config.replace(precision=p)) for p in precisions}
    rows = {p: BenchRow("clipstyler_opt", s.runtime.precision) for p, s in stylizers.items()}
    loaded = load_image(image)
    reference_step = None
    if reference:
        base = stylizers[precisions[0]]
        w, h = working_size(*loaded.rgb.size, config.size)
        content = pil_to_tensor(loaded.rgb.resize((w, h))).to(base.runtime.device)
        direction = base.text_directions(PROMPT, config.source_text, config.templates)
        reference_step = _reference_step_fn(base, config, content, direction)
        rows["reference"] = BenchRow("CLIPstyler-style loop", base.runtime.precision)
    for _ in range(rounds):
        for key, stylizer in stylizers.items():
            row = rows[key]
            marks: list[float] = []

            def record(event: Progress, marks: list[float] = marks) -> None:
                marks.append(event.elapsed)
                if on_step:
                    on_step(f"{row.variant} {row.precision}")

            _reset_peak(stylizer.runtime.device)
            stylizer.stylize(loaded, PROMPT, steps=steps + 1, progress=record)
            row.step_times += [b - a for a, b in zip(marks, marks[1:])]  # drops the warm-up step
            row.peak_memory_mb = _peak(stylizer.runtime.device)
        if reference_step is not None:
            reference_step()  # warm-up
            for _ in range(steps):
                start = time.perf_counter()
                reference_step()
                rows["reference"].step_times.append(time.perf_counter() - start)
                if on_step:
                    on_step("reference")
    return list(rows.values())


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def temporary_checkpoints(config: StyleConfig, folder: str | None = None) -> tuple[StyleConfig, tempfile.TemporaryDirectory[str] | None]:
    """Fill in random-init checkpoints for any backbone not given explicitly."""
    if config.clip_checkpoint and config.vgg_checkpoint:
        return config, None
    tmp = tempfile.TemporaryDirectory(prefix="clipopt-bench-", dir=folder)
    clip_path, vgg_path = write_random_checkpoints(Path(tmp.name), config.clip_model)
    return config.replace(clip_checkpoint=config.clip_checkpoint or clip_path,
                          vgg_checkpoint=config.vgg_checkpoint or vgg_path), tmp
