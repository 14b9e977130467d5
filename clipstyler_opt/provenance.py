"""The provenance record embedded in every output: what was asked, what ran, and on what."""

from __future__ import annotations

import datetime as _dt
import platform
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import Result, Stylizer
    from .imageio import LoadedImage

__all__ = ["provenance", "package_versions"]


def package_versions() -> dict[str, str]:
    versions = {}
    for name in ("clipstyler_opt", "torch", "torchvision", "open_clip_torch", "kornia", "pillow"):
        try:
            versions[name] = _metadata.version(name)
        except _metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["python"] = platform.python_version()
    return versions


def provenance(result: "Result", loaded: "LoadedImage", stylizer: "Stylizer") -> dict[str, Any]:
    config = result.config
    return {
        "tool": "clipstyler_opt",
        "prompt": result.prompt,
        "seed": result.seed,
        "input": {"source": loaded.source, "sha256": loaded.sha256, "size": list(loaded.rgb.size)},
        "output_size": list(result.image.size),
        "settings": config.output_settings(),
        "settings_hash": config.settings_hash(result.prompt, loaded.sha256 or ""),
        "device": result.device,
        "precision": result.precision,
        "requested_precision": config.precision,
        "backbone": dict(stylizer.backbone.provenance),
        "content_network": dict(stylizer.vgg_provenance),
        "losses": result.losses,
        "skipped_steps": result.skipped_steps,
        "warnings": result.warnings,
        "timings": result.timings,
        "versions": package_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
