"""The provenance record of every output: what was asked, what ran, and on what.

This module is the record's one writer (`provenance`) and its one reader (`read_record`): the
JSON sidecar first (it keeps full paths), else the copy embedded in the image."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import warnings
from importlib import metadata as _metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, UnidentifiedImageError

from clipstyler_opt.core.errors import InputImageError
from clipstyler_opt.core.naming import printable
from clipstyler_opt.run.images import open_image
from clipstyler_opt.run.outputs import sidecar_path
from clipstyler_opt.run.record_shape import record_shape_problem

if TYPE_CHECKING:
    from clipstyler_opt.core.config import StyleConfig
    from clipstyler_opt.method.ensemble import Member
    from clipstyler_opt.run.images import LoadedImage

__all__ = ["RECORD_KEY", "package_versions", "provenance", "read_record", "recorded_file", "recorded_input",
           "recorded_settings_hash"]


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


def provenance(loaded: LoadedImage, config: StyleConfig, *, prompt: str, image_size: tuple[int, int], device: str,
               precision: str, losses: dict[str, float], history: list[dict[str, float]], skipped_steps: list[int],
               run_warnings: list[str], timings: dict[str, float], members: list[Member],
               content_network: dict[str, Any], objective: dict[str, Any], target: dict[str, Any],
               interrupted_at_step: int | None = None, render_interrupted: bool = False) -> dict[str, Any]:
    """The record of one run, written once before its `Result` is built (the `Result` carries it
    as `metadata`). The content image and style images are recorded by absolute path, so the
    sidecar works from any folder; embedded copies are shortened to names when saved
    (`core.portable`). `render_interrupted` marks an image saved at the working size because its
    --output-size render was stopped."""
    record = {
        "tool": "clipstyler_opt",
        "prompt": prompt,
        "seed": config.seed,
        "input": {"source": _absolute_source(loaded.source), "sha256": loaded.sha256, "size": list(loaded.rgb.size)},
        "output_size": list(image_size),
        "settings": config.output_settings(),
        "config": absolute_config(config),  # every option, paths absolute: what `run --from` starts from
        "settings_hash": config.settings_hash(prompt, loaded.sha256 or ""),
        "device": device,
        "precision": precision,
        "requested_precision": config.precision,
        "style": target,
        "style_images": [{"path": os.path.abspath(image.path), "weight": image.weight,
                          **_sha(image.path)} for image in config.style_images()],
        "backbones": [backbone_record(member, config) for member in members],
        "objective": objective,
        "content_network": {**content_network, **weights_record(content_network.get("weights"),
                                                                 content_network.get("weights_origin"))},
        "losses": losses,
        "history": history,
        "skipped_steps": skipped_steps,
        "warnings": run_warnings,
        "timings": timings,
        "versions": package_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if interrupted_at_step is not None:
        record["interrupted_at_step"] = interrupted_at_step
    if render_interrupted:
        record["render_interrupted"] = True
    return record


def _absolute_source(source: str) -> str:
    """A content file's path made absolute; an in-memory image's label (`<tensor>`) as it is."""
    return source if source.startswith("<") else os.path.abspath(source)


RECORD_KEY = "clipstyler_opt"  # the PNG iTXt keyword; JPEG/WebP use EXIF ImageDescription
_IMAGE_DESCRIPTION = 0x010E
_MAX_RECORD_BYTES = 64 << 20  # a sidecar is a few hundred KiB at most (the history dominates)


def read_record(path: Path) -> tuple[dict[str, Any], str]:
    """The provenance record of an output, preferring its JSON sidecar (which keeps full paths).

    Every field this version writes is checked for its type, so a reader may trust the shapes
    (`seed` an integer, `settings` an object, `history` a list of objects...); unknown keys are
    kept as they are.

    Args:
        path: an output image, or its `.json` sidecar.

    Returns:
        The record and a description of where it was read from.

    Raises:
        InputImageError: no such file, unreadable or invalid metadata, or no record at all.

    Example:
        >>> import json, tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "out.png.json").write_text(json.dumps({"tool": "clipstyler_opt", "seed": 7}))
        >>> read_record(folder / "out.png.json")[0]["seed"]
        7
    """
    from clipstyler_opt.core.files import not_a_file

    reason = not_a_file(path)  # a FIFO is named as one, not as missing
    if reason is not None:
        raise InputImageError(f"{printable(str(path))}: {reason}")
    sidecar = path if path.suffix.lower() == ".json" else sidecar_path(path)
    odd = not_a_file(sidecar)
    if odd not in (None, "no such file"):  # never fall back to the embedded record without saying so
        raise InputImageError(f"{printable(str(sidecar))}: {odd}; move it away to read the record "
                              f"embedded in {printable(path.name)}")
    if odd is None:
        return _parse(_read_text(sidecar), sidecar), f"sidecar {printable(str(sidecar))}"
    blob = _embedded(path)
    if blob is None:
        raise InputImageError(f"{printable(str(path))}: no clipstyler_opt metadata (no {printable(sidecar.name)} "
                              "sidecar and nothing embedded in the image)")
    where = "PNG iTXt chunk" if path.suffix.lower() == ".png" else "EXIF ImageDescription"
    return _parse(blob, path), f"{where} of {printable(str(path))} (file paths shortened to names)"


def recorded_settings_hash(output: Path) -> str | None:
    """The `settings_hash` in an output's sidecar, for a resume: None when the output or its
    sidecar is missing, unreadable, or not a valid record (the job is then simply redone).

    Example:
        >>> import tempfile
        >>> recorded_settings_hash(Path(tempfile.mkdtemp()) / "missing.png") is None
        True
    """
    sidecar = sidecar_path(output)
    if not output.is_file() or not sidecar.is_file():
        return None
    try:
        value = _parse(_read_text(sidecar), sidecar).get("settings_hash")
    except InputImageError:
        return None
    return value if isinstance(value, str) else None


def recorded_input(record: dict[str, Any], output: Path) -> Path:
    """The content image a record names, found again (see `recorded_file`).

    Args:
        record: as `read_record` returns it.
        output: the output image (or its sidecar) the record was read from.

    Raises:
        InputImageError: no content image recorded, or a relative one not found with its sha256.

    Example:
        >>> recorded_input({"input": {"source": "/photos/cat.jpg"}}, Path("/out/cat-oil.png"))
        PosixPath('/photos/cat.jpg')
    """
    entry = record.get("input")
    source, expected = (entry.get("source"), entry.get("sha256")) if isinstance(entry, dict) else (None, None)
    if not isinstance(source, str) or not source or source.startswith("<"):
        raise InputImageError(f"{printable(str(output))}: no content image file recorded (made from an "
                              "in-memory image)")
    found = recorded_file(source, output, expected if isinstance(expected, str) else None)
    if found is not None or Path(source).is_absolute():
        return found or Path(source)
    candidate = output.parent / source
    reason = "has another sha256" if candidate.is_file() else "is not there"
    if not isinstance(expected, str):
        reason = "cannot be checked (no sha256 recorded)"
    raise InputImageError(f"{printable(str(output))}: the recorded content image {printable(source)} is a relative "
                          f"path, and {printable(str(candidate))} {reason}")


def recorded_file(text: str, output: Path, sha256: str | None) -> Path | None:
    """A file named in a record, found again, or None. Sidecars written today name files by
    absolute path, taken as they are. A relative path (older sidecars, or the names in embedded
    metadata) is taken relative to the output's folder, and only when that file's sha256 is the
    recorded one: it is never looked up from the current folder, where another file may sit
    under that name.

    Example:
        >>> recorded_file("cat.jpg", Path("/no/such/folder/out.png"), "ab" * 32) is None
        True
    """
    recorded = Path(text)
    if recorded.is_absolute():
        return recorded if recorded.is_file() else None
    candidate = output.parent / recorded
    return candidate if sha256 is not None and _matches(candidate, sha256) else None


def _matches(path: Path, sha256: str) -> bool:
    from clipstyler_opt.core.digests import file_sha256

    try:
        return path.is_file() and file_sha256(path) == sha256
    except OSError:
        return False


def _read_text(path: Path) -> str:
    from clipstyler_opt.core.files import read_text

    return read_text(path, limit=_MAX_RECORD_BYTES, error=InputImageError)  # a FIFO is named, never waited on


def _embedded(path: Path) -> str | None:
    """The JSON blob inside a PNG (iTXt) or JPEG/WebP (EXIF); only headers are read, never pixels.
    EXIF ImageDescription is a common field (cameras write their model there): its text counts as
    ours only when it is a clipstyler_opt record, or names the tool and is broken."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open_image(path) as image:  # the file gate and the format allow-list
                ours_by_name = image.format == "PNG"  # our own iTXt keyword
                value = (image.info.get(RECORD_KEY) if ours_by_name
                         else image.getexif().get(_IMAGE_DESCRIPTION))
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise InputImageError(f"{printable(str(path))}: not an image file and no "
                              f"{printable(sidecar_path(path).name)} sidecar") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputImageError(f"{printable(str(path))}: cannot read its metadata "
                              f"({printable(str(exc).splitlines()[0])})") from None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str) or not value.strip():
        return None
    return value if ours_by_name or RECORD_KEY in value else None


def _parse(text: str, where: Path) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputImageError(f"{printable(str(where))}: the clipstyler_opt metadata is not valid JSON ({exc.msg}, "
                              f"line {exc.lineno})") from None
    except RecursionError:
        raise InputImageError(f"{printable(str(where))}: the clipstyler_opt metadata is not a record (JSON "
                              "nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise InputImageError(f"{printable(str(where))}: the clipstyler_opt metadata is not a record "
                              f"({printable(str(exc))})") from None
    if not isinstance(record, dict) or not record:
        raise InputImageError(f"{printable(str(where))}: holds no clipstyler_opt record")
    problem = record_shape_problem(record)
    if problem:
        raise InputImageError(f"{printable(str(where))}: not a valid clipstyler_opt record ({printable(problem)})")
    return record
