"""The backbones known by name, where their files come from, and what the caches hold of them.

Parameter counts are exact: the tensor elements of each architecture's state dict, counted by
building it on PyTorch's meta device. Download sizes are approximate: the published files hold
fp32 tensors, so a file is about 4 bytes a parameter plus a header of a few kilobytes.

Cache lookups go through the resolvers in `weights.py` and `tokenizers.py` with downloads off,
so what is reported as cached is exactly what a run would find; nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from clipstyler_opt.core.backbone_spec import DEFAULT_BACKBONE, BackboneSpec
from clipstyler_opt.core.digests import sha256_of_file
from clipstyler_opt.core.errors import ConfigError, WeightsError
from clipstyler_opt.core.files import describe_os_error, open_for_reading, read_regular
from clipstyler_opt.models.inspect import check_integrity
from clipstyler_opt.models.tokenizers import resolve_tokenizer_folder
from clipstyler_opt.weights.resolve import (
    VGG19_FILENAME,
    WeightsFile,
    _hf_candidates,
    _hub_caches,
    resolve_hub_file,
    resolve_vgg_weights,
    torchvision_sha256_prefix,
    vgg19_cache_files,
)

__all__ = [
    "CATALOG",
    "CONTENT_NETWORK",
    "VGG19_SHA256_PREFIX",
    "CacheStatus",
    "Finding",
    "HubSource",
    "KnownBackbone",
    "cache_status",
    "check_cached_file",
    "hub_source",
    "is_content_network",
    "size_text",
    "tokenizer_repo_of",
    "verify_caches",
]

CONTENT_NETWORK = "vgg19"
VGG19_SHA256_PREFIX = torchvision_sha256_prefix(VGG19_FILENAME)
BYTES_PER_PARAMETER = 4  # fp32
_WEIGHTS_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX40 = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class KnownBackbone:
    name: str  # as typed on the command line: MODEL/TAG, or "vgg19" for the content network
    parameters: int
    role: str = "vision-language"

    @property
    def approx_download_bytes(self) -> int:
        return BYTES_PER_PARAMETER * self.parameters

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_BACKBONE


CATALOG: tuple[KnownBackbone, ...] = (
    KnownBackbone(DEFAULT_BACKBONE, 151_277_313),
    KnownBackbone("ViT-B-16/openai", 149_620_737),
    KnownBackbone("ViT-L-14/openai", 427_616_513),
    KnownBackbone("ViT-B-16-SigLIP/webli", 203_155_970),
    KnownBackbone("ViT-B-16-SigLIP2/webli", 375_187_970),
    KnownBackbone("ViT-SO400M-14-SigLIP/webli", 877_360_306),
    KnownBackbone(CONTENT_NETWORK, 143_667_240, role="content"),
)


_MAX_CONFIG_BYTES = 16 << 20  # an open_clip_config.json; anything larger is not one

def size_text(size: int) -> str:
    """A size in bytes as `clipopt weights list` shows it.

    >>> size_text(605_109_252), size_text(1_700_000_000)
    ('605 MB', '1.7 GB')
    """
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def is_content_network(name: str) -> bool:
    return name.strip().lower() == CONTENT_NETWORK


@dataclass(frozen=True)
class HubSource:
    """The hub files of an open_clip backbone: its weights (the first of `weights` found wins),
    open_clip_config.json for `hf-hub:` sources, and the tokenizer's repo where one is needed
    (for `hf-hub:` sources it is named in that config, so it is unknown here)."""

    repo_id: str
    weights: tuple[str, ...]
    with_config: bool = False
    tokenizer_repo: str | None = None


def hub_source(spec: BackboneSpec) -> HubSource:
    """Where `spec`'s files come from. ConfigError for specs that name no download."""
    import open_clip

    if spec.schema == "local-dir" or spec.file is not None:
        raise ConfigError(f"{spec}: names local files; there is nothing to download")
    if spec.schema == "hf-hub":
        return HubSource(spec.model, tuple(_hf_candidates(f"{spec.model}/")[1]), with_config=True)
    if spec.model not in open_clip.list_models():
        raise ConfigError(f"unknown model {spec.model!r} (clipopt weights list shows the common ones)")
    tags = open_clip.list_pretrained_tags_by_model(spec.model)
    hf_hub = open_clip.get_pretrained_cfg(spec.model, spec.pretrained).get("hf_hub", "") if spec.pretrained else ""
    if not hf_hub:
        raise ConfigError(f"{spec}: name a pretrained tag open_clip hosts on the Hugging Face hub "
                          f"({spec.model}/TAG; known tags: {', '.join(tags) or 'none'})")
    repo_id, filenames = _hf_candidates(hf_hub)
    tokenizer = (open_clip.get_model_config(spec.model) or {}).get("text_cfg", {}).get("hf_tokenizer_name")
    return HubSource(repo_id, tuple(filenames), tokenizer_repo=tokenizer)


def tokenizer_repo_of(config_file: Path) -> str | None:
    """The Hugging Face tokenizer an open_clip_config.json names, if any."""
    try:
        config = json.loads(read_regular(config_file, _MAX_CONFIG_BYTES))
        return config["model_cfg"].get("text_cfg", {}).get("hf_tokenizer_name") or None
    except OSError as exc:
        raise WeightsError(f"{config_file}: not a readable open_clip config ({describe_os_error(exc)})") from None
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        raise WeightsError(f"{config_file}: not a readable open_clip config ({exc})") from None


@dataclass(frozen=True)
class CacheStatus:
    entry: KnownBackbone
    source: str  # hub repo or download URL's file name
    path: Path | None
    tokenizer_repo: str | None = None
    tokenizer_path: Path | None = None


def _found(lookup: Callable[[], WeightsFile]) -> Path | None:
    try:
        return lookup().path
    except WeightsError:
        return None


def cache_status(entry: KnownBackbone, cache_dir: Path | None) -> CacheStatus:
    """Where the caches hold `entry`'s weights (and tokenizer), as a run would look them up."""
    if entry.role == "content":
        return CacheStatus(entry, VGG19_FILENAME,
                           _found(lambda: resolve_vgg_weights(explicit=None, cache_dir=cache_dir, offline=True)))
    source = hub_source(BackboneSpec.parse(entry.name))
    path = _found(lambda: resolve_hub_file(source.repo_id, list(source.weights), what=entry.name, explicit=None,
                                           explicit_flag="", cache_dir=cache_dir, offline=True))
    tokenizer = None
    if source.tokenizer_repo:
        repo = source.tokenizer_repo
        tokenizer = _found(lambda: resolve_tokenizer_folder(repo, explicit=None, bundled=None, cache_dir=cache_dir,
                                                            offline=True))
    return CacheStatus(entry, source.repo_id, path, source.tokenizer_repo, tokenizer)


@dataclass(frozen=True)
class Finding:
    """One checked file. `problem` is None when it is fine; `check` says what was compared;
    `sha256` is the file's digest where it was computed."""

    path: Path
    check: str
    problem: str | None = None
    sha256: str | None = None


def _git_blob_sha1(path: Path) -> str:
    """The id git (and so the hub, for files not in LFS) gives a file: SHA-1 of 'blob SIZE\\0' + bytes."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open_for_reading(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _expected_hash(path: Path) -> tuple[str, str] | None:
    """(kind, hex) from a hub cache blob's name: LFS blobs are named by their SHA-256, other
    files by their git blob SHA-1. A torchvision file name carries a SHA-256 prefix."""
    target = path.resolve()
    if target.parent.name == "blobs" and _HEX64.fullmatch(target.name):
        return "sha256", target.name
    if target.parent.name == "blobs" and _HEX40.fullmatch(target.name):
        return "git-sha1", target.name
    if path.name == VGG19_FILENAME:
        return "sha256", VGG19_SHA256_PREFIX
    return None


def check_cached_file(path: Path) -> Finding:
    """Re-read a cached file: its hash against the one its (blob) name gives, and, for weights
    files, that it is structurally a checkpoint (no model is built)."""
    if not path.exists():
        return Finding(path, "link", "broken link: the file it points to is missing")
    expected = _expected_hash(path)
    checks, digest = [], None
    if expected is not None:
        kind, want = expected
        checks.append(kind)
        try:
            actual = sha256_of_file(path) if kind == "sha256" else _git_blob_sha1(path)
        except OSError as exc:  # a FIFO, socket or device where a blob should be: named, never waited on
            return Finding(path, kind, f"cannot read it: {describe_os_error(exc)}")
        digest = actual if kind == "sha256" else None
        if not actual.startswith(want):
            return Finding(path, kind, f"corrupt: its {kind} is {actual[:16]}..., expected {want[:16]}...", digest)
    if path.name.endswith(_WEIGHTS_SUFFIXES):
        checks.append("structure")
        try:
            check_integrity(path)
        except WeightsError as exc:
            return Finding(path, "structure", str(exc), digest)
    return Finding(path, "+".join(checks) or "present; no known hash", None, digest)


def _partial(path: Path) -> Finding:
    return Finding(path, "partial download",
                   f"partial download ({path.stat().st_size} bytes): interrupted or still running; "
                   "rerun clipopt weights download to finish it, or delete it")


def _hub_findings(repo_dir: Path) -> Iterable[Finding]:
    seen: set[Path] = set()
    for path in sorted(repo_dir.glob("snapshots/**/*")):
        if path.is_dir():
            continue
        target = path.resolve()
        if target in seen:  # several snapshots may share a blob
            continue
        seen.add(target)
        yield check_cached_file(path)
    yield from (_partial(path) for path in sorted(repo_dir.glob("blobs/*.incomplete")))


def _vgg_findings(cache_dir: Path | None) -> Iterable[Finding]:
    for path in vgg19_cache_files(cache_dir):
        if path.is_file():
            yield check_cached_file(path)
        if path.parent.is_dir():  # ours: NAME.part; torch hub's: NAME.<hex>.partial
            yield from (_partial(p) for p in sorted(path.parent.glob(f"{VGG19_FILENAME}.*"))
                        if p.name.endswith((".part", ".partial")))


def verify_caches(cache_dir: Path | None, names: Sequence[str] = ()) -> list[Finding]:
    """Check what the caches hold of `names` (specs or `vgg19`; default: the whole catalog):
    every file of their hub repos (weights, config, tokenizer), VGG19, and partial downloads."""
    repos: list[str] = []
    content = False
    for name in names or [entry.name for entry in CATALOG]:
        if is_content_network(name):
            content = True
            continue
        source = hub_source(BackboneSpec.parse(name))
        repos += [source.repo_id] + ([source.tokenizer_repo] if source.tokenizer_repo else [])
    findings: list[Finding] = []
    for cache in dict.fromkeys(_hub_caches(cache_dir)):
        for repo in dict.fromkeys(repos):
            repo_dir = Path(cache) / f"models--{repo.replace('/', '--')}"
            if repo_dir.is_dir():
                findings += _hub_findings(repo_dir)
    if content:
        findings += _vgg_findings(cache_dir)
    return findings
