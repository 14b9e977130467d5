"""clipstyler_opt: text-driven image style transfer by per-image optimisation (CLIPstyler)."""

from .config import StyleConfig
from .engine import Progress, Result, Stylizer, stylize
from .errors import ClipoptError

__all__ = ["stylize", "Stylizer", "StyleConfig", "Result", "Progress", "ClipoptError"]
__version__ = "0.1.0"
