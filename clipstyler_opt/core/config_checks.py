"""The value checks `StyleConfig` runs on itself: every bad value is a one-line `ConfigError`
naming the option, raised before any weights load."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.formats import check_animation_path

if TYPE_CHECKING:
    from clipstyler_opt.core.config import StyleConfig

__all__ = ["MAX_OUTPUT_SIZE", "MAX_SIZE", "check_choice", "check_config"]

MAX_SIZE = 8192
MAX_OUTPUT_SIZE = 32768
_AT_LEAST_ONE = ("size", "steps", "crops", "crop_size", "unet_width", "lr_decay_every", "early_stop_patience")
_FINITE = ("lr", "lr_decay_factor", "distortion", "lambda_patch", "lambda_dir", "lambda_content", "lambda_tv",
           "early_stop_threshold")
_CHOICES = ("templates", "precision", "fusion", "compile")


def _fail(config: StyleConfig, name: str, rule: str) -> NoReturn:
    raise ConfigError(f"{name.replace('_', '-')} must be {rule}, got {getattr(config, name)!r}")


def check_choice(config: StyleConfig, name: str) -> None:
    choices = config.field_meta(name)["choices"]
    if getattr(config, name) not in choices:
        _fail(config, name, f"one of {', '.join(choices)}")


def check_config(config: StyleConfig) -> None:
    for name in _AT_LEAST_ONE:
        if getattr(config, name) < 1:
            _fail(config, name, "at least 1")
    if config.size > MAX_SIZE:
        raise ConfigError(f"size {config.size} is absurd (the limit is {MAX_SIZE} pixels on the long side)")
    if config.save_every < 0:
        _fail(config, "save_every", "0 (off) or positive")
    if not 0 <= config.seed < 2**63:
        _fail(config, "seed", "in [0, 2**63)")
    if config.threshold is not None and not (math.isfinite(config.threshold) and -1.0 <= config.threshold <= 3.0):
        _fail(config, "threshold", "in [-1, 3] (a directional loss lies in [0, 2])")
    config.backbone_specs()  # a bad spec fails here, before any weights load
    _check_style_options(config)
    for name in _FINITE:
        if not math.isfinite(getattr(config, name)):
            _fail(config, name, "a finite number")
    for name in ("lr", "lr_decay_factor"):
        if getattr(config, name) <= 0:
            _fail(config, name, "positive")
    if not 0.0 <= config.distortion <= 1.0:
        _fail(config, "distortion", "in [0, 1]")
    for name in ("lambda_patch", "lambda_dir", "lambda_content", "lambda_tv"):
        if getattr(config, name) < 0:
            _fail(config, name, "0 or more")
    if not 0.0 <= config.early_stop_threshold < 1.0:
        _fail(config, "early_stop_threshold", "in [0, 1) (a relative improvement)")
    for name in _CHOICES:
        check_choice(config, name)


def _check_style_options(config: StyleConfig) -> None:
    if config.style_strength is not None and not (math.isfinite(config.style_strength)
                                                  and 0.0 <= config.style_strength <= 1.0):
        _fail(config, "style_strength", "in [0, 1]")
    size = config.output_size
    if size is not None:
        text = str(size).strip().lower()
        if text != "full" and not (text.isdigit() and 16 <= int(text) <= MAX_OUTPUT_SIZE):
            _fail(config, "output_size", f"'full' or a long side between 16 and {MAX_OUTPUT_SIZE} pixels")
        object.__setattr__(config, "output_size", text)
    if config.animation is not None:
        target = config.animation
        check_animation_path(target if "." in Path(target).name else f"x.{target}")
    config.style_images()  # a missing file or a bad weight fails here, before any weights load
