"""Downloads: reachability probes, and resumable, hash-checked, atomic file downloads."""

from __future__ import annotations

import fcntl
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from clipstyler_opt.core.errors import OutputError, WeightsError
from clipstyler_opt.core.files import describe_os_error, file_identity, open_regular, rename_into_place

__all__ = [
    "VGG19_FILENAME",
    "VGG19_URL",
    "check_reachable",
    "download_file",
    "one_line",
    "torch_hub_checkpoints",
    "torchvision_sha256_prefix",
    "vgg19_cache_files",
    "vgg19_url",
]

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 60.0


def one_line(exc: BaseException) -> str:
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
        raise WeightsError(f"cannot reach {host} ({one_line(exc)})") from exc



def download_file(url: str, dest: Path, *, sha256_prefix: str = "", sha256: str = "") -> Path:
    """Download `url` to `dest` with a progress bar and timeouts; resumable, verified, atomic.

    Bytes go to `<dest>.part` (locked against a second downloader), opened through the file gate:
    only a regular file, never through a symbolic link, never blocking on a FIFO. Where a hash is
    known (`sha256`, or the `sha256_prefix` a torchvision file name carries), a `.part` left by an
    interrupted attempt is continued with an HTTP Range request, or restarted from zero when
    the server ignores it; without a hash every attempt starts from zero. The finished file is
    checked against the hash and only then renamed to `dest`; a mismatch deletes it. An
    interrupted transfer keeps the `.part` for the next attempt. Every failure is a one-line
    WeightsError.
    """
    from clipstyler_opt.core.digests import sha256_of_stream

    expected = (sha256 or sha256_prefix).strip().lower()
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd = open_regular(part, os.O_RDWR | os.O_CREAT, follow_links=False)
    except OSError as exc:
        raise WeightsError(f"cannot write {part}: {describe_os_error(exc)}") from None
    with os.fdopen(fd, "r+b") as out:
        _lock_or_fail(out.fileno(), part)
        try:
            _transfer(url, out, resume=bool(expected), label=dest.name)
        except Exception as exc:  # urllib, http.client and socket raise many types mid-transfer
            kept = os.fstat(out.fileno()).st_size if expected else 0
            if not kept:
                _remove(part, out)
            reason = str(exc) if isinstance(exc, _Incomplete) else one_line(exc)
            resume = f"; {kept} bytes kept in {part.name}, rerun to resume" if kept else ""
            raise WeightsError(f"download of {url} failed: {reason}{resume}") from None
        out.seek(0)
        digest = sha256_of_stream(out)
        if not digest.startswith(expected):
            _remove(part, out)
            raise WeightsError(f"downloaded {url} but its SHA-256 {digest[:16]}... does not match the expected "
                               f"{expected}; the file was deleted")
        try:
            rename_into_place([(str(part), dest)])
        except OutputError as exc:
            raise WeightsError(f"cannot put the download in place: {exc}") from None
    return dest


def _remove(part: Path, opened: BinaryIO) -> None:
    """Delete `part` if it still is the file we have open (never another file put there meanwhile)."""
    if file_identity(part) == (os.fstat(opened.fileno()).st_dev, os.fstat(opened.fileno()).st_ino):
        part.unlink(missing_ok=True)


class _Incomplete(Exception):
    """The server sent less than it announced, or another range than asked for."""


def _lock_or_fail(fileno: int, part: Path) -> None:
    try:
        fcntl.flock(fileno, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise WeightsError(f"another process is downloading to {part}; wait for it to finish") from None


def _transfer(url: str, out: BinaryIO, *, resume: bool, label: str) -> None:
    """Write `url` into the open `.part` file `out`: only the bytes after those already there
    when `resume` and the server honours Range; otherwise (or when it refuses the range: a stale
    `.part`) from zero."""
    from tqdm.auto import tqdm

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


def vgg19_url() -> str:
    """Where VGG19 is downloaded from: `CLIPOPT_VGG19_URL` (a mirror) if set, else torchvision's URL.
    The file's hash is checked either way."""
    from clipstyler_opt.core.errors import ConfigError

    url = os.environ.get("CLIPOPT_VGG19_URL", "").strip()
    if not url:
        return VGG19_URL
    if urlparse(url).scheme not in ("http", "https"):
        raise ConfigError(f"CLIPOPT_VGG19_URL={url!r} is not an http:// or https:// URL")
    return url


def torch_hub_checkpoints() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def vgg19_cache_files(cache_dir: Path | None) -> list[Path]:
    """Where VGG19 is looked for, in this order: `cache_dir`, then torch hub's checkpoints folder."""
    folders = ([Path(cache_dir)] if cache_dir else []) + [torch_hub_checkpoints()]
    return [folder / VGG19_FILENAME for folder in folders]


def torchvision_sha256_prefix(filename: str) -> str:
    """The hex digits a torchvision weights file name ends with (`vgg19-dcbb9e9d.pth`): the
    start of the file's SHA-256."""
    return filename.rsplit("-", 1)[-1].split(".", 1)[0]
