"""A disk cache of text embeddings, so a known prompt costs no text-tower pass on the next run.

An entry is one fp32 tensor under a key (a JSON-able dict: the backbone's identity, the template
set, the text; see `text.TextEmbeddings`). It lives in `$CLIPOPT_CACHE_DIR/text` (else
`$XDG_CACHE_HOME/clipstyler_opt/text`, else `~/.cache/clipstyler_opt/text`) as one small file
named after the key's sha256:

    b"clipoptT" | header length (u32, little-endian) | JSON header | payload (little-endian fp32)

The header holds the key itself, the shape and the payload's sha256. A file that fails any check
(size, magic, header, key, shape, checksum, finite values) counts as absent and is rewritten.
Entries are read and written through the file gate: a read opens only a regular file (never
through a link, never blocking on a FIFO: anything else is a miss), and a write goes to a
temporary file in the same folder, then a rename: concurrent writers of one entry never leave a
torn file (the last one wins). The folder is kept within `MAX_ENTRIES` files
and `MAX_BYTES` bytes by deleting the least recently used entries (a hit refreshes an entry's
modification time). `CLIPOPT_TEXT_CACHE=0` turns the cache off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipstyler_opt.core.digests import file_sha256, user_cache_dir
from clipstyler_opt.core.errors import ConfigError, OutputError
from clipstyler_opt.core.files import read_regular, write_atomic

__all__ = [
    "ENTRY_SUFFIX",
    "MAX_BYTES",
    "MAX_ENTRIES",
    "TEXT_CACHE_ENV",
    "TextCache",
    "backbone_identity",
    "text_cache_dir",
    "text_cache_enabled",
]

log = logging.getLogger(__name__)

TEXT_CACHE_ENV = "CLIPOPT_TEXT_CACHE"
MAX_ENTRIES = 2000
MAX_BYTES = 64 * 2**20
ENTRY_SUFFIX = ".emb"
_MAGIC = b"clipoptT"
_LENGTH = struct.Struct("<I")
_FORMAT_VERSION = 1
_MAX_ENTRY_BYTES = 16 * 2**20  # far above any text embedding; a bigger file is not ours
_STALE_TEMP_S = 3600.0  # temporary files this old were left by a killed writer
_ON = {"", "1", "true", "yes", "on"}
_OFF = {"0", "false", "no", "off"}
_warned_unwritable = False


def text_cache_enabled() -> bool:
    """False when `CLIPOPT_TEXT_CACHE` is 0/false/no/off; a value that is neither on nor off is an error."""
    raw = os.environ.get(TEXT_CACHE_ENV, "").strip().lower()
    if raw in _ON:
        return True
    if raw in _OFF:
        return False
    raise ConfigError(f"{TEXT_CACHE_ENV}={raw!r}: use 0 to turn the text-embedding cache off, 1 to keep it on")


def text_cache_dir() -> Path:
    return user_cache_dir() / "text"


def backbone_identity(backbone: Any) -> dict[str, Any] | None:
    """What decides a backbone's text embeddings besides the text: its weights' sha256, model,
    activation and tokenizer, and the versions of the code that runs it. None for a backbone
    without a weights file (toy and test backbones): those are cached in memory only."""
    provenance = getattr(backbone, "provenance", None) or {}
    weights = provenance.get("weights")
    if not weights:
        return None
    try:
        weights_sha256 = file_sha256(Path(weights))
    except OSError:
        return None
    family = provenance.get("family")
    versions: dict[str, str] = {"torch": str(torch.__version__)}
    module = sys.modules.get(str(family))
    if module is not None:
        versions[str(family)] = str(getattr(module, "__version__", "unknown"))
    return {"family": family, "model": provenance.get("model"), "quick_gelu": provenance.get("quick_gelu"),
            "weights_sha256": weights_sha256, "tokenizer": _tokenizer_identity(provenance.get("tokenizer")),
            "versions": versions}


def _tokenizer_identity(tokenizer: Any) -> Any:
    """A tokenizer folder by the sha256 of its tokenizer files; a built-in tokenizer by its name."""
    if not isinstance(tokenizer, str) or not Path(tokenizer).is_dir():
        return tokenizer
    from clipstyler_opt.models.tokenizers import TOKENIZER_FILES

    folder = Path(tokenizer)
    return {name: file_sha256(folder / name) for name in TOKENIZER_FILES if (folder / name).is_file()}


def _canonical(key: Mapping[str, Any]) -> str:
    return json.dumps({"format": _FORMAT_VERSION, **key}, sort_keys=True, separators=(",", ":"))


class TextCache:
    """Entries in one folder (default: `text_cache_dir()`), bounded by count and total size."""

    def __init__(self, folder: Path | None = None, *, max_entries: int = MAX_ENTRIES,
                 max_bytes: int = MAX_BYTES) -> None:
        self.folder = Path(folder) if folder is not None else text_cache_dir()
        self.max_entries = max_entries
        self.max_bytes = max_bytes

    def path_for(self, key: Mapping[str, Any]) -> Path:
        return self.folder / (hashlib.sha256(_canonical(key).encode()).hexdigest() + ENTRY_SUFFIX)

    def load(self, key: Mapping[str, Any]) -> torch.Tensor | None:
        """The stored fp32 tensor (on the CPU), or None when absent or not a valid entry for `key`."""
        path = self.path_for(key)
        try:
            data = read_regular(path, _MAX_ENTRY_BYTES, follow_links=False)
        except OSError:
            return None
        tensor = _decode(data, _canonical(key))
        if tensor is None:
            log.debug("ignoring the invalid text-cache entry %s", path)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # most recently used: evicted last
        return tensor

    def save(self, key: Mapping[str, Any], tensor: torch.Tensor) -> bool:
        """Store `tensor` (exactly, as fp32) under `key`; False when it was not stored (non-finite
        values, or the folder is not writable: logged once)."""
        values = tensor.detach().to("cpu", torch.float32).contiguous()
        if not bool(torch.isfinite(values).all()):
            return False
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            data = _encode(values, _canonical(key))
            write_atomic(self.path_for(key), lambda fh: fh.write(data))
            self._evict()
        except (OSError, OutputError) as exc:
            global _warned_unwritable
            if not _warned_unwritable:
                _warned_unwritable = True
                log.warning("cannot write the text-embedding cache in %s (%s); texts will be encoded again next run",
                            self.folder, exc)
            return False
        return True

    def _evict(self) -> None:
        """Delete the least recently used entries beyond the bounds, and stale temporary files."""
        entries: list[tuple[int, str, int]] = []
        now = time.time()
        with os.scandir(self.folder) as listing:
            for item in listing:
                try:
                    info = item.stat(follow_symlinks=False)
                except OSError:
                    continue
                if item.name.endswith(ENTRY_SUFFIX):
                    entries.append((info.st_mtime_ns, item.name, info.st_size))
                elif item.name.endswith(".tmp") and now - info.st_mtime > _STALE_TEMP_S:
                    _unlink(self.folder / item.name)
        entries.sort()
        count, total = len(entries), sum(size for _, _, size in entries)
        for _, name, size in entries:
            if count <= self.max_entries and total <= self.max_bytes:
                break
            _unlink(self.folder / name)
            count, total = count - 1, total - size


def _encode(values: torch.Tensor, canonical_key: str) -> bytes:
    payload = values.numpy().astype("<f4", copy=False).tobytes()
    header = json.dumps({"key": canonical_key, "shape": list(values.shape),
                         "sha256": hashlib.sha256(payload).hexdigest()}).encode()
    return _MAGIC + _LENGTH.pack(len(header)) + header + payload


def _decode(data: bytes, canonical_key: str) -> torch.Tensor | None:
    start = len(_MAGIC) + _LENGTH.size
    if len(data) > _MAX_ENTRY_BYTES or len(data) < start or not data.startswith(_MAGIC):
        return None
    (header_length,) = _LENGTH.unpack_from(data, len(_MAGIC))
    try:
        header = json.loads(data[start:start + header_length])
    except ValueError:
        return None
    if not isinstance(header, dict) or header.get("key") != canonical_key:
        return None
    shape = header.get("shape")
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        return None
    payload = data[start + header_length:]
    if len(payload) != 4 * int(np.prod(shape, dtype=np.int64)) or \
            hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        return None
    values = torch.from_numpy(np.frombuffer(payload, dtype="<f4").astype(np.float32)).reshape(shape)
    return values if bool(torch.isfinite(values).all()) else None


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
