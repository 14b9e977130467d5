"""The provenance record embedded in every output: what was asked, what ran, and on what."""

from __future__ import annotations

import datetime as _dt
import platform
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backbones.ensemble import Member
    from .engine import Result
    from .imageio import LoadedImage

__all__ = ["provenance", "package_versions"]


def package_versions() -> dict[str, str]:
    versions = {}
    for name in ("clipstyler_opt", "torch", "torchvision", "open_clip_torch", "kornia", "pillow", "timm",
                 "transformers"):
        try:
            versions[name] = _metadata.version(name)
        except _metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["python"] = platform.python_version()
    return versions


def weights_record(path: str | None, origin: str | None) -> dict[str, Any]:
    """A weights file by path, name and sha256 (the hash identifies it wherever it is copied)."""
    from pathlib import Path

    from .filehash import file_sha256

    if path is None or not Path(path).is_file():
        return {"weights": path, "weights_origin": origin}
    return {"weights": path, "weights_name": Path(path).name, "weights_sha256": file_sha256(Path(path)),
            "weights_origin": origin}


def _sha(path: Any) -> dict[str, Any]:
    from pathlib import Path

    from .filehash import file_sha256

    return {"name": Path(path).name, "sha256": file_sha256(Path(path))}


def backbone_record(member: "Member", config: Any) -> dict[str, Any]:
    from .backbones.ensemble import member_settings

    record = {**member.backbone.provenance, "spec": str(member.spec), "weight": member.weight,
              **member_settings(member.spec, config)}
    if "weights" in record:
        record.update(weights_record(record["weights"], record.get("weights_origin")))
    return record


def absolute_config(config: Any) -> dict[str, Any]:
    """`config.to_dict()` with every file path made absolute, so the record works from any folder."""
    import os

    from .backbones.spec import BackboneSpec

    def absolute(path: Any) -> Any:
        return os.path.abspath(path) if path else path

    values = config.to_dict()
    for key in ("clip_checkpoint", "vgg_checkpoint", "cache_dir", "animation"):
        if key == "animation" and values.get(key) and "." not in os.path.basename(values[key]):
            continue  # a bare format, not a file
        values[key] = absolute(values.get(key))
    values["clip_model_config"] = [absolute(p) for p in values.get("clip_model_config") or []]
    specs = [BackboneSpec.parse(text) for text in values.get("backbone") or []]
    values["backbone"] = [str(spec.with_defaults(file=absolute(spec.file), tokenizer=absolute(spec.tokenizer)))
                          for spec in specs]
    values["style_image"] = [f"{absolute(image.path)}:{image.weight:g}" for image in config.style_images()]
    return values


def provenance(result: "Result", loaded: "LoadedImage", *, members: "list[Member]",
               content_network: dict[str, Any], objective: dict[str, Any], target: dict[str, Any],
               interrupted_at_step: int | None = None) -> dict[str, Any]:
    config = result.config
    record = {
        "tool": "clipstyler_opt",
        "prompt": result.prompt,
        "seed": result.seed,
        "input": {"source": loaded.source, "sha256": loaded.sha256, "size": list(loaded.rgb.size)},
        "output_size": list(result.image.size),
        "settings": config.output_settings(),
        "config": absolute_config(config),  # every option, paths absolute: what `run --from` starts from
        "settings_hash": config.settings_hash(result.prompt, loaded.sha256 or ""),
        "device": result.device,
        "precision": result.precision,
        "requested_precision": config.precision,
        "style": target,
        "style_images": [{"path": str(image.path), "weight": image.weight,
                          **_sha(image.path)} for image in config.style_images()],
        "backbones": [backbone_record(member, config) for member in members],
        "objective": objective,
        "content_network": {**content_network, **weights_record(content_network.get("weights"),
                                                                 content_network.get("weights_origin"))},
        "losses": result.losses,
        "history": result.history,
        "skipped_steps": result.skipped_steps,
        "warnings": result.warnings,
        "timings": result.timings,
        "versions": package_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if interrupted_at_step is not None:
        record["interrupted_at_step"] = interrupted_at_step
    return record
