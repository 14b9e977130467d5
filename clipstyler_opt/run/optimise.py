"""One optimisation: a fresh U-Net trained on one content image towards one style target."""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import torch
from PIL import Image

from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ConfigError, InputImageError, OptimisationError
from clipstyler_opt.method.early_stop import EarlyStopper
from clipstyler_opt.method.objective import LossDict, Objective, build_objective
from clipstyler_opt.method.pixels import pil_to_tensor
from clipstyler_opt.method.precision import (
    Runtime,
    compile_step,
    frozen_image_towers,
    frozen_weights_dtype,
    is_compile_failure,
    resolve_compile,
    store_weights_as,
)
from clipstyler_opt.method.render import finish_image
from clipstyler_opt.method.sizing import MIN_SIDE, pad_to_multiple, working_size
from clipstyler_opt.method.targets import StyleTarget
from clipstyler_opt.models.unet import UNet
from clipstyler_opt.run.images import LoadedImage
from clipstyler_opt.run.record import provenance
from clipstyler_opt.run.results import FrameCallback, Progress, ProgressCallback, Result, RunInterrupted

if TYPE_CHECKING:
    from clipstyler_opt.run.engine import Stylizer

__all__ = ["MAX_CONSECUTIVE_NONFINITE", "Optimisation"]

log = logging.getLogger(__name__)
MAX_CONSECUTIVE_NONFINITE = 10


class Optimisation:
    """One run: fixed content, prompt and seed. Kept separate so `Stylizer` stays stateless per call."""

    def __init__(self, stylizer: Stylizer, config: StyleConfig, runtime: Runtime, loaded: LoadedImage,
                 prompt: str, target: StyleTarget, started: float, *,
                 record_extra: dict[str, Any] | None = None, frame_every: int | None = None) -> None:
        self.frame_every = frame_every  # None: the config's --save-every/--animation interval
        self.stylizer, self.config, self.runtime = stylizer, config, runtime
        self.record_extra = dict(record_extra or {})
        self.loaded, self.prompt, self.target, self.started = loaded, prompt, target, started
        self.warnings: list[str] = list(runtime.notes)
        self.early_stopped_at: int | None = None
        self.compile_record: dict[str, Any] = {"requested": config.compile, "mode": "off"}
        self.frozen_weights = self._store_frozen_weights()

    def _warn(self, note: str) -> None:
        self.warnings.append(note)
        log.warning(note)

    def _store_frozen_weights(self) -> dict[str, Any]:
        """--bf16-weights: the image towers' and VGG's layer weights stored in bf16, once per Stylizer
        (its text towers stay fp32: text directions are computed in fp32)."""
        cfg, runtime = self.config, self.runtime
        towers, undeclared = frozen_image_towers(self.stylizer.members)
        modules = [*towers, self.stylizer.vgg]
        stored = frozen_weights_dtype(modules)
        wanted = cfg.bf16_weights and runtime.precision == "bf16"
        if stored == torch.bfloat16 and not wanted:
            raise ConfigError("bf16-weights (or a precision other than bf16) cannot change per call once the "
                              "weights are stored in bf16; create a new Stylizer")
        if cfg.bf16_weights and not wanted:
            self._warn(f"bf16-weights needs bf16 precision, but this run is {runtime.precision}: weights kept in fp32")
        for note in undeclared if wanted else ():
            self._warn(note)
        changed = store_weights_as(modules, torch.bfloat16) if wanted else 0
        return {"requested": cfg.bf16_weights, "dtype": "bf16" if wanted else "fp32", "tensors_cast": changed,
                "image_towers": len(towers), "members": len(self.stylizer.members)}

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
            self._warn(f"crop size {self.config.crop_size} exceeds the image's short side {short}; using {short}")
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
            with runtime.autocast():
                objective = build_objective(cfg, s.members, s.vgg, content, self.target,
                                            crop_size=self._crop_size(content))
            self.objective = objective
            self.setup_s = time.perf_counter() - self.started
            history, skipped, step_times = self._optimise(unet, padded, objective, (height, width),
                                                          progress, on_frame)
            try:
                with torch.no_grad(), runtime.autocast():
                    output = unet(padded)[..., :height, :width].float()
                    final = dict(zip(objective.names, objective.stack(objective(output)).tolist(), strict=True))
            except KeyboardInterrupt:
                raise RunInterrupted(self._partial(unet, padded, (height, width), history, skipped,
                                                   step_times)) from None
        if not torch.isfinite(output).all():
            raise OptimisationError(f"{self.loaded.source}: the optimised image is not finite")
        self.unet = unet
        result = self._result(output, final, history, skipped, step_times)
        if result.metadata.get("render_interrupted"):
            raise RunInterrupted(result)
        return result

    def _finish(self, output: torch.Tensor) -> tuple[Image.Image, bool]:
        """The saved image, and whether the --output-size render was interrupted (Ctrl-C or SIGTERM):
        the optimised image is then finished at the working size instead, so the work is kept."""
        try:
            return finish_image(output, self.loaded, self.config, unet=getattr(self, "unet", None)), False
        except KeyboardInterrupt:
            return finish_image(output, self.loaded, self.config, render_size=False), True

    def _result(self, output: torch.Tensor, losses: dict[str, float], history: list[dict[str, float]],
                skipped: list[int], step_times: list[float], interrupted_at: int | None = None) -> Result:
        cfg, runtime = self.config, self.runtime
        image, render_interrupted = self._finish(output)
        timings = {"setup_s": self.setup_s, "optimise_s": sum(step_times),
                   "total_s": time.perf_counter() - self.started,
                   "step_median_s": statistics.median(step_times) if step_times else 0.0}
        warnings = list(self.warnings)
        metadata = provenance(
            self.loaded, cfg, prompt=self.prompt, image_size=image.size, device=str(runtime.device),
            precision=runtime.precision, losses=losses, history=history, skipped_steps=skipped,
            run_warnings=warnings, timings=timings, members=self.stylizer.members,
            content_network=self.stylizer.vgg_provenance, objective=self.objective.describe(),
            target=self.target.describe(), interrupted_at_step=interrupted_at,
            render_interrupted=render_interrupted)
        return Result(
            image=image, prompt=self.prompt, seed=cfg.seed, device=str(runtime.device),
            precision=runtime.precision, losses=losses, history=history, timings=timings, config=cfg,
            skipped_steps=skipped, warnings=warnings,
            metadata={**metadata, **self._run_record(step_times), **self.record_extra},
        )

    def _run_record(self, step_times: list[float]) -> dict[str, Any]:
        """What decided how this run ran: the preset's values, early stopping, compiling, weight storage."""
        cfg = self.config
        early_stop = EarlyStopper(cfg.early_stop_patience, cfg.early_stop_threshold).describe() \
            if cfg.early_stop else None
        compiled = {**self.compile_record, "first_step_s": step_times[0] if step_times else None}
        return {"preset": {"name": cfg.preset, "applied": cfg.preset_applied}, "early_stop": early_stop,
                "early_stopped_at": self.early_stopped_at, "compile": compiled,
                "frozen_weights": self.frozen_weights}

    def _optimise(self, unet: UNet, padded: torch.Tensor, objective: Objective, size: tuple[int, int],
                  progress: ProgressCallback | None, on_frame: FrameCallback | None,
                  ) -> tuple[list[dict[str, float]], list[int], list[float]]:
        history: list[dict[str, float]] = []
        skipped: list[int] = []
        step_times: list[float] = []
        try:
            self._loop(unet, padded, objective, size, progress, on_frame, history, skipped, step_times)
        except KeyboardInterrupt:
            raise RunInterrupted(self._partial(unet, padded, size, history, skipped, step_times)) from None
        return history, skipped, step_times

    def _partial(self, unet: UNet, padded: torch.Tensor, size: tuple[int, int], history: list[dict[str, float]],
                 skipped: list[int], step_times: list[float]) -> Result | None:
        """The image after the last finished step, when there is one and it is finite."""
        if not history:
            return None
        with torch.no_grad(), self.runtime.autocast():
            output = unet(padded)[..., : size[0], : size[1]].float()
        if not torch.isfinite(output).all():
            return None
        return self._result(output, history[-1], history, skipped, step_times, interrupted_at=len(history))

    def _loop(self, unet: UNet, padded: torch.Tensor, objective: Objective, size: tuple[int, int],
              progress: ProgressCallback | None, on_frame: FrameCallback | None, history: list[dict[str, float]],
              skipped: list[int], step_times: list[float]) -> None:
        cfg, runtime = self.config, self.runtime
        height, width = size
        optimizer = torch.optim.Adam(unet.parameters(), lr=cfg.lr)
        # The loss is large (weights up to 9000), so the fp16 scale starts at 1 rather than 2**16, and
        # may grow within a 200-step run (torch's default waits 2000 clean steps). Not yet tuned on a GPU.
        scaler = torch.amp.GradScaler(runtime.device.type, init_scale=1.0, growth_interval=25,
                                      enabled=runtime.uses_grad_scaler)
        params = list(unet.parameters())
        consecutive_nonfinite = 0
        frame_every = cfg.frame_interval() if self.frame_every is None else self.frame_every
        stopper = EarlyStopper(cfg.early_stop_patience, cfg.early_stop_threshold) if cfg.early_stop else None

        def forward() -> LossDict:
            return objective(unet(padded)[..., :height, :width])

        step_forward = self._compiled(forward)
        loop_start = time.perf_counter()
        for step in range(1, cfg.steps + 1):
            tick = time.perf_counter()
            # Step decay as torch's StepLR: steps 1..100 at lr, 101..200 at lr/2 (by default).
            lr = cfg.lr * cfg.lr_decay_factor ** ((step - 1) // cfg.lr_decay_every)
            optimizer.param_groups[0]["lr"] = lr
            terms, step_forward = self._forward_backward(step_forward, forward, optimizer, scaler)
            grads = cast("list[torch.Tensor]", [p.grad for p in params])  # every U-Net parameter has one now
            grads_finite = torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()
            # One host sync per step: the loss terms and the gradient check together.
            values = torch.cat([objective.stack(terms), grads_finite.float().view(1)]).tolist()
            losses = dict(zip(objective.names, values[:-1], strict=True))
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
                consecutive_nonfinite += 1  # a gradient that stays non-finite ends the run as a loss does
                log.warning("step %d: non-finite %s; update skipped", step, "gradient" if loss_finite else "loss")
            step_times.append(time.perf_counter() - tick)
            history.append(losses)
            if consecutive_nonfinite >= MAX_CONSECUTIVE_NONFINITE:
                raise OptimisationError(f"{self.loaded.source}: the loss or its gradient was non-finite for "
                                        f"{MAX_CONSECUTIVE_NONFINITE} steps in a row (last at step {step})")
            if on_frame is not None and frame_every and step % frame_every == 0:
                self._emit_frame(on_frame, step, unet, padded, size)
            stop = stopper is not None and stopper.update(losses["total"]) and step < cfg.steps
            if progress is not None:  # the last event of an early stop carries the new total
                progress(Progress(step, step if stop else cfg.steps, losses, time.perf_counter() - loop_start, lr,
                                  skipped=not updated))
            if stop:
                self.early_stopped_at = step
                log.info("early stop at step %d of %d: the loss stopped improving", step, cfg.steps)
                break
        if len(skipped) == len(history):
            raise OptimisationError(f"{self.loaded.source}: every step was skipped (non-finite loss or gradient)")

    def _compiled(self, forward: Callable[[], LossDict]) -> Callable[[], LossDict]:
        if self.config.compile == "off":
            return forward
        mode, notes = resolve_compile(self.config.compile, self.runtime.device)
        for note in notes:
            self._warn(note)
        self.compile_record.update(mode=mode, notes=list(notes))
        return compile_step(forward, mode)

    def _forward_backward(self, step_forward: Callable[[], LossDict], eager: Callable[[], LossDict],
                          optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                          ) -> tuple[LossDict, Callable[[], LossDict]]:
        """One forward and backward pass; (the losses, the forward to use from now on). When
        compiling fails, the step is redone uncompiled from the same random state, and so is the run."""
        rng = _rng_state(self.runtime.device) if step_forward is not eager else None
        try:
            optimizer.zero_grad(set_to_none=True)
            with self.runtime.autocast():
                terms = step_forward()
            scaler.scale(terms["total"]).backward()
            return terms, step_forward
        except Exception as exc:
            if rng is None or not is_compile_failure(exc):
                raise
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self._warn(f"torch.compile failed ({type(exc).__name__}: {first_line[:200]}); running uncompiled")
            self.compile_record.update(mode="off", failed=f"{type(exc).__name__}: {first_line[:200]}")
            _restore_rng_state(self.runtime.device, rng)
            return self._forward_backward(eager, eager, optimizer, scaler)

    @torch.no_grad()
    def _emit_frame(self, on_frame: FrameCallback, step: int, unet: UNet, padded: torch.Tensor,
                    size: tuple[int, int]) -> None:
        """The image after `step` updates (one extra U-Net pass); a non-finite one is not offered."""
        with self.runtime.autocast():
            frame = unet(padded)[..., : size[0], : size[1]].float()
        if torch.isfinite(frame).all():
            on_frame(step, finish_image(frame, self.loaded, self.config, render_size=False))


def _rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    return torch.random.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _restore_rng_state(device: torch.device, state: tuple[torch.Tensor, torch.Tensor | None]) -> None:
    torch.random.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)
