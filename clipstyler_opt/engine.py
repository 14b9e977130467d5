"""`Stylizer`: loads the backbones once, then optimises a fresh U-Net per (image, prompt)."""

from __future__ import annotations

import logging
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from PIL import Image

from .augment import PatchCrops
from .backbones import (VisionLanguageBackbone, create_backbone, create_content_network,
                        resolve_content_weights)
from .config import StyleConfig
from .errors import ConfigError, InputImageError, OptimisationError, WeightsError
from .imageio import ImageSource, LoadedImage, load_image, pil_to_tensor, tensor_to_pil
from .losses import LossTerms, LossWeights, StyleObjective
from .precision import Runtime, resolve_runtime
from .provenance import provenance
from .text import TextDirections
from .unet import SIDE_MULTIPLE, UNet

__all__ = ["Stylizer", "stylize", "Progress", "Result", "ProgressCallback", "FrameCallback"]

log = logging.getLogger(__name__)
# Fields that decide which backbones are loaded; changing them needs a new Stylizer.
BACKBONE_FIELDS = ("backbone", "clip_model", "clip_pretrained", "clip_checkpoint", "clip_model_config",
                   "vgg_checkpoint", "cache_dir", "offline", "device")
MAX_CONSECUTIVE_NONFINITE = 10
MIN_SIDE = 16  # VGG19 pools four times before relu5_2


@dataclass(frozen=True)
class Progress:
    """Sent to the progress callback after every step."""

    step: int  # 1-based
    total: int
    losses: dict[str, float]
    elapsed: float  # seconds since the optimisation started
    lr: float = 0.0  # learning rate used for this step
    skipped: bool = False  # True when this step's loss or gradient was non-finite and the update was skipped


ProgressCallback = Callable[[Progress], None]
FrameCallback = Callable[[int, Image.Image], None]


@dataclass
class Result:
    image: Image.Image
    prompt: str
    seed: int
    device: str
    precision: str
    losses: dict[str, float]  # final loss terms, evaluated on the saved image
    history: list[dict[str, float]]  # per-step loss terms
    timings: dict[str, float]
    config: StyleConfig
    skipped_steps: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # full provenance, as embedded in saved files

    def save(self, path: Any, *, sidecar: bool = True) -> list[str]:
        from .imageio import save_image

        return save_image(self.image, path, self.metadata, sidecar=sidecar)


class Stylizer:
    """Holds the frozen backbones; each `stylize` call trains a new U-Net from scratch."""

    def __init__(self, config: StyleConfig | None = None, device: str | None = None, *,
                 backbone: VisionLanguageBackbone | None = None) -> None:
        config = config or StyleConfig()
        self.config = config.replace(device=device) if device else config
        self.runtime = resolve_runtime(self.config.device, self.config.precision)
        for note in self.runtime.notes:
            log.warning(note)
        # The VGG file is looked for before CLIP is even imported (open_clip takes seconds to
        # import), so a machine without weights or network gets its answer in seconds.
        try:
            vgg_weights = resolve_content_weights(self.config)
        except WeightsError as missing:
            if backbone is not None or self.config.clip_checkpoint is not None:
                raise
            raise WeightsError(f"{missing} (the CLIP weights {self.config.clip_model}/"
                               f"{self.config.clip_pretrained} are needed too, unless already cached)") from None
        self.backbone = backbone if backbone is not None else create_backbone(self.config, self.runtime.device)
        self.vgg = create_content_network(vgg_weights, self.runtime.device)
        self.vgg_provenance = {"weights": str(vgg_weights.path), "weights_origin": vgg_weights.origin}
        self.text_directions = TextDirections(self.backbone)

    def stylize(self, image: ImageSource | LoadedImage, prompt: str, *, progress: ProgressCallback | None = None,
                on_frame: FrameCallback | None = None, **overrides: Any) -> Result:
        config = self.config.replace(**overrides) if overrides else self.config
        changed = [name for name in BACKBONE_FIELDS if getattr(config, name) != getattr(self.config, name)]
        if changed:
            raise ConfigError(f"{', '.join(changed)} cannot change per call; create a new Stylizer")
        if not prompt.strip():
            raise ConfigError("the style prompt is empty")
        runtime = self.runtime
        if config.precision != self.config.precision:
            runtime = resolve_runtime(config.device, config.precision)
            for note in runtime.notes:
                log.warning(note)
        started = time.perf_counter()
        loaded = image if isinstance(image, LoadedImage) else load_image(image)
        return _Optimisation(self, config, runtime, loaded, prompt, started).run(progress, on_frame)


def stylize(image: ImageSource, prompt: str, *, progress: ProgressCallback | None = None,
            **overrides: Any) -> Result:
    """One-shot convenience: build a `Stylizer` from `StyleConfig(**overrides)` and run it once."""
    return Stylizer(StyleConfig().replace(**overrides)).stylize(image, prompt, progress=progress)


def working_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def pad_to_multiple(image: torch.Tensor, multiple: int = SIDE_MULTIPLE) -> torch.Tensor:
    height, width = image.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    return F.pad(image, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else image


def clipstyler_contrast(image: torch.Tensor) -> torch.Tensor:
    """CLIPstyler's saving step: contrast x1.5 around the grey mean, then a min-max stretch."""
    from torchvision.transforms.functional import adjust_contrast

    boosted = adjust_contrast(image.clamp(0, 1), 1.5)
    low, high = boosted.min(), boosted.max()
    return (boosted - low) / (high - low).clamp_min(1e-8)


class _Optimisation:
    """One run: fixed content, prompt and seed. Kept separate so `Stylizer` stays stateless per call."""

    def __init__(self, stylizer: Stylizer, config: StyleConfig, runtime: Runtime, loaded: LoadedImage,
                 prompt: str, started: float) -> None:
        self.stylizer, self.config, self.runtime = stylizer, config, runtime
        self.loaded, self.prompt, self.started = loaded, prompt, started
        self.warnings: list[str] = list(runtime.notes)

    def _content(self) -> torch.Tensor:
        w, h = working_size(*self.loaded.rgb.size, self.config.size)
        if min(w, h) < MIN_SIDE:
            raise InputImageError(f"{self.loaded.source}: at --size {self.config.size} the image would be "
                                  f"{w}x{h}; the content network needs at least {MIN_SIDE} pixels a side")
        resized = self.loaded.rgb.resize((w, h), Image.Resampling.BICUBIC) if (w, h) != self.loaded.rgb.size \
            else self.loaded.rgb
        return pil_to_tensor(resized).to(self.runtime.device)

    def _crop_size(self, content: torch.Tensor) -> int:
        short = min(content.shape[-2:])
        if self.config.crop_size > short:
            self.warnings.append(f"crop size {self.config.crop_size} exceeds the image's short side {short}; "
                                 f"using {short}")
            log.warning(self.warnings[-1])
            return short
        return self.config.crop_size

    def run(self, progress: ProgressCallback | None, on_frame: FrameCallback | None) -> Result:
        cfg, runtime, s = self.config, self.runtime, self.stylizer
        content = self._content()
        height, width = content.shape[-2:]
        padded = pad_to_multiple(content)
        devices = [runtime.device] if runtime.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(cfg.seed)
            unet = UNet(cfg.unet_width).to(runtime.device)  # initialised on the CPU RNG: same on every device
            direction = s.text_directions(self.prompt, cfg.source_text, cfg.templates)
            crops = PatchCrops(cfg.crops, self._crop_size(content), cfg.distortion, s.backbone.input_size)
            weights = LossWeights(cfg.lambda_patch, cfg.lambda_dir, cfg.lambda_content, cfg.lambda_tv)
            with runtime.autocast():
                objective = StyleObjective(s.backbone, s.vgg, content, direction, crops, weights, cfg.threshold)
            setup_s = time.perf_counter() - self.started
            history, skipped, step_times = self._optimise(unet, padded, objective, (height, width),
                                                          progress, on_frame)
            with torch.no_grad(), runtime.autocast():
                output = unet(padded)[..., :height, :width].float()
                final = objective(output)
        if not torch.isfinite(output).all():
            raise OptimisationError(f"{self.loaded.source}: the optimised image is not finite")
        total_s = time.perf_counter() - self.started
        timings = {"setup_s": setup_s, "optimise_s": sum(step_times), "total_s": total_s,
                   "step_median_s": statistics.median(step_times) if step_times else 0.0}
        result = Result(
            image=self._to_pil(output), prompt=self.prompt, seed=cfg.seed, device=str(runtime.device),
            precision=runtime.precision, losses=dict(zip(LossTerms.NAMES, final.as_tensor().tolist())),
            history=history, timings=timings, config=cfg, skipped_steps=skipped, warnings=self.warnings,
        )
        result.metadata = provenance(result, self.loaded, s)
        return result

    def _optimise(self, unet: UNet, padded: torch.Tensor, objective: StyleObjective, size: tuple[int, int],
                  progress: ProgressCallback | None, on_frame: FrameCallback | None,
                  ) -> tuple[list[dict[str, float]], list[int], list[float]]:
        cfg, runtime = self.config, self.runtime
        height, width = size
        optimizer = torch.optim.Adam(unet.parameters(), lr=cfg.lr)
        # The loss is large (weights up to 9000), so the fp16 scale starts at 1 rather than 2**16, and
        # may grow within a 200-step run (torch's default waits 2000 clean steps). Not yet tuned on a GPU.
        scaler = torch.amp.GradScaler(runtime.device.type, init_scale=1.0, growth_interval=25,
                                      enabled=runtime.uses_grad_scaler)
        params = list(unet.parameters())
        history: list[dict[str, float]] = []
        skipped: list[int] = []
        step_times: list[float] = []
        consecutive_nonfinite = 0
        loop_start = time.perf_counter()
        for step in range(1, cfg.steps + 1):
            tick = time.perf_counter()
            # Step decay as torch's StepLR: steps 1..100 at lr, 101..200 at lr/2 (by default).
            lr = cfg.lr * cfg.lr_decay_factor ** ((step - 1) // cfg.lr_decay_every)
            optimizer.param_groups[0]["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            with runtime.autocast():
                output = unet(padded)[..., :height, :width]
                terms = objective(output)
            scaler.scale(terms.total).backward()
            grads_finite = torch.isfinite(torch.stack(torch._foreach_norm([p.grad for p in params]))).all()
            # One host sync per step: the loss terms and the gradient check together.
            values = torch.cat([terms.as_tensor().float(), grads_finite.float().view(1)]).tolist()
            losses = dict(zip(LossTerms.NAMES, values[:-1]))
            loss_finite = all(math.isfinite(v) for v in values[:-1])
            updated = loss_finite and values[-1] == 1.0
            if runtime.uses_grad_scaler:
                scaler.step(optimizer)  # skips the update by itself when the scaled gradients overflowed
                scaler.update()
            elif updated:
                optimizer.step()
            if updated:
                consecutive_nonfinite = 0
            else:
                skipped.append(step)
                consecutive_nonfinite = 0 if loss_finite else consecutive_nonfinite + 1
                log.warning("step %d: non-finite %s; update skipped", step, "gradient" if loss_finite else "loss")
            step_times.append(time.perf_counter() - tick)
            history.append(losses)
            if consecutive_nonfinite >= MAX_CONSECUTIVE_NONFINITE:
                raise OptimisationError(f"{self.loaded.source}: loss was non-finite for "
                                        f"{MAX_CONSECUTIVE_NONFINITE} steps in a row (last at step {step})")
            if on_frame is not None and cfg.save_every and step % cfg.save_every == 0:
                self._emit_frame(on_frame, step, unet, padded, size)
            if progress is not None:
                progress(Progress(step, cfg.steps, losses, time.perf_counter() - loop_start, lr,
                                  skipped=not updated))
        if len(skipped) == cfg.steps:
            raise OptimisationError(f"{self.loaded.source}: every step was skipped (non-finite loss or gradient)")
        return history, skipped, step_times

    @torch.no_grad()
    def _emit_frame(self, on_frame: FrameCallback, step: int, unet: UNet, padded: torch.Tensor,
                    size: tuple[int, int]) -> None:
        """The image after `step` updates (one extra U-Net pass); a non-finite one is not offered."""
        with self.runtime.autocast():
            frame = unet(padded)[..., : size[0], : size[1]].float()
        if torch.isfinite(frame).all():
            on_frame(step, self._to_pil(frame))

    def _to_pil(self, output: torch.Tensor) -> Image.Image:
        image = tensor_to_pil(clipstyler_contrast(output) if self.config.contrast else output)
        if self.loaded.alpha is not None:
            image.putalpha(self.loaded.alpha.resize(image.size, Image.Resampling.BICUBIC))
        return image
