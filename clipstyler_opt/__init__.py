"""clipstyler_opt: text-driven image style transfer by per-image optimisation (CLIPstyler).

The API is imported on first use, so that `clipopt` can check a command line (and `import
clipstyler_opt.core.config` stays light) without loading torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clipstyler_opt.core.config import StyleConfig
    from clipstyler_opt.core.errors import ClipoptError
    from clipstyler_opt.run.engine import Progress, Result, Stylizer, stylize

__all__ = ["ClipoptError", "Progress", "Result", "StyleConfig", "Stylizer", "stylize"]
__version__ = "0.1.0"
_HOMES = {"stylize": "run.engine", "Stylizer": "run.engine", "Result": "run.engine", "Progress": "run.engine",
          "StyleConfig": "core.config", "ClipoptError": "core.errors"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
