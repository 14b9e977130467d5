"""`StyleConfig`: the one source of defaults for the API, the CLI and config files.

Every field's metadata carries its help text; the CLI builds one option per field from it,
so a default changed here changes `stylize()`, `clipopt run --help` and TOML files at once.
Defaults reproduce CLIPstyler (Kwon & Ye, CVPR 2022) exactly; departures are opt-in.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

__all__ = ["StyleConfig", "load_toml", "MAX_SIZE", "TEMPLATE_SETS", "DEVICES", "PRECISIONS"]

MAX_SIZE = 8192
TEMPLATE_SETS = ("imagenet", "simple", "none")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DEVICES = "auto|cpu|cuda[:N]|mps"


def _opt(default: Any, help: str, *, group: str, output: bool | str = True, **extra: Any) -> Any:
    """A config field. `output=False` marks settings that cannot change the result image;
    `output="file"` a file that can, identified by name and size."""
    return field(default=default, metadata={"help": help, "group": group, "output": output, **extra})


@dataclass(frozen=True)
class StyleConfig:
    # --- the method (CLIPstyler defaults) ---
    size: int = _opt(512, "Long side of the working image in pixels; the aspect ratio is kept.", group="method")
    steps: int = _opt(200, "Optimisation steps.", group="method")
    lr: float = _opt(5e-4, "Adam learning rate.", group="method")
    lr_decay_every: int = _opt(100, "Multiply the learning rate by --lr-decay-factor every this many steps.",
                               group="method")
    lr_decay_factor: float = _opt(0.5, "Learning-rate decay factor.", group="method")
    crops: int = _opt(64, "Random crops per step for the patch loss.", group="method")
    crop_size: int = _opt(128, "Side of each random crop in pixels.", group="method")
    distortion: float = _opt(0.5, "Perspective distortion scale of each crop (0 disables the warp).",
                             group="method")
    threshold: float = _opt(0.7, "Patch-loss rejection threshold: crop losses below it count as 0.",
                            group="method")
    source_text: str = _opt("a Photo", "Text describing the content image's domain.", group="method")
    templates: str = _opt("imagenet", "Prompt templates averaged per text.", group="method",
                          choices=TEMPLATE_SETS)
    lambda_patch: float = _opt(9000.0, "Weight of the patch directional CLIP loss.", group="method")
    lambda_dir: float = _opt(500.0, "Weight of the global directional CLIP loss.", group="method")
    lambda_content: float = _opt(150.0, "Weight of the VGG19 content loss.", group="method")
    lambda_tv: float = _opt(2e-3, "Weight of the total-variation loss.", group="method")
    unet_width: int = _opt(16, "Base channel width of the U-Net.", group="method")
    contrast: bool = _opt(False, "Apply CLIPstyler's contrast 1.5 + min-max stretch to the saved image.",
                          group="method")
    seed: int = _opt(0, "Random seed (U-Net init and crops); recorded in every output.", group="method")

    # --- backbones and weights ---
    backbone: str = _opt("open_clip", "Vision-language backbone family (a registered name).", group="weights")
    clip_model: str = _opt("ViT-B-32-quickgelu", "open_clip architecture name.", group="weights")
    clip_pretrained: str = _opt("openai", "open_clip pretrained tag.", group="weights")
    clip_checkpoint: Path | None = _opt(None, "Local CLIP weights file (.safetensors, .bin, .pt); skips the cache "
                                              "and download.", group="weights", output="file", path=True)
    clip_model_config: Path | None = _opt(None, "JSON architecture file to register with open_clip before "
                                                "building --clip-model.", group="weights", output="file",
                                                path=True)
    vgg_checkpoint: Path | None = _opt(None, "Local VGG19 weights file (torchvision layout); skips the cache and "
                                             "download.", group="weights", output="file", path=True)
    cache_dir: Path | None = _opt(None, "Extra weights cache folder (searched first; downloads go there).",
                                  group="weights", output=False, path=True)
    offline: bool = _opt(False, "Never download; use only local files and caches (also CLIPOPT_OFFLINE=1).",
                         group="weights", output=False)

    # --- runtime ---
    device: str = _opt("auto", f"Device: {DEVICES}.", group="runtime", output=False)
    precision: str = _opt("auto", "Autocast precision: auto picks fp16/bf16 on CUDA, bf16 on CPUs with "
                                  "native bf16, else fp32.", group="runtime", choices=PRECISIONS)
    save_every: int = _opt(0, "Save a numbered frame every N steps into a folder next to the output "
                              "(0: off).", group="runtime", output=False)

    def __post_init__(self) -> None:
        def fail(name: str, rule: str) -> None:
            raise ConfigError(f"{name.replace('_', '-')} must be {rule}, got {getattr(self, name)!r}")

        for name in ("size", "steps", "crops", "crop_size", "unet_width", "lr_decay_every"):
            if getattr(self, name) < 1:
                fail(name, "at least 1")
        if self.size > MAX_SIZE:
            raise ConfigError(f"size {self.size} is absurd (the limit is {MAX_SIZE} pixels on the long side)")
        if self.save_every < 0:
            fail("save_every", "0 (off) or positive")
        if not 0 <= self.seed < 2**63:
            fail("seed", "in [0, 2**63)")
        for name in ("lr", "lr_decay_factor", "distortion", "threshold", "lambda_patch", "lambda_dir",
                     "lambda_content", "lambda_tv"):
            if not math.isfinite(getattr(self, name)):
                fail(name, "a finite number")
        for name in ("lr", "lr_decay_factor"):
            if getattr(self, name) <= 0:
                fail(name, "positive")
        if not 0.0 <= self.distortion <= 1.0:
            fail("distortion", "in [0, 1]")
        for name in ("lambda_patch", "lambda_dir", "lambda_content", "lambda_tv"):
            if getattr(self, name) < 0:
                fail(name, "0 or more")
        for name in ("templates", "precision"):
            choices = self.field_meta(name)["choices"]
            if getattr(self, name) not in choices:
                fail(name, f"one of {', '.join(choices)}")

    # --- introspection used by the CLI, TOML loading and provenance ---
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def field_meta(cls, name: str) -> Mapping[str, Any]:
        return {f.name: f.metadata for f in dataclasses.fields(cls)}[name]

    def replace(self, **changes: Any) -> "StyleConfig":
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise ConfigError(_unknown_message(unknown[0], self.field_names()))
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}

    def output_settings(self) -> dict[str, Any]:
        """The settings that can change the output image (used for provenance and resume checks).
        Files count by name and size, so other weights change the settings but moving them does not."""
        values = self.to_dict()
        settings = {}
        for f in dataclasses.fields(self):
            if f.metadata["output"] == "file":
                settings[f.name] = _file_identity(getattr(self, f.name))
            elif f.metadata["output"]:
                settings[f.name] = values[f.name]
        return settings

    def settings_hash(self, *extra: str) -> str:
        """A short stable hash of `output_settings()` plus `extra` strings (prompt, input digest...)."""
        blob = json.dumps([self.output_settings(), list(extra)], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _file_identity(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return f"{Path(path).name} ({Path(path).expanduser().stat().st_size} bytes)"
    except OSError:
        return Path(path).name


def _unknown_message(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown setting {key!r}{hint}"


def load_toml(path: Path, known_keys: tuple[str, ...]) -> dict[str, Any]:
    """Read a flat TOML file of options. Keys may use '-' or '_'. Unknown keys are an error,
    never ignored."""
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in known_keys:
            raise ConfigError(f"{path}: {_unknown_message(name, known_keys)}")
        values[name] = value
    return values
