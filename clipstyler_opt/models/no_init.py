"""Skip the random initialisation of a model whose every weight is about to be loaded.

open_clip builds a model with random weights, then overwrites all of them from the checkpoint
(strictly: a missing or extra key is an error). The random draws cost ~0.8 s for ViT-B/32 on a
2-core CPU, a fifth of its loading time. Inside `initialisation_skipped()`, torch.nn.init's
functions leave tensors as they are, in the calling thread only; other threads are unaffected.
Buffers that are computed rather than drawn (the text tower's causal mask) are still computed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.nn import init

__all__ = ["INIT_FUNCTIONS", "initialisation_skipped"]

INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                  "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
                  "sparse_")
_lock = threading.RLock()  # a nested use in the same thread restores what it found


def _skipping_in(owner: int, original: Callable[..., Any]) -> Callable[..., Any]:
    def maybe_skip(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == owner:
            return tensor
        return original(tensor, *args, **kwargs)
    return maybe_skip


@contextmanager
def initialisation_skipped() -> Iterator[None]:
    """Only for building a model whose weights are then all loaded strictly."""
    with _lock:
        owner = threading.get_ident()
        originals = {name: getattr(init, name) for name in INIT_FUNCTIONS if hasattr(init, name)}
        for name, original in originals.items():
            setattr(init, name, _skipping_in(owner, original))
        try:
            yield
        finally:
            for name, original in originals.items():
                setattr(init, name, original)
