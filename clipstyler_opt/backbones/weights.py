"""Find a weights file: explicit file -> caches (no network) -> download -> one-line error.

open_clip and torchvision are only ever handed the local path this module returns; they
are never given a tag or URL to fetch themselves (offline, their retries take ~half a minute).
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlparse

from ..errors import WeightsError

__all__ = [
    "WeightsFile",
    "offline_requested",
    "resolve_weights",
    "resolve_clip_weights",
    "resolve_hub_file",
    "resolve_vgg_weights",
    "VGG19_URL",
    "VGG19_FILENAME",
]

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 60.0
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class WeightsFile:
    path: Path
    origin: str  # "explicit", "cache" or "download"


def offline_requested(flag: bool) -> bool:
    env = (os.environ.get("CLIPOPT_OFFLINE", ""), os.environ.get("HF_HUB_OFFLINE", ""))
    return flag or any(v.strip().lower() in _TRUE for v in env)


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
        if not path.is_file():
            raise WeightsError(f"{explicit_flag} {path}: no such file")
        return WeightsFile(path, "explicit")
    for path in cached:
        return WeightsFile(path, "cache")
    fix = f"pass {explicit_flag} FILE, or run once with network access to fill the cache"
    if offline:
        raise WeightsError(f"{what} not found offline (looked in {looked_in}); {fix}")
    try:
        return WeightsFile(download(), "download")
    except Exception as exc:  # network stacks raise many types; all mean "could not download"
        reason = str(exc) if isinstance(exc, WeightsError) else _one_line(exc)
        raise WeightsError(f"{what} not found (looked in {looked_in}) and the download failed: {reason}; "
                           f"{fix}, or set CLIPOPT_OFFLINE=1 to skip download attempts") from exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def check_reachable(url: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail in seconds, not minutes, when there is no route to the download host. Behind a
    proxy the download goes through the proxy, so the direct probe is skipped."""
    parsed = urlparse(url)
    if parsed.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(parsed.hostname or ""):
        return
    host, port = parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise WeightsError(f"cannot reach {host} ({_one_line(exc)})") from exc


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
    return repo_id, safe + [filename]


def _hub_caches(cache_dir: Path | None) -> list[str]:
    from huggingface_hub import constants

    return ([str(cache_dir)] if cache_dir else []) + [constants.HF_HUB_CACHE]


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
        raise WeightsError(f"{repo_id}: {_one_line(last or Exception())}")

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
            f"pass {explicit_flag} FILE"
        )
    repo_id, filenames = _hf_candidates(hf_hub)
    return resolve_hub_file(repo_id, filenames, what=what, explicit=None, explicit_flag=explicit_flag,
                            cache_dir=cache_dir, offline=offline)


# --- VGG19 weights (torchvision layout) ---

def torch_hub_checkpoints() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_vgg_weights(*, explicit: Path | None, cache_dir: Path | None, offline: bool) -> WeightsFile:
    folders = ([cache_dir] if cache_dir else []) + [torch_hub_checkpoints()]
    candidates = [Path(folder) / VGG19_FILENAME for folder in folders]

    def download() -> Path:
        check_reachable(VGG19_URL)
        return download_file(VGG19_URL, candidates[0], sha256_prefix=VGG19_FILENAME.split("-")[1][:8])

    return resolve_weights(
        "VGG19 weights",
        explicit=explicit,
        explicit_flag="--vgg-checkpoint",
        cached=(p for p in candidates if p.is_file()),
        download=download,
        offline=offline,
        looked_in=" and ".join(str(p) for p in candidates),
    )


def download_file(url: str, dest: Path, *, sha256_prefix: str = "", sha256: str = "") -> Path:
    """Download `url` to `dest` with a progress bar and timeouts; resumable, verified, atomic.

    Bytes go to `<dest>.part` (locked against a second downloader). Where a hash is known
    (`sha256`, or the `sha256_prefix` a torchvision file name carries), a `.part` left by an
    interrupted attempt is continued with an HTTP Range request, or restarted from zero when
    the server ignores it; without a hash every attempt starts from zero. The finished file is
    checked against the hash and only then renamed to `dest` (os.replace); a mismatch deletes
    it. An interrupted transfer keeps the `.part` for the next attempt. Every failure is a
    one-line WeightsError.
    """
    from ..filehash import sha256_of_file

    expected = (sha256 or sha256_prefix).strip().lower()
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock = open(part, "ab")
    except OSError as exc:
        raise WeightsError(f"cannot write {part}: {exc.strerror or exc}") from None
    with lock:
        _lock_or_fail(lock.fileno(), part)
        try:
            _transfer(url, part, resume=bool(expected), label=dest.name)
        except Exception as exc:  # urllib, http.client and socket raise many types mid-transfer
            kept = part.stat().st_size if part.exists() and expected else 0
            if not kept:
                part.unlink(missing_ok=True)
            reason = str(exc) if isinstance(exc, _Incomplete) else _one_line(exc)
            resume = f"; {kept} bytes kept in {part.name}, rerun to resume" if kept else ""
            raise WeightsError(f"download of {url} failed: {reason}{resume}") from None
        digest = sha256_of_file(part)
        if not digest.startswith(expected):
            part.unlink(missing_ok=True)
            raise WeightsError(f"downloaded {url} but its SHA-256 {digest[:16]}... does not match the expected "
                               f"{expected}; the file was deleted")
        os.replace(part, dest)
    return dest


class _Incomplete(Exception):
    """The server sent less than it announced, or another range than asked for."""


def _lock_or_fail(fileno: int, part: Path) -> None:
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform
        return
    try:
        fcntl.flock(fileno, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise WeightsError(f"another process is downloading to {part}; wait for it to finish") from None


def _transfer(url: str, part: Path, *, resume: bool, label: str) -> None:
    """Write `url` into `part`: only the bytes after those already there when `resume` and the
    server honours Range; otherwise (or when it refuses the range: a stale `.part`) from zero."""
    from tqdm.auto import tqdm

    with open(part, "r+b") as out:
        offset = out.seek(0, os.SEEK_END) if resume else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=READ_TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            if exc.code != 416 or not offset:
                raise
            offset, response = 0, urllib.request.urlopen(url, timeout=READ_TIMEOUT_S)
        with response:
            try:
                offset, total = _body_span(offset, response.status, response.headers.get("Content-Range"),
                                           response.headers.get("Content-Length"))
            except _Incomplete:
                out.truncate(0)  # the next attempt starts from zero
                raise
            out.seek(offset)
            out.truncate()
            with tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=label, disable=None) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        out.flush()
        os.fsync(out.fileno())
        size = out.tell()
    if total is not None and size != total:
        raise _Incomplete(f"the connection closed after {size} of {total} bytes")


def _body_span(asked: int, status: int, content_range: str | None, content_length: str | None
               ) -> tuple[int, int | None]:
    """(offset the response body starts at, total file size or None). A 206 answer must start at
    the byte asked for (`Content-Range: bytes FIRST-LAST/TOTAL`); any other answer is the whole file."""
    if status != 206:
        return 0, int(content_length) if content_length and content_length.isdigit() else None
    unit, _, spec = (content_range or "").partition(" ")
    span, _, total = spec.partition("/")
    if unit != "bytes" or span.partition("-")[0] != str(asked):
        raise _Incomplete(f"asked for bytes from {asked} on, the server sent {content_range or 'no Content-Range'}")
    return asked, int(total) if total.isdigit() else None


def _vgg19_url() -> str:
    """Where VGG19 is downloaded from: `CLIPOPT_VGG19_URL` (a mirror) if set, else torchvision's URL.
    The file's hash is checked either way."""
    from ..errors import ConfigError

    url = os.environ.get("CLIPOPT_VGG19_URL", "").strip()
    if not url:
        return VGG19_URL
    if urlparse(url).scheme not in ("http", "https"):
        raise ConfigError(f"CLIPOPT_VGG19_URL={url!r} is not an http:// or https:// URL")
    return url


def _vgg19_cache_files(cache_dir: Path | None) -> list[Path]:
    """Where VGG19 is looked for, in this order: `cache_dir`, then torch hub's checkpoints folder."""
    folders = ([Path(cache_dir)] if cache_dir else []) + [torch_hub_checkpoints()]
    return [folder / VGG19_FILENAME for folder in folders]


def _torchvision_sha256_prefix(filename: str) -> str:
    """The hex digits a torchvision weights file name ends with (`vgg19-dcbb9e9d.pth`): the
    start of the file's SHA-256."""
    return filename.rsplit("-", 1)[-1].split(".", 1)[0]
