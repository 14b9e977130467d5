"""Safe checkpoint reading: safetensors, or `torch.load(weights_only=True)`; nothing else is unpickled.

The format is decided by the file's first bytes, not its name. Every problem (a folder, an
empty, text or truncated file, a pickle of something other than tensors, keys that are not
strings) is a `WeightsError` whose one-line message names the file and what is wrong with it.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch

from clipstyler_opt.core.errors import WeightsError
from clipstyler_opt.core.files import describe_os_error, open_for_reading

__all__ = ["checkpoint_format", "describe_load_error", "load_state_dict", "weights_error"]

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format
_PICKLE_PROTOCOL = b"\x80"  # torch.save's legacy format starts with a pickle protocol opcode
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit
_EXAMPLES = 2  # keys quoted in a message


def weights_error(path: Path | str, problem: str) -> WeightsError:
    """The one error shape for a bad weights file: `cannot load weights from PATH: PROBLEM`."""
    return WeightsError(f"cannot load weights from {path}: {problem}")


def checkpoint_format(path: Path) -> str:
    """`"safetensors"` or `"torch"`, judged from the file's first bytes.

    Raises WeightsError for a missing path, a directory, an unreadable, empty or truncated
    file, and a file that is neither format (a text file, for instance).
    """
    path = Path(path)
    if path.is_dir():
        raise weights_error(path, "is a directory, not a file")
    try:
        with open_for_reading(path) as fh:  # a FIFO or device is refused, never waited on
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(64)
    except FileNotFoundError:
        raise weights_error(path, "no such file") from None
    except OSError as exc:
        raise weights_error(path, describe_os_error(exc)) from None
    if size == 0:
        raise weights_error(path, "the file is empty")
    if head.startswith(_ZIP_MAGIC) or head[:1] == _PICKLE_PROTOCOL:
        return "torch"
    if len(head) >= 9 and head[8:9] == b"{":
        header_length = struct.unpack("<Q", head[:8])[0]
        if 8 + header_length > size and header_length <= _MAX_SAFETENSORS_HEADER:
            raise weights_error(path, f"truncated safetensors file (its header alone needs {8 + header_length} "
                                      f"bytes, the file has {size})")
        return "safetensors"
    kind = "a text file" if _looks_like_text(head) else "unrecognised content"
    raise weights_error(path, f"{kind}, not a checkpoint (neither safetensors nor a PyTorch file)")


def _looks_like_text(head: bytes) -> bool:
    text = head.decode("utf-8", "ignore")  # "ignore": the 64 bytes may end inside a character
    return len(text.encode("utf-8")) >= len(head) - 3 and all(c.isprintable() or c in "\t\r\n" for c in text)


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A flat `{name: tensor}` dict from a safetensors or PyTorch file, on the CPU.

    A `{"state_dict": {...}}` wrapper is unwrapped and a DataParallel `module.` prefix removed.
    """
    path = Path(path)
    kind = checkpoint_format(path)
    try:
        if kind == "safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:  # a file object: given a path, torch.load picks the format from the name
            with open_for_reading(path) as fh:
                state = torch.load(fh, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors, zip, pickle and torch each raise their own types
        raise WeightsError(describe_load_error(path, exc)) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    _check_tensor_dict(path, state)
    return {key.removeprefix("module."): value for key, value in state.items()}


def _check_tensor_dict(path: Path, state: Any) -> None:
    if not isinstance(state, dict):
        raise weights_error(path, f"it holds {_kind(state)}, not a state dict of tensors")
    if not state:
        raise weights_error(path, "it holds an empty dict, not a state dict of tensors")
    for key, value in state.items():
        if not isinstance(key, str):
            raise weights_error(path, f"key {key!r} is {_kind(key)}, not a string; not a state dict of tensors")
        if not isinstance(value, torch.Tensor):
            raise weights_error(path, f"{key!r} holds {_kind(value)}, not a tensor; not a state dict of tensors")


def _kind(value: Any) -> str:
    name = type(value).__name__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


# torch's `load_state_dict(strict=True)` report: 'Missing key(s) in state_dict: "a", "b". ...'
_KEY_LISTS = {
    "missing": re.compile(r'Missing key\(s\) in state_dict: ((?:"[^"]*"(?:, )?)+)'),
    "unexpected": re.compile(r'Unexpected key\(s\) in state_dict: ((?:"[^"]*"(?:, )?)+)'),
}
_SIZE_MISMATCH = re.compile(r"size mismatch for ([^:\s]+):")


def describe_load_error(path: Path, exc: BaseException) -> str:
    """One line saying why `path` could not be loaded, for errors raised by any loader (ours,
    open_clip's). A file that is no checkpoint at all (a folder, text, truncated) is named as
    such, and torch's multi-line state-dict mismatch report becomes counts with the first keys."""
    try:
        checkpoint_format(Path(path))
    except WeightsError as problem:
        return str(problem)
    text = str(exc)
    mismatch = _summarise_mismatch(text)
    if mismatch:
        return str(weights_error(path, f"the checkpoint does not fit the model: {mismatch}; "
                                       "is it a checkpoint of another architecture?"))
    if "Weights only load failed" in text:  # torch's refusal; its advice to unpickle anyway is not ours
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        what = f" ({found[1]})" if found else ""
        return str(weights_error(path, f"it holds pickled objects other than tensors{what}, which are never "
                                       "unpickled"))
    if type(exc).__name__ == "SafetensorError":
        reason = "corrupt safetensors file"
    elif (isinstance(exc, (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, json.JSONDecodeError))
          or "PytorchStreamReader" in text):
        reason = "corrupt or truncated file"
    else:
        reason = type(exc).__name__
    first = (text.strip().splitlines() or [""])[0][:200]
    return str(weights_error(path, f"{reason}: {first}".rstrip(": ")))


def _summarise_mismatch(text: str) -> str | None:
    if "Error(s) in loading state_dict" not in text:
        return None
    found = {label: [key for keys in pattern.findall(text) for key in re.findall(r'"([^"]*)"', keys)]
             for label, pattern in _KEY_LISTS.items()}
    found["wrong shape"] = _SIZE_MISMATCH.findall(text)
    parts = [f"{len(keys)} {label} ({', '.join(keys[:_EXAMPLES])}{', ...' if len(keys) > _EXAMPLES else ''})"
             for label, keys in found.items() if keys]
    return "; ".join(parts) or None
