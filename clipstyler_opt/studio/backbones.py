"""The backbones a studio offers, and the loaded `Stylizer` it keeps.

The weights options the studio starts with name the backbones it offers first (the first is the
default): each `--backbone SPEC`, or the one the `--clip-*` options name. The backbones of
`clipopt weights list` follow, those in the caches first, with their sizes (offline, only the
cached ones). A browser names a backbone by its offered name only, never by a spec or a path.

One `Stylizer` is kept loaded per device and reused while the fields that decide the models
(`model_fields()`: the weights, the device, the weight storage) stay the same.

Example:
    >>> from clipstyler_opt.core.config import StyleConfig
    >>> offers = offered_backbones(StyleConfig(backbone=("ViT-B-16/openai",)), catalog=False)
    >>> [(offer.name, offer.fields) for offer in offers]
    [('ViT-B-16/openai', {'backbone': ('ViT-B-16/openai',)})]
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipstyler_opt.core.backbone_spec import BackboneSpec, offline_requested
from clipstyler_opt.core.config import LEGACY_BACKBONE_FIELDS, StyleConfig, model_fields

if TYPE_CHECKING:
    from clipstyler_opt.run.engine import Stylizer

__all__ = ["LoadedBackbones", "Offer", "base_values", "offered_backbones"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Offer:
    """One backbone the studio offers: its name (what settings and the picker use), the StyleConfig
    fields that select it, its size in words, and whether its weights are at hand (a local file or
    the caches; None: not known before loading)."""

    name: str
    fields: dict[str, Any]
    size: str = ""
    cached: bool | None = None
    configured: bool = True  # given when the studio started (not from the catalog)

    def describe(self) -> dict[str, Any]:
        """The offer as the API lists it."""
        return {"name": self.name, "size": self.size, "cached": self.cached, "configured": self.configured}

    def label(self) -> str:
        """The picker's label: name, size and whether it is cached."""
        notes = [self.size] if self.size else []
        if self.cached is False:
            notes.append("not cached")
        return f"{self.name} ({', '.join(notes)})" if notes else self.name


def _short_name(spec: BackboneSpec) -> str:
    return spec.source + (f"/{spec.pretrained}" if spec.pretrained else "")


def _file_size(path: Path | None) -> str:
    from clipstyler_opt.models.catalog import size_text

    try:
        return size_text(path.stat().st_size) if path is not None else ""
    except OSError:
        return ""


def _configured(base: StyleConfig) -> list[Offer]:
    if not base.backbone:
        spec = base.backbone_specs()[0]
        fields = {name: getattr(base, name) for name in LEGACY_BACKBONE_FIELDS}
        return [Offer(_short_name(spec), fields, _file_size(spec.file), True if spec.file else None)]
    offers = []
    for text in base.backbone:
        spec = BackboneSpec.parse(text)
        offers.append(Offer(_short_name(spec), {"backbone": (text,)}, _file_size(spec.file),
                            True if spec.file else None))
    return offers


def offered_backbones(base: StyleConfig, *, catalog: bool = True) -> list[Offer]:
    """The configured backbones, then (with `catalog`) those of `clipopt weights list`, cached ones
    first; names are unique (a configured backbone hides the catalog entry of the same name)."""
    offers = _configured(base)
    if not catalog:
        return offers
    from clipstyler_opt.models.catalog import CATALOG, cache_status, size_text

    taken = {offer.name for offer in offers}
    known = []
    for entry in CATALOG:
        if entry.role != "vision-language" or entry.name in taken:
            continue
        cached = cache_status(entry, base.cache_dir).path is not None
        if cached or not offline_requested(base.offline):
            known.append(Offer(entry.name, {"backbone": (entry.name,)}, "~" + size_text(entry.approx_download_bytes),
                               cached, configured=False))
    known.sort(key=lambda offer: not offer.cached)  # stable: the catalog's order within each group
    return offers + known


def base_values(base: StyleConfig) -> dict[str, Any]:
    """The server's settings every job starts from: the fields that decide the models (except the
    backbone itself, which the offer gives) and the precision, where not at their defaults."""
    defaults = StyleConfig()
    names = [name for name in (*model_fields(), "precision")
             if name != "backbone" and name not in LEGACY_BACKBONE_FIELDS]
    return {name: getattr(base, name) for name in names if getattr(base, name) != getattr(defaults, name)}


class LoadedBackbones:
    """The one `Stylizer` kept loaded per device, replaced when a job needs other models.

    `load` builds a Stylizer (injectable for tests); `loads` counts the loads.
    """

    def __init__(self, load: Callable[[StyleConfig], Stylizer] | None = None) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[tuple[Any, ...], Stylizer]] = {}
        self.loads = 0

    @staticmethod
    def key(config: StyleConfig) -> tuple[Any, ...]:
        """What must be equal for two configs to share a loaded Stylizer."""
        return tuple(getattr(config, name) for name in model_fields())

    def stylizer(self, config: StyleConfig) -> Stylizer:
        """The Stylizer for `config`'s device: the kept one when its model fields match, else a new
        one (the old one is dropped first, so two never sit in memory together)."""
        key = self.key(config)
        with self._lock:
            kept = self._kept.get(config.device)
            if kept is not None and kept[0] == key:
                return kept[1]
            self._kept.pop(config.device, None)
            del kept
            gc.collect()
            if self._load is None:
                from clipstyler_opt.run.engine import Stylizer

                stylizer = Stylizer(config)
            else:
                stylizer = self._load(config)
            self.loads += 1
            self._kept[config.device] = (key, stylizer)
            return stylizer

    def loaded(self) -> list[str]:
        """The devices with a kept Stylizer."""
        with self._lock:
            return list(self._kept)
