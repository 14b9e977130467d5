"""Backbone specs: one string names a vision-language backbone completely.

Grammar (parsed before any weights or heavy imports are touched)::

    SPEC    := SOURCE [":" OPTION]...
    SOURCE  := NAME ["/" TAG]            open_clip architecture and pretrained tag
             | "hf-hub:" ORG "/" REPO    an open_clip model hosted on the Hugging Face hub
             | "local-dir:" FOLDER       a folder with open_clip_config.json and the weights
             | FAMILY                    a registered backbone family (e.g. a test toy)
    OPTION  := NUMBER                    the member's weight in an ensemble (default 1)
             | "weight=" NUMBER | "tau=" NUMBER (patch threshold) | "templates=" SET
             | "file=" PATH               local weights for NAME (skips cache and download)
             | "tokenizer=" FOLDER        local Hugging Face tokenizer folder

Examples: ``ViT-B-32-quickgelu/openai``, ``ViT-B-16-SigLIP/webli:0.5:tau=0.75``,
``ViT-B-16-SigLIP:file=weights.safetensors:tokenizer=tok/``, ``hf-hub:timm/ViT-B-16-SigLIP``.
A ``file=``/``tokenizer=`` path that itself contains ``:`` must be the last option.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.templates import TEMPLATE_SETS

__all__ = ["DEFAULT_BACKBONE", "HF_HUB_PREFIX", "LOCAL_DIR_PREFIX", "BackboneSpec", "LoadContext"]

DEFAULT_BACKBONE = "ViT-B-32-quickgelu/openai"
HF_HUB_PREFIX = "hf-hub:"
LOCAL_DIR_PREFIX = "local-dir:"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_PATH_KEYS = ("file", "tokenizer")
_NUMBER_KEYS = ("weight", "tau")
_TEMPLATE_KEY = "templates"


@dataclass(frozen=True)
class BackboneSpec:
    """A parsed backbone spec. `source` is the open_clip name (with any hf-hub:/local-dir: prefix)."""

    source: str
    pretrained: str | None = None
    file: Path | None = None
    tokenizer: Path | None = None
    weight: float = 1.0
    tau: float | None = None
    templates: str | None = None

    @property
    def schema(self) -> str | None:
        for prefix in (HF_HUB_PREFIX, LOCAL_DIR_PREFIX):
            if self.source.startswith(prefix):
                return prefix[:-1]
        return None

    @property
    def model(self) -> str:
        """The name without any schema prefix."""
        schema = self.schema
        return self.source[len(schema) + 1:] if schema else self.source

    @classmethod
    def parse(cls, text: str) -> BackboneSpec:
        original = text
        text = text.strip()
        if not text:
            raise ConfigError("empty backbone spec")
        prefix = next((p for p in (HF_HUB_PREFIX, LOCAL_DIR_PREFIX) if text.startswith(p)), "")
        head, *options = text[len(prefix):].split(":")
        values: dict[str, Any] = {}
        if prefix == LOCAL_DIR_PREFIX:
            # A folder path may hold ':'; options follow only where a ':key=' or ':NUMBER' starts.
            head, options = _split_path_options(text[len(prefix):])
        values.update(_parse_source(prefix, head, original))
        for index, option in enumerate(options):
            if option.split("=", 1)[0] in _PATH_KEYS and "=" in option:
                key, value = option.split("=", 1)
                rest = options[index + 1:]
                if rest and not all(_looks_like_option(o) for o in rest):
                    value = ":".join([value, *rest])  # a path with ':' in it, as the last option
                    options = options[: index + 1]
                _set_once(values, key, Path(value).expanduser() if value else _bad(original, f"{key}= is empty"),
                          original)
                if len(options) == index + 1:
                    break
                continue
            _parse_option(values, option, original)
        spec = cls(**values)
        spec.validate(original)
        return spec

    def validate(self, original: str | None = None) -> None:
        where = original if original is not None else str(self)
        if not math.isfinite(self.weight) or self.weight == 0:
            _bad(where, f"weight must be a finite non-zero number, got {self.weight}")
        if self.tau is not None and not (math.isfinite(self.tau) and -1.0 <= self.tau <= 3.0):
            _bad(where, f"tau must be in [-1, 3] (a directional loss lies in [0, 2]), got {self.tau}")
        if self.schema and (self.pretrained or self.file):
            _bad(where, f"{self.schema}: sources bring their own weights; drop the /TAG or file= part")

    def with_defaults(self, **changes: Any) -> BackboneSpec:
        return replace(self, **changes)

    def __str__(self) -> str:
        text = self.source + (f"/{self.pretrained}" if self.pretrained else "")
        if self.weight != 1.0:
            text += f":{self.weight:g}"
        if self.tau is not None:
            text += f":tau={self.tau:g}"
        if self.templates is not None:
            text += f":templates={self.templates}"
        for key in _PATH_KEYS:
            if getattr(self, key) is not None:
                text += f":{key}={getattr(self, key)}"
        return text

    def identity(self) -> dict[str, Any]:
        """What decides the embeddings: for the settings hash and provenance (files by name only)."""
        return {"source": self.source, "pretrained": self.pretrained, "weight": self.weight, "tau": self.tau,
                "templates": self.templates,
                "file": self.file.name if self.file else None,
                "tokenizer": self.tokenizer.name if self.tokenizer else None}


@dataclass(frozen=True)
class LoadContext:
    """Where backbones may come from: an extra cache folder, offline mode, JSON architectures to
    register with open_clip first; and how the command at hand takes a local weights file, for
    messages (`clipopt eval` has no --clip-checkpoint: it takes ``--scorer MODEL/TAG:file=FILE``)."""

    cache_dir: Path | None = None
    offline: bool = False
    model_configs: tuple[Path, ...] = ()
    weights_option: str = "--clip-checkpoint FILE"


_TRUE = {"1", "true", "yes", "on"}


def offline_requested(flag: bool) -> bool:
    """Whether downloads are off: the --offline flag, or CLIPOPT_OFFLINE / HF_HUB_OFFLINE set true.

    Example:
        >>> offline_requested(True)
        True
    """
    env = (os.environ.get("CLIPOPT_OFFLINE", ""), os.environ.get("HF_HUB_OFFLINE", ""))
    return flag or any(v.strip().lower() in _TRUE for v in env)


def _bad(spec: str, why: str) -> Any:
    raise ConfigError(f"backbone spec {spec!r}: {why} (see --help for the SPEC syntax)")


def _looks_like_option(option: str) -> bool:
    key = option.split("=", 1)[0]
    return _is_number(option) or ("=" in option and key in (*_PATH_KEYS, *_NUMBER_KEYS, _TEMPLATE_KEY))


def _split_path_options(text: str) -> tuple[str, list[str]]:
    parts = text.split(":")
    cut = len(parts)
    while cut > 1 and _looks_like_option(parts[cut - 1]):
        cut -= 1
    return ":".join(parts[:cut]), parts[cut:]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_source(prefix: str, head: str, original: str) -> dict[str, Any]:
    if prefix == LOCAL_DIR_PREFIX:
        if not head:
            _bad(original, "local-dir: needs a folder")
        return {"source": prefix + str(Path(head).expanduser())}
    if prefix == HF_HUB_PREFIX:
        if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", head):
            _bad(original, "hf-hub: needs ORG/NAME")
        return {"source": prefix + head}
    name, _, tag = head.partition("/")
    if not _NAME.fullmatch(name):
        _bad(original, f"{name!r} is not a model name")
    if "/" in head and not _TAG.fullmatch(tag):
        _bad(original, f"{tag!r} is not a pretrained tag")
    return {"source": name, "pretrained": tag or None}


def _set_once(values: dict[str, Any], key: str, value: Any, original: str) -> None:
    if key in values:
        _bad(original, f"{key} given twice")
    values[key] = value


def _parse_option(values: dict[str, Any], option: str, original: str) -> None:
    if _is_number(option):
        _set_once(values, "weight", float(option), original)
        return
    key, eq, value = option.partition("=")
    if not eq:
        _bad(original, f"option {option!r} is neither a weight nor key=value")
    if key in _NUMBER_KEYS:
        if not _is_number(value):
            _bad(original, f"{key}={value!r} is not a number")
        _set_once(values, key, float(value), original)
    elif key == _TEMPLATE_KEY:
        if value not in TEMPLATE_SETS:
            _bad(original, f"templates={value!r}: use one of {', '.join(TEMPLATE_SETS)}")
        _set_once(values, key, value, original)
    else:
        _bad(original, f"unknown option {key!r} (known: weight, tau, templates, file, tokenizer)")
