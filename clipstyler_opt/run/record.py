"""The provenance record of every output: what was asked, what ran, and on what.

This module is the record's one writer (`provenance`) and its one reader (`read_record`): the
JSON sidecar first (it keeps full paths), else the copy embedded in the image."""

from __future__ import annotations

import datetime as _dt
import json
import platform
import warnings
from importlib import metadata as _metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, UnidentifiedImageError

from clipstyler_opt.core.errors import InputImageError
from clipstyler_opt.run.images import open_image
from clipstyler_opt.run.outputs import sidecar_path

if TYPE_CHECKING:
    from clipstyler_opt.method.ensemble import Member
    from clipstyler_opt.run.engine import Result
    from clipstyler_opt.run.images import LoadedImage

__all__ = ["RECORD_KEY", "package_versions", "provenance", "read_record"]


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

    from clipstyler_opt.core.digests import file_sha256

    if path is None or not Path(path).is_file():
        return {"weights": path, "weights_origin": origin}
    return {"weights": path, "weights_name": Path(path).name, "weights_sha256": file_sha256(Path(path)),
            "weights_origin": origin}


def _sha(path: Any) -> dict[str, Any]:
    from pathlib import Path

    from clipstyler_opt.core.digests import file_sha256

    return {"name": Path(path).name, "sha256": file_sha256(Path(path))}


def backbone_record(member: Member, config: Any) -> dict[str, Any]:
    from clipstyler_opt.method.ensemble import member_settings

    record = {**member.backbone.provenance, "spec": str(member.spec), "weight": member.weight,
              **member_settings(member.spec, config)}
    if "weights" in record:
        record.update(weights_record(record["weights"], record.get("weights_origin")))
    return record


def absolute_config(config: Any) -> dict[str, Any]:
    """`config.to_dict()` with every file path made absolute, so the record works from any folder."""
    import os

    from clipstyler_opt.core.backbone_spec import BackboneSpec

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


def provenance(result: Result, loaded: LoadedImage, *, members: list[Member],
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


RECORD_KEY = "clipstyler_opt"  # the PNG iTXt keyword; JPEG/WebP use EXIF ImageDescription
_IMAGE_DESCRIPTION = 0x010E


def read_record(path: Path) -> tuple[dict[str, Any], str]:
    """The provenance record of an output, preferring its JSON sidecar (which keeps full paths).

    Args:
        path: an output image, or its `.json` sidecar.

    Returns:
        The record and a description of where it was read from.

    Raises:
        InputImageError: no such file, unreadable or invalid metadata, or no record at all.
    """
    from clipstyler_opt.core.files import not_a_file

    reason = not_a_file(path)  # a FIFO is named as one, not as missing
    if reason is not None:
        raise InputImageError(f"{path}: {reason}")
    sidecar = path if path.suffix.lower() == ".json" else sidecar_path(path)
    if sidecar.is_file():
        return _parse(_read_text(sidecar), sidecar), f"sidecar {sidecar}"
    blob = _embedded(path)
    if blob is None:
        raise InputImageError(f"{path}: no clipstyler_opt metadata (no {sidecar.name} sidecar and nothing "
                              f"embedded in the image)")
    where = "PNG iTXt chunk" if path.suffix.lower() == ".png" else "EXIF ImageDescription"
    return _parse(blob, path), f"{where} of {path} (file paths shortened to names)"


def _read_text(path: Path) -> str:
    from clipstyler_opt.core.files import read_text

    return read_text(path, limit=256 << 20, error=InputImageError)  # a FIFO is named, never waited on


def _embedded(path: Path) -> str | None:
    """The JSON blob inside a PNG (iTXt) or JPEG/WebP (EXIF); only headers are read, never pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open_image(path) as image:  # the file gate and the format allow-list
                value = (image.info.get(RECORD_KEY) if image.format == "PNG"
                         else image.getexif().get(_IMAGE_DESCRIPTION))
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise InputImageError(f"{path}: not an image file and no {sidecar_path(path).name} sidecar") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputImageError(f"{path}: cannot read its metadata ({str(exc).splitlines()[0]})") from None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) and value.strip() else None


def _parse(text: str, where: Path) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputImageError(f"{where}: the clipstyler_opt metadata is not valid JSON ({exc.msg}, "
                              f"line {exc.lineno})") from None
    if not isinstance(record, dict) or not record:
        raise InputImageError(f"{where}: holds no clipstyler_opt record")
    return record
