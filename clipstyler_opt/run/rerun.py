"""`clipopt run --from OUT`: the recorded settings, prompt, seed and weights of an output, found again.

Weights are identified by sha256. A recorded file that still exists with that hash is used; else
the weight caches are searched for a file with that hash (Hugging Face stores downloaded weights
under their sha256); else the re-run stops with a one-line error naming the file and the command
that fetches it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from clipstyler_opt.core.backbone_spec import BackboneSpec
from clipstyler_opt.core.coercion import typed_value
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.digests import file_sha256
from clipstyler_opt.core.errors import ConfigError, InputImageError, WeightsError

__all__ = ["EXPLICIT_FILE_FIELDS", "Rerun", "rerun_from_record"]

_IDENTITY = re.compile(r"^(?P<name>.*) \(sha256 (?P<sha>[0-9a-f]{64})\)$")


class Rerun:
    def __init__(self, image: Path, prompt: str, values: dict[str, Any], preset_applied: set[str],
                 taken: set[str] | None = None) -> None:
        self.image, self.prompt, self.values = image, prompt, values
        self.preset_applied = preset_applied  # the fields the recorded preset set
        self.taken = taken or set()  # explicit options now part of the recorded values (a member's file=)


def _cache_folders(cache_dir: str | None) -> list[Path]:
    import torch.hub
    from huggingface_hub import constants

    folders = [Path(cache_dir)] if cache_dir else []
    return [*folders, Path(constants.HF_HUB_CACHE), Path(torch.hub.get_dir()) / "checkpoints"]


def _candidates(name: str, sha: str, folders: Iterable[Path]) -> Iterable[Path]:
    for folder in folders:
        if not folder.is_dir():
            continue
        yield from folder.glob(f"models--*/blobs/{sha}")  # Hugging Face: blobs are named by sha256
        yield from folder.glob(f"**/{name}")


def locate(recorded: str | None, name: str, sha: str, cache_dir: str | None, what: str) -> Path:
    """A file with this sha256: the recorded path, else one in the caches."""
    tried = [Path(recorded)] if recorded else []
    for path in [*tried, *_candidates(name, sha, _cache_folders(cache_dir))]:
        try:
            if path.is_file() and file_sha256(path) == sha:
                return path
        except OSError:
            continue
    raise WeightsError(f"{what} {name} (sha256 {sha[:12]}…) is not at {recorded or 'its recorded path'} nor in the "
                       "weight caches; fetch it (clipopt weights download SPEC) or pass the file explicitly")


def _identity(text: Any) -> tuple[str, str] | None:
    match = _IDENTITY.match(text) if isinstance(text, str) else None
    return (match["name"], match["sha"]) if match else None


# Files the command line may give with --from: each must be the recorded one (same sha256).
EXPLICIT_FILE_FIELDS = ("clip_checkpoint", "vgg_checkpoint", "clip_model_config", "cache_dir")


def _explicit_sha(path: Any, option: str) -> str:
    try:
        return file_sha256(Path(path))
    except OSError as exc:
        raise WeightsError(f"{option} {path}: cannot read ({exc.strerror or exc})") from None


def _check_explicit(path: Any, sha: str, name: str, option: str) -> str:
    """An explicit file given with --from: used when its sha256 is the recorded one."""
    if _explicit_sha(path, option) != sha:
        raise WeightsError(f"{option} {path}: not the file the output was made with ({name}, sha256 "
                           f"{sha[:12]}…); leave out --from to run with other weights")
    return str(path)


def _pin_file_fields(values: dict[str, Any], settings: dict[str, Any], explicit: dict[str, Any]) -> None:
    cache = values.get("cache_dir")
    legacy = (settings.get("backbone") or [{}])[0] if not values.get("backbone") else {}
    pinned = (("clip_checkpoint", legacy.get("file")), ("vgg_checkpoint", settings.get("vgg_checkpoint")))
    for field, identity in pinned:
        found = _identity(identity)
        option = "--" + field.replace("_", "-")
        if found and explicit.get(field):
            values[field] = _check_explicit(explicit[field], found[1], found[0], option)
        elif found and values.get(field):
            values[field] = str(locate(values[field], *found, cache, field.replace("_", " ")))
    configs = [_identity(i) for i in settings.get("clip_model_config") or []]
    if explicit.get("clip_model_config"):
        given = {_explicit_sha(path, "--clip-model-config"): str(path) for path in explicit["clip_model_config"]}
        wanted = {found[1] for found in configs if found}
        for sha, path in given.items():
            if sha not in wanted:
                raise WeightsError(f"--clip-model-config {path}: not a model config the output was made with "
                                   "(another sha256); leave out --from to run with other files")
    else:
        given = {}
    # an older or edited record may list fewer identities than paths: only the pairs are kept, as before
    values["clip_model_config"] = [
        (given.get(found[1]) or str(locate(path, *found, cache, "model config"))) if found else path
        for path, found in zip(values.get("clip_model_config") or [], configs, strict=False)]


def _pin_backbones(record: dict[str, Any], values: dict[str, Any], explicit: dict[str, Any]) -> set[str]:
    """Explicit weight files (file=) by sha256; hub weights must still be in the caches, unless a
    --clip-checkpoint given with --from is that file. Returns the explicit options the recorded
    backbones took in (a --clip-checkpoint that is a member's file=)."""
    cache = values.get("cache_dir")
    identities = (record.get("settings") or {}).get("backbone") or []
    specs = [BackboneSpec.parse(text) for text in values.get("backbone") or []]
    given = _explicit_sha(explicit["clip_checkpoint"], "--clip-checkpoint") if explicit.get("clip_checkpoint") \
        else None
    taken: set[str] = set()
    if "backbone" not in explicit:  # a --backbone given anew replaces these
        for index, spec in enumerate(specs):
            found = _identity((identities[index] if index < len(identities) else {}).get("file"))
            if spec.file is not None and found and found[1] == given:
                specs[index] = spec.with_defaults(file=Path(explicit["clip_checkpoint"]))
                taken.add("clip_checkpoint")
            elif spec.file is not None and found:
                specs[index] = spec.with_defaults(file=locate(str(spec.file), *found, cache, "backbone weights"))
    values["backbone"] = [str(spec) for spec in specs]
    for member in record.get("backbones") or []:
        sha = member.get("weights_sha256")
        if member.get("weights_origin") in ("cache", "download") and sha and sha != given:
            locate(member.get("weights"), member.get("weights_name") or "", sha, cache, "backbone weights")
    return taken


def rerun_from_record(record: dict[str, Any], output: Path | None = None,
                      explicit: dict[str, Any] | None = None) -> Rerun:
    """The image, prompt and StyleConfig values that reproduce a recorded output. The recorded
    values are read with the config file's strict rules: a value of the wrong type is a
    ConfigError (exit 2), never rounded or passed on.

    Args:
        record: as `run.record.read_record` returns it.
        output: the output the record was read from; a relative content path is found beside it
            (see `run.record.recorded_input`). None: the path is taken as recorded.
        explicit: options given with --from. Files among `EXPLICIT_FILE_FIELDS` satisfy the
            record when their sha256 is the recorded one (a record with names only, from
            --portable-metadata or an image without its sidecar, needs them); a given --cache-dir
            is searched instead of the recorded one.

    Raises:
        ConfigError: the record has no full settings.
        WeightsError: a recorded file is not found, or an explicit file is not the recorded one.
        InputImageError: the content image is not found or has changed.

    Example:
        >>> rerun_from_record({"prompt": "oil", "config": {"seed": 1.5}})
        Traceback (most recent call last):
        ...
        clipstyler_opt.core.errors.ConfigError: the record's seed must be an integer, got 1.5 (a float)
    """
    from clipstyler_opt.run.record import recorded_input

    explicit = {k: v for k, v in (explicit or {}).items() if v not in (None, ())}
    values = record.get("config")
    if not isinstance(values, dict) or "prompt" not in record:
        raise ConfigError("this output's record has no full settings (made by an older version); "
                          "pass the options yourself")
    # The config file's strict rules (core/coercion.py): a recorded seed=1.5 is refused, not rounded.
    values = {k: typed_value(k, v, label=f"the record's {k}") for k, v in values.items()
              if k in StyleConfig.field_names()}
    if explicit.get("cache_dir"):
        values["cache_dir"] = str(explicit["cache_dir"])
    settings = record.get("settings") or {}
    _pin_file_fields(values, settings, explicit)
    taken = _pin_backbones(record, values, explicit)
    content = record.get("content_network") or {}
    if content.get("weights_sha256") and values.get("vgg_checkpoint") is None:  # from the caches: still there?
        if explicit.get("vgg_checkpoint"):
            values["vgg_checkpoint"] = _check_explicit(explicit["vgg_checkpoint"], content["weights_sha256"],
                                                       content.get("weights_name") or "vgg19", "--vgg-checkpoint")
        else:
            locate(content.get("weights"), content.get("weights_name") or "vgg19", content["weights_sha256"],
                   values.get("cache_dir"), "VGG19 weights")
    source = (record.get("input") or {}).get("source")
    if not source or source.startswith("<"):
        raise InputImageError("the output was made from an in-memory image; give IMAGE")
    try:
        image = recorded_input(record, output) if output is not None else Path(source)
    except InputImageError as missing:
        raise InputImageError(f"{missing}; give IMAGE") from None
    expected = (record.get("input") or {}).get("sha256")
    if expected and image.is_file() and file_sha256(image) != expected:
        raise InputImageError(f"{image} has changed since the output was made (sha256 differs); give IMAGE to "
                              "use it anyway")
    applied = set(((record.get("preset") or {}).get("applied") or {}).keys())
    return Rerun(image, str(record["prompt"]), values, applied, taken)
