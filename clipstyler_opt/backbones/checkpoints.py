"""Safe checkpoint reading: safetensors, or `torch.load(weights_only=True)`; nothing else is unpickled."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from ..errors import WeightsError

__all__ = ["load_state_dict", "describe_load_error"]


def describe_load_error(path: Path, exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"cannot load weights from {path}: {type(exc).__name__}: {first}"


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise WeightsError(describe_load_error(path, exc)) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"cannot load weights from {path}: not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}
