"""A studio job's settings: the JSON the page or the REST API sends, checked into a `StyleConfig`.

The settings name the prompt, the backbone (one of those the server offers), any `StyleConfig`
field that names no file on the server, and the weights of uploaded style images. A field that
names a file on the server (a checkpoint, a model config, a style image path, the cache, the
animation) is refused, and so are the settings the server fixes at start (device, offline, ...):
a browser never chooses a path on the server's disk. Every other value goes through the same
conversion and validation as the command line, so a bad value gets the CLI's one-line message.

Example:
    >>> settings = parse_settings('{"prompt": "oil:0.7 | ink:0.3", "steps": 2}', ["A/b"])
    >>> settings.prompt, settings.backbone, settings.values
    ('oil:0.7 | ink:0.3', 'A/b', {'steps': 2})
    >>> try:
    ...     parse_settings('{"prompt": "oil", "vgg_checkpoint": "/etc/passwd"}', ["A/b"])
    ... except SettingRefused as refused:
    ...     print(refused)
    vgg_checkpoint names a file on the server; the studio never takes a path (style images come as uploads)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clipstyler_opt.core.coercion import typed_value
from clipstyler_opt.core.config import StyleConfig, unknown_setting_message
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.styles import StylePart, StyleSpec

__all__ = ["FILE_FIELDS", "SERVER_FIELDS", "STUDIO_KEYS", "JobSettings", "SettingRefused", "allowed_fields",
           "build_prompt", "parse_settings"]

# Fields whose value is, or may be, a file on the server.
FILE_FIELDS = frozenset({name for name in StyleConfig.field_names() if StyleConfig.field_meta(name).get("path")}
                        | {"style_image", "animation"})
# Fixed when the server starts: which models load and where (the backbone comes by name instead),
# and what writes files beside the output.
SERVER_FIELDS = frozenset({"backbone", "clip_model", "clip_pretrained", "device", "offline", "compile",
                           "bf16_weights", "save_every", "portable_metadata"}) - FILE_FIELDS
# Keys of the settings that are not StyleConfig fields.
STUDIO_KEYS = ("prompt", "backbone", "style_weights", "preview_every")
MAX_SETTINGS_BYTES = 64 * 1024
MAX_PREVIEW_EVERY = 10_000


class SettingRefused(ConfigError):
    """A setting the studio never takes from a browser (a path on the server, or the server's own)."""


def allowed_fields() -> tuple[str, ...]:
    """The StyleConfig fields a job's settings may give.

    Example:
        >>> "steps" in allowed_fields(), "clip_checkpoint" in allowed_fields()
        (True, False)
    """
    return tuple(name for name in StyleConfig.field_names() if name not in FILE_FIELDS | SERVER_FIELDS)


@dataclass(frozen=True)
class JobSettings:
    """A job's checked settings: the prompt, the offered backbone's name, the StyleConfig values
    given (converted to the fields' types), the uploaded style images' weights, and the preview
    interval in steps (0: none; None: the studio's default)."""

    prompt: str
    backbone: str
    values: dict[str, Any] = field(default_factory=dict)
    style_weights: tuple[float, ...] = ()
    preview_every: int | None = None


def _refuse(name: str) -> None:
    if name in FILE_FIELDS:
        raise SettingRefused(f"{name} names a file on the server; the studio never takes a path "
                             "(style images come as uploads)")
    if name in SERVER_FIELDS:
        hint = " (name one of the offered backbones with 'backbone')" if name in ("clip_model", "clip_pretrained") \
            else ""
        raise SettingRefused(f"{name} is fixed when the studio starts{hint}")


def _preview_every(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PREVIEW_EVERY:
        raise ConfigError(f"preview_every must be an integer from 0 (no previews) to {MAX_PREVIEW_EVERY}, "
                          f"got {value!r}")
    return value


def _style_weights(value: Any) -> tuple[float, ...]:
    items = value if isinstance(value, list) else [value]
    weights = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item) or item == 0:
            raise ConfigError(f"style_weights: each weight must be a finite non-zero number, got {item!r}")
        weights.append(float(item))
    return tuple(weights)


def parse_settings(raw: str | bytes | Mapping[str, Any], offered: Sequence[str]) -> JobSettings:
    """Check a job's settings (a JSON object, or its text) against the StyleConfig fields and the
    offered backbones; `ConfigError` (or `SettingRefused`) with a one-line message otherwise.
    The values are checked together by building a `StyleConfig` from them.

    Example:
        >>> parse_settings({"prompt": "oil", "backbone": "C/d"}, ["A/b"])
        Traceback (most recent call last):
        ...
        clipstyler_opt.core.errors.ConfigError: backbone 'C/d' is not offered here; the studio offers: A/b
    """
    if isinstance(raw, Mapping):
        data: Any = dict(raw)
    else:
        if len(raw) > MAX_SETTINGS_BYTES:
            raise ConfigError(f"settings: larger than {MAX_SETTINGS_BYTES} bytes")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"settings: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError("settings: must be a JSON object")
    prompt = data.pop("prompt", None)
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError("settings: 'prompt' (a style spec, e.g. \"oil painting:0.7 | ink:0.3\") is required")
    StyleSpec.parse(prompt)
    backbone = data.pop("backbone", None)
    if backbone is None:
        backbone = offered[0]
    if not isinstance(backbone, str) or backbone not in offered:
        raise ConfigError(f"backbone {backbone!r} is not offered here; the studio offers: {', '.join(offered)}")
    style_weights = _style_weights(data.pop("style_weights")) if "style_weights" in data else ()
    preview_every = _preview_every(data.pop("preview_every")) if "preview_every" in data else None
    values: dict[str, Any] = {}
    known = StyleConfig.field_names()
    for name, value in data.items():
        if not isinstance(name, str) or name not in known:
            raise ConfigError(unknown_setting_message(str(name), (*allowed_fields(), *STUDIO_KEYS)))
        _refuse(name)
        values[name] = typed_value(name, value, label=name)
    StyleConfig(**values, explicit_fields=set(values))  # rules across fields, with the CLI's messages
    return JobSettings(prompt, backbone, values, style_weights, preview_every)


def build_prompt(rows: Sequence[tuple[str, float]]) -> str:
    """The style spec of the prompt builder's rows (text, weight), as the command line takes it;
    empty rows are left out.

    Example:
        >>> build_prompt([("starry night", 0.7), ("ukiyo-e: woodblock", 0.3), ("", 1.0)])
        'starry night:0.7 | ukiyo-e\\\\: woodblock:0.3'
    """
    parts = tuple(StylePart(text.strip(), float(weight)) for text, weight in rows if text.strip())
    return str(StyleSpec(parts))
