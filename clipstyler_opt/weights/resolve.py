"""Find a weights file: explicit file -> caches (no network) -> download -> one-line error.

open_clip and torchvision are only ever handed the local path this module returns; they
are never given a tag or URL to fetch themselves (offline, their retries take ~half a minute).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from clipstyler_opt.core.errors import WeightsError
from clipstyler_opt.core.files import not_a_file
from clipstyler_opt.weights.download import (
    VGG19_FILENAME,
    VGG19_URL,
    check_reachable,
    download_file,
    one_line,
    torchvision_sha256_prefix,
    vgg19_cache_files,
    vgg19_url,
)

__all__ = [
    "VGG19_FILENAME",
    "VGG19_URL",
    "WeightsFile",
    "resolve_clip_weights",
    "resolve_hub_file",
    "resolve_vgg_weights",
    "resolve_weights",
    "torchvision_sha256_prefix",
    "vgg19_cache_files",
    "vgg19_url",
]



@dataclass(frozen=True)
class WeightsFile:
    path: Path
    origin: str  # "explicit", "cache" or "download"


def resolve_weights(
    what: str,
    *,
    explicit: Path | None,
    explicit_flag: str,
    cached: Iterable[Path],
    download: Callable[[], Path],
    offline: bool,
    looked_in: str,
) -> WeightsFile:
    """The shared resolution order. `cached` is lazily evaluated and must not touch the network."""
    if explicit is not None:
        path = Path(explicit).expanduser().absolute()
        if path.is_dir():
            raise WeightsError(f"{explicit_flag} {path}: is a directory, not a file")
        reason = not_a_file(path)  # a FIFO is named as one, not as missing
        if reason is not None:
            raise WeightsError(f"{explicit_flag} {path}: {reason}")
        return WeightsFile(path, "explicit")
    for path in cached:
        return WeightsFile(path, "cache")
    fix = f"pass {_with_file(explicit_flag)}, or run once with network access to fill the cache"
    if offline:
        raise WeightsError(f"{what} not found offline (looked in {looked_in}); {fix}")
    try:
        return WeightsFile(download(), "download")
    except Exception as exc:  # network stacks raise many types; all mean "could not download"
        reason = str(exc) if isinstance(exc, WeightsError) else one_line(exc)
        raise WeightsError(f"{what} not found (looked in {looked_in}) and the download failed: {reason}; "
                           f"{fix}, or set CLIPOPT_OFFLINE=1 to skip download attempts") from exc


# --- open_clip weights (Hugging Face hub) ---

def _hf_candidates(hf_hub: str) -> tuple[str, list[str]]:
    """open_clip writes hub sources as 'org/repo/' or 'org/repo/filename'; safetensors first."""
    repo_id, filename = hf_hub.rstrip("/"), ""
    if not hf_hub.endswith("/"):
        repo_id, filename = hf_hub.rsplit("/", 1)
    if not filename or filename == "open_clip_pytorch_model.bin":
        return repo_id, ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    stem, ext = os.path.splitext(filename)
    safe = [f"{stem}.safetensors"] if ext in (".bin", ".pth", ".pt") else []
    return repo_id, [*safe, filename]


def _hub_caches(cache_dir: Path | None) -> list[str]:
    from huggingface_hub import constants

    return ([str(cache_dir)] if cache_dir else []) + [constants.HF_HUB_CACHE]


def _with_file(flag: str) -> str:
    """How to pass a file with `flag` in a message: `--x FILE`, or the flag as it is when it says
    where FILE goes (`--scorer MODEL/TAG:file=FILE`)."""
    return flag if "FILE" in flag else f"{flag} FILE"


def resolve_hub_file(repo_id: str, filenames: list[str], *, what: str, explicit: Path | None, explicit_flag: str,
                     cache_dir: Path | None, offline: bool) -> WeightsFile:
    """The first of `filenames` in `repo_id`: explicit file -> hub caches -> download -> error."""
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache

    caches = _hub_caches(cache_dir)

    def cached() -> Iterable[Path]:
        for cache in caches:
            for filename in filenames:
                hit = try_to_load_from_cache(repo_id, filename, cache_dir=cache)
                if isinstance(hit, str) and Path(hit).is_file():
                    yield Path(hit)

    def download() -> Path:
        check_reachable(constants.ENDPOINT)
        last: Exception | None = None
        for filename in filenames:
            try:
                return Path(hf_hub_download(repo_id, filename, cache_dir=caches[0], etag_timeout=10))
            except Exception as exc:  # a missing safetensors variant: try the next file
                last = exc
        raise WeightsError(f"{repo_id}: {one_line(last or Exception())}")

    return resolve_weights(what, explicit=explicit, explicit_flag=explicit_flag, cached=cached(),
                           download=download, offline=offline,
                           looked_in=" and ".join(f"{c} ({repo_id})" for c in caches))


def resolve_clip_weights(
    model_name: str, tag: str | None, *, explicit: Path | None, cache_dir: Path | None, offline: bool,
    explicit_flag: str = "--clip-checkpoint",
) -> WeightsFile:
    import open_clip

    what = f"CLIP weights {model_name}/{tag}"
    if explicit is not None:
        return resolve_weights(what, explicit=explicit, explicit_flag=explicit_flag, cached=(),
                               download=lambda: Path(), offline=True, looked_in="")
    hf_hub = open_clip.get_pretrained_cfg(model_name, tag).get("hf_hub", "") if tag else ""
    if not hf_hub:
        known = ", ".join(open_clip.list_pretrained_tags_by_model(model_name)) or "none"
        raise WeightsError(
            f"{what}: no known hub source (pretrained tags for {model_name}: {known}); "
            f"pass {_with_file(explicit_flag)}"
        )
    repo_id, filenames = _hf_candidates(hf_hub)
    return resolve_hub_file(repo_id, filenames, what=what, explicit=None, explicit_flag=explicit_flag,
                            cache_dir=cache_dir, offline=offline)


# --- VGG19 weights (torchvision layout) ---

def resolve_vgg_weights(*, explicit: Path | None, cache_dir: Path | None, offline: bool) -> WeightsFile:
    candidates = vgg19_cache_files(cache_dir)

    def download() -> Path:
        url = vgg19_url()
        check_reachable(url)
        return download_file(url, candidates[0], sha256_prefix=torchvision_sha256_prefix(VGG19_FILENAME))

    return resolve_weights(
        "VGG19 weights",
        explicit=explicit,
        explicit_flag="--vgg-checkpoint",
        cached=(p for p in candidates if p.is_file()),
        download=download,
        offline=offline,
        looked_in=" and ".join(str(p) for p in candidates),
    )
