"""Safe file names derived from prompts and inputs."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

__all__ = ["slugify", "prompt_slug", "default_output_path"]

MAX_SLUG = 48


def slugify(text: str, max_length: int = MAX_SLUG) -> str:
    """ASCII letters, digits and single dashes only; never empty, never a path component like '..'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "style"


def prompt_slug(prompt: str) -> str:
    """A folder name for a prompt: readable, and unique per prompt thanks to a short hash."""
    digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:8]
    return f"{slugify(prompt)}-{digest}"


def default_output_path(image: Path, prompt: str, folder: Path = Path("."), suffix: str = ".png") -> Path:
    """`<folder>/<input stem>-<prompt slug>.png`, numbered rather than overwriting an existing file."""
    base = f"{slugify(image.stem, 40)}-{slugify(prompt)}"
    candidate = folder / f"{base}{suffix}"
    counter = 1
    while candidate.exists():
        counter += 1
        candidate = folder / f"{base}-{counter}{suffix}"
    return candidate
