"""`StyleConfig`: the one source of defaults for the API, the CLI and config files.

Every field's metadata declares what the rest of the program asks about it: its help text, its
role (`method`, `term weight`, `style`, `weights`, `runtime`), whether it can change the output
image (`output`), its validation rules (`checks`, see config_checks.py), and, for fields added
after the first release, the version that added them (`added_in`). The CLI builds one option per
field from it, so a default changed here changes `stylize()`, `clipopt run --help` and TOML files
at once. Defaults reproduce CLIPstyler (Kwon & Ye, CVPR 2022) exactly; departures are opt-in.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from clipstyler_opt.core.backbone_spec import DEFAULT_BACKBONE, BackboneSpec, LoadContext, offline_requested
from clipstyler_opt.core.config_checks import (
    ANIMATION,
    MAX_SIZE,
    OUTPUT_SIZE,
    TERM_WEIGHTS,
    Rule,
    at_least,
    at_most,
    check_field,
    finite,
    in_range,
    non_negative,
    one_of,
    optional,
    output_size_text,
    parse_term_weights,
    positive,
)
from clipstyler_opt.core.digests import file_sha256
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.presets import DEFAULT_PRESET, PRESET_NAMES, preset_values
from clipstyler_opt.core.styles import FUSION_MODES, StyleImage
from clipstyler_opt.core.templates import TEMPLATE_SETS

__all__ = ["COMPILE_MODES", "DEVICES", "LEGACY_BACKBONE_FIELDS", "MAX_SIZE", "PRECISIONS", "ROLES",
           "TEMPLATE_CHOICES", "StyleConfig", "model_fields", "term_weight_fields"]

TEMPLATE_CHOICES = ("auto", *TEMPLATE_SETS)
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
COMPILE_MODES = ("off", "default", "reduce-overhead")
DEVICES = "auto|cpu|cuda[:N]|mps"
# What a field is about; shown in --help as [role]. "term weight": the weight λ of one loss term.
ROLES = ("method", "term weight", "style", "weights", "runtime")
TERM_WEIGHT = "term weight"

AT_LEAST_ONE = (at_least(1),)
_POSITIVE = (finite(), positive())


def _opt(default: Any, help: str, *, role: str, output: bool | str = True, checks: tuple[Rule, ...] = (),
         added_in: str | None = None, **extra: Any) -> Any:
    """A config field and what it declares (see the module docstring).

    Args:
        role: one of ROLES.
        output: False for settings that cannot change the result image; "file" for a file that
            can, identified by name and SHA-256.
        checks: validation rules, applied in order; `choices` adds its own.
        added_in: the version that added the field. While it is at its default it is left out of
            the settings (and so of the settings hash), so folders made before keep their hash.
        extra: `choices`, `path`, `multiple`, `metavar`, `numeric_text` (text that may be given
            as an integer), `part_of_backbone`, `loads_models`.
    """
    assert role in ROLES, role
    if "choices" in extra:
        checks = (*checks, one_of(extra["choices"]))
    return field(default=default, metadata={"help": help, "role": role, "output": output, "checks": checks,
                                            "added_in": added_in, **extra})


def _term_weight(default: float, help: str, *, added_in: str | None = None) -> Any:
    """The weight λ of one of the paper's loss terms, with its own --lambda-* option: a finite
    number, 0 or more. A term added later needs no field: its weight is given by name with
    --term-weight NAME=W (the `term_weight` field), and it is off until then."""
    return _opt(default, help, role=TERM_WEIGHT, checks=(finite(), non_negative()), added_in=added_in)


@dataclass(frozen=True)
class StyleConfig:
    # --- the method (CLIPstyler defaults) ---
    size: int = _opt(512, "Long side of the working image in pixels; the aspect ratio is kept.", role="method",
                     checks=(*AT_LEAST_ONE, at_most(MAX_SIZE, "{option} {value} is absurd (the limit is "
                                                    f"{MAX_SIZE} pixels on the long side)")))
    steps: int = _opt(200, "Optimisation steps.", role="method", checks=AT_LEAST_ONE)
    lr: float = _opt(5e-4, "Adam learning rate.", role="method", checks=_POSITIVE)
    lr_decay_every: int = _opt(100, "Multiply the learning rate by --lr-decay-factor every this many steps.",
                               role="method", checks=AT_LEAST_ONE)
    lr_decay_factor: float = _opt(0.5, "Learning-rate decay factor.", role="method",
                                   checks=_POSITIVE)
    crops: int = _opt(64, "Random crops per step for the patch loss.", role="method",
                    checks=AT_LEAST_ONE)
    crop_size: int = _opt(128, "Side of each random crop in pixels.", role="method",
                        checks=AT_LEAST_ONE)
    distortion: float = _opt(0.5, "Perspective distortion scale of each crop (0 disables the warp).",
                             role="method", checks=(finite(), in_range(0, 1)))
    threshold: float | None = _opt(None, "Patch-loss rejection threshold τ for every backbone: crop losses "
                                         "below it count as 0 (default: the backbone's calibrated value, "
                                         "0.7 for CLIP ViT-B/32).", role="method",
                                 checks=(optional(in_range(-1, 3, note="a directional loss lies in [0, 2]")),))
    source_text: str = _opt("a Photo", "Text describing the content image's domain.", role="method")
    templates: str = _opt("auto", "Prompt templates averaged per text: imagenet (CLIPstyler's 79), imagenet80 "
                                  "(CLIP's 80), simple, none; auto: the backbone's default.", role="method",
                          choices=TEMPLATE_CHOICES)
    lambda_patch: float = _term_weight(9000.0, "Weight of the patch directional CLIP loss.")
    lambda_dir: float = _term_weight(500.0, "Weight of the global directional CLIP loss.")
    lambda_content: float = _term_weight(150.0, "Weight of the VGG19 content loss.")
    lambda_tv: float = _term_weight(2e-3, "Weight of the total-variation loss.")
    term_weight: tuple[str, ...] = _opt((), "Weight of a loss term that has no --lambda-* option of its own, "
                                            "NAME=W (e.g. brightness=0.5); repeatable. Such terms are off "
                                            "(weight 0) unless given here.", role="method", multiple=True,
                                        metavar="NAME=W", checks=(TERM_WEIGHTS,), added_in="0.2")
    unet_width: int = _opt(16, "Base channel width of the U-Net.", role="method", checks=AT_LEAST_ONE)
    contrast: bool = _opt(False, "Apply CLIPstyler's contrast 1.5 + min-max stretch to the saved image.",
                          role="method")
    seed: int = _opt(0, "Random seed (U-Net init and crops); recorded in every output.", role="method",
                     checks=(Rule("in [0, 2**63)", lambda v: 0 <= v < 2**63),))
    preset: str = _opt(DEFAULT_PRESET, "Named settings: default (the paper's), fast (100 steps, lr decay at 50, "
                                       "32 crops) or quality (128 crops). Options given explicitly override it.",
                       role="method", choices=PRESET_NAMES)
    early_stop: bool = _opt(False, "End the run when the total loss stops improving: when its moving average "
                                   "(beta 0.9) improved by less than --early-stop-threshold (relative) over the "
                                   "last --early-stop-patience steps, never before twice the patience.",
                            role="method")
    early_stop_patience: int = _opt(20, "Steps over which --early-stop measures the improvement.", role="method",
                                    checks=AT_LEAST_ONE)
    early_stop_threshold: float = _opt(1e-3, "Relative improvement below which --early-stop ends the run.",
                                       role="method", checks=(finite(), in_range(0, 1, upper_open=True,
                                                                                  note="a relative improvement")))

    # --- creative control (off by default: the paper's method) ---
    fusion: str = _opt("directions", "How a multi-style prompt 'A:0.7 | B:0.3' is combined: directions (one "
                                     "direction from the weighted text embeddings) or losses (a weighted sum of "
                                     "per-style losses).", role="style", choices=FUSION_MODES)
    style_image: tuple[str, ...] = _opt((), "Style image FILE[:WEIGHT] to guide with, instead of or with the text; "
                                            "repeatable.", role="style", multiple=True, metavar="FILE[:W]")
    style_strength: float | None = _opt(None, "One knob in [0, 1] for the content/style balance: the content "
                                              "weight is multiplied by 8^(1 - 2S) (0.5 keeps it; 1 is the most "
                                              "stylised).", role="style",
                                      checks=(optional(in_range(0, 1)),))
    keep_colors: bool = _opt(False, "Keep the photo's colours: only the stylised luminance (YCbCr Y) is used.",
                             role="style")
    output_size: str | None = _opt(None, "Render the saved image at another size: 'full' (the input's "
                                               "size) or N pixels on the long side (tiled when large). Default: "
                                               "the working size.", role="style",
                                         checks=(optional(OUTPUT_SIZE),), numeric_text=True)
    animation: str | None = _opt(None, "Also write the optimisation as an animation: a file (.gif, .webp, .mp4), "
                                       "or just gif/webp/mp4 for <output stem>.<ext> (mp4 needs the video "
                                       "extra).", role="style", output=False,
                                checks=(optional(ANIMATION),))

    # --- backbones and weights ---
    backbone: tuple[str, ...] = _opt((), "Vision-language backbone SPEC; repeat for a weighted ensemble. SPEC is "
                                         "MODEL/TAG, hf-hub:ORG/NAME or local-dir:FOLDER, then optional :WEIGHT, "
                                         ":tau=T, :templates=SET, :file=WEIGHTS, :tokenizer=FOLDER (e.g. "
                                         "ViT-B-16-SigLIP/webli:0.5). Default: the --clip-* options, i.e. "
                                         f"{DEFAULT_BACKBONE}.", role="weights", multiple=True)
    clip_model: str = _opt("ViT-B-32-quickgelu", "open_clip architecture name.", role="weights",
                           part_of_backbone=True)
    clip_pretrained: str = _opt("openai", "open_clip pretrained tag.", role="weights", part_of_backbone=True)
    clip_checkpoint: Path | None = _opt(None, "Local CLIP weights file (.safetensors, .bin, .pt); skips the cache "
                                              "and download.", role="weights", output="file", path=True,
                                        part_of_backbone=True)
    clip_model_config: tuple[Path, ...] = _opt((), "JSON architecture file to register with open_clip (the model "
                                                   "is named after the file); repeatable.", role="weights",
                                                output="file", path=True, multiple=True)
    vgg_checkpoint: Path | None = _opt(None, "Local VGG19 weights file (torchvision layout); skips the cache and "
                                             "download.", role="weights", output="file", path=True)
    cache_dir: Path | None = _opt(None, "Extra weights cache folder (searched first; downloads go there).",
                                  role="weights", output=False, path=True)
    portable_metadata: bool = _opt(False, "Record inputs and weights by file name and sha256 only, also in the "
                                          "sidecar (embedded metadata never holds absolute paths).",
                                   role="runtime", output=False)
    offline: bool = _opt(False, "Never download; use only local files and caches (also CLIPOPT_OFFLINE=1).",
                         role="weights", output=False)

    # --- runtime ---
    device: str = _opt("auto", f"Device: {DEVICES}.", role="runtime", output=False, loads_models=True)
    precision: str = _opt("auto", "Autocast precision: auto picks fp16/bf16 on CUDA, bf16 on CPUs with "
                                  "native bf16, else fp32.", role="runtime", choices=PRECISIONS)
    save_every: int = _opt(0, "Save a numbered frame every N steps into a folder next to the output "
                              "(0: off).", role="runtime", output=False,
                      checks=(non_negative("0 (off) or positive"),))
    compile: str = _opt("off", "torch.compile each step's U-Net and losses: off, default, or reduce-overhead "
                               "(CUDA graphs, CUDA only). Where compiling fails the run continues uncompiled "
                               "and says so.", role="runtime", output=False, choices=COMPILE_MODES)
    bf16_weights: bool = _opt(False, "Keep the frozen backbones' layer weights in bf16 (bf16 precision only): "
                                     "autocast no longer casts them every step; results are unchanged.",
                              role="runtime", output=False, loads_models=True)
    explicit_fields: InitVar[Collection[str] | None] = None  # the fields given explicitly; see presets.py
    # Set per instance by __post_init__ (not fields: they never reach the CLI, TOML or the settings).
    _explicit_fields: ClassVar[frozenset[str]]
    _preset_applied: ClassVar[dict[str, Any]]

    def __post_init__(self, explicit_fields: Collection[str] | None) -> None:
        for f in dataclasses.fields(self):  # the declared types: tuples for repeatable fields, paths as Path
            value = getattr(self, f.name)
            if f.metadata.get("multiple"):  # StyleConfig(backbone="SPEC") for one item; lists as tuples
                items = (value,) if isinstance(value, (str, Path)) else tuple(value or ())
                value = tuple(Path(item) for item in items) if f.metadata.get("path") else items
            elif f.metadata.get("path") and value is not None:
                value = Path(value)
            object.__setattr__(self, f.name, value)
        check_field("preset", self.preset, self.field_meta("preset"))
        self._apply_preset(explicit_fields)
        for f in dataclasses.fields(self):
            check_field(f.name, getattr(self, f.name), f.metadata)
        if self.output_size is not None:  # 'full' or the digits of a long side, whatever was given
            object.__setattr__(self, "output_size", output_size_text(self.output_size))
        # Rules across fields, checked before any weights load:
        self.backbone_specs()  # the --clip-* options and --backbone both naming a backbone; a spec twice
        self.style_images()  # a missing style image or a bad weight

    def _apply_preset(self, explicit_fields: Collection[str] | None) -> None:
        """The one place presets are resolved (rule: see presets.py). Without `explicit_fields`,
        the fields whose value differs from their default count as given."""
        defaults = _field_defaults()
        current = {name: getattr(self, name) for name in defaults}
        explicit = frozenset(name for name in defaults if current[name] != defaults[name]) \
            if explicit_fields is None else frozenset(explicit_fields)
        applied = preset_values(self.preset, current, defaults, explicit)
        for name, value in applied.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_explicit_fields", explicit)
        object.__setattr__(self, "_preset_applied", applied)

    @property
    def preset_applied(self) -> dict[str, Any]:
        """The values the preset set (the fields it did not set keep what was given)."""
        return dict(self._preset_applied)

    def content_weight_scale(self) -> float:
        """The factor --style-strength S puts on the content weight: 8^(1 - 2S), 1 when unset.

        Example:
            >>> StyleConfig(style_strength=1.0).content_weight_scale()
            0.125
        """
        return 1.0 if self.style_strength is None else CONTENT_SCALE_BASE ** (1.0 - 2.0 * self.style_strength)

    def named_term_weights(self) -> dict[str, float]:
        """The --term-weight values by term name (terms without a `lambda_*` field of their own).

        Example:
            >>> StyleConfig(term_weight=("brightness=0.5",)).named_term_weights()
            {'brightness': 0.5}
        """
        return parse_term_weights(self.term_weight)

    def style_images(self) -> list[StyleImage]:
        return [StyleImage.parse(text) for text in self.style_image]

    def files_read(self) -> list[Path]:
        """Every file besides the content image that a run reads (never to be overwritten)."""
        specs = self.backbone_specs()
        files = [self.vgg_checkpoint, *self.clip_model_config, *(s.file for s in specs),
                 *(image.path for image in self.style_images())]
        return [Path(f) for f in files if f is not None]

    def frame_interval(self) -> int:
        """Steps between frames for --save-every and --animation (0: none)."""
        if self.save_every:
            return self.save_every
        return max(1, self.steps // ANIMATION_FRAMES) if self.animation else 0

    # --- backbones ---
    def backbone_specs(self) -> list[BackboneSpec]:
        """The ensemble's members: --backbone specs, or one member from the --clip-* options."""
        legacy = BackboneSpec(self.clip_model, self.clip_pretrained,
                              file=Path(self.clip_checkpoint).expanduser() if self.clip_checkpoint else None)
        if not self.backbone:
            return [legacy]
        defaults = StyleConfig.__dataclass_fields__
        changed = [name for name in LEGACY_BACKBONE_FIELDS if getattr(self, name) != defaults[name].default]
        if changed:
            raise ConfigError(f"--backbone and --{changed[0].replace('_', '-')} both name a backbone; "
                              "use --backbone MODEL:file=PATH instead")
        specs = [BackboneSpec.parse(text) for text in self.backbone]
        if len({str(s) for s in specs}) != len(specs):
            raise ConfigError("the same --backbone is given twice")
        return specs

    def load_context(self) -> LoadContext:
        return LoadContext(self.cache_dir, offline_requested(self.offline), self.clip_model_config)

    # --- introspection used by the CLI, TOML loading and provenance ---
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def field_meta(cls, name: str) -> Mapping[str, Any]:
        """The metadata `name` declares (help, role, output, checks, ...).

        Example:
            >>> StyleConfig.field_meta("steps")["role"]
            'method'
        """
        return _field_metadata(cls)[name]

    def replace(self, **changes: Any) -> StyleConfig:
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise ConfigError(unknown_setting_message(unknown[0], self.field_names()))
        # Fields the preset set go back to their defaults, so that a new preset (or the same one) sets them again.
        values = {name: getattr(self, name) for name in self.field_names()}
        defaults = _field_defaults()
        values.update({name: defaults[name] for name in self._preset_applied if name not in changes})
        return StyleConfig(**{**values, **changes}, explicit_fields=self._explicit_fields | set(changes))

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, tuple):
                return [plain(v) for v in value]
            return str(value) if isinstance(value, Path) else value

        return {k: plain(v) for k, v in dataclasses.asdict(self).items()}

    def output_settings(self) -> dict[str, Any]:
        """The settings that can change the output image (used for provenance and resume checks).
        Files count by name and SHA-256, so other weights change the settings but moving them does not."""
        values = self.to_dict()
        settings: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.metadata.get("part_of_backbone"):
                continue  # part of "backbone": --clip-model X --clip-checkpoint F is --backbone X:file=F
            if f.metadata["added_in"] and getattr(self, f.name) == f.default:
                continue  # added later: at its default, the hash stays what earlier versions made
            if f.name == "preset":
                continue  # its values are: --preset fast is the options it stands for
            if f.name == "backbone":
                settings[f.name] = [_spec_identity(spec) for spec in self.backbone_specs()]
            elif f.name == "style_image":
                settings[f.name] = [[_file_identity(image.path), image.weight] for image in self.style_images()]
            elif f.metadata["output"] == "file" and f.metadata.get("multiple"):
                settings[f.name] = [_file_identity(path) for path in getattr(self, f.name)]
            elif f.metadata["output"] == "file":
                settings[f.name] = _file_identity(getattr(self, f.name))
            elif f.metadata["output"]:
                settings[f.name] = values[f.name]
        return settings

    def settings_hash(self, *extra: str) -> str:
        """A short stable hash of `output_settings()` plus `extra` strings (prompt, input digest...)."""
        blob = json.dumps([self.output_settings(), list(extra)], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@functools.cache
def _field_defaults() -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(StyleConfig)}


def _field_metadata(cls: type[StyleConfig] = StyleConfig) -> dict[str, Mapping[str, Any]]:
    return {f.name: f.metadata for f in dataclasses.fields(cls)}


def _names_where(test: Any, cls: type[StyleConfig] = StyleConfig) -> tuple[str, ...]:
    return tuple(name for name, meta in _field_metadata(cls).items() if test(meta))


# The --clip-* options: together one backbone, the one --backbone stands for when not given.
LEGACY_BACKBONE_FIELDS = _names_where(lambda meta: meta.get("part_of_backbone"))


def model_fields() -> tuple[str, ...]:
    """The fields that decide which models are loaded (the weights role, the device, and how the
    frozen weights are kept): configurations equal in these can share one loaded Stylizer.

    Example:
        >>> "device" in model_fields() and "steps" not in model_fields()
        True
    """
    return _names_where(lambda meta: meta["role"] == "weights" or meta.get("loads_models"))


def term_weight_fields(cls: type[StyleConfig] = StyleConfig) -> tuple[str, ...]:
    """The fields of `cls` that weight a loss term (role "term weight").

    Example:
        >>> term_weight_fields()[:2]
        ('lambda_patch', 'lambda_dir')
    """
    return _names_where(lambda meta: meta["role"] == TERM_WEIGHT, cls)


CONTENT_SCALE_BASE = 8.0  # --style-strength 0 / 1 multiply the content weight by 8 / 1/8
ANIMATION_FRAMES = 50  # frames of an --animation when --save-every is not given


def _spec_identity(spec: BackboneSpec) -> dict[str, Any]:
    identity = spec.identity()
    for key in ("file", "tokenizer"):
        path = getattr(spec, key)
        if path is not None and Path(path).is_file():
            identity[key] = _file_identity(path)
    return identity


def _file_identity(path: Path | None) -> str | None:
    """A file as a setting: its name and the SHA-256 of its bytes (cached across runs, see
    filehash), so other weights change the settings hash but moving a file does not."""
    if path is None:
        return None
    try:
        return f"{Path(path).name} (sha256 {file_sha256(Path(path))})"
    except OSError:  # the run itself reports the missing file; no recorded hash can match this
        return f"{Path(path).name} (unreadable)"


def unknown_setting_message(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown setting {key!r}{hint}"
