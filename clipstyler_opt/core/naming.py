"""Safe file names derived from prompts and inputs, and how names are shown in one-line messages."""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "NAME_MAX",
    "SIDECAR_SUFFIX",
    "default_output_path",
    "fit_name",
    "frames_folder",
    "name_bytes",
    "numbered_paths",
    "partial_output_path",
    "printable",
    "prompt_slug",
    "slugify",
]

MAX_SLUG = 48
NAME_MAX = 255  # bytes in one file name on common local file systems (ext4, xfs, btrfs, APFS, tmpfs)
SIDECAR_SUFFIX = ".json"


def slugify(text: str, max_length: int = MAX_SLUG) -> str:
    """ASCII letters, digits and single dashes only; never empty, never a path component like '..'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "style"


def prompt_slug(prompt: str) -> str:
    """A folder name for a prompt: readable, and unique per prompt thanks to a short hash."""
    digest = hashlib.sha256(prompt.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{slugify(prompt)}-{digest}"


def name_bytes(name: str) -> int:
    """Length of a file name as the operating system stores it (non-UTF-8 bytes included)."""
    return len(os.fsencode(name))


def fit_name(stem: str, tail: str, reserve: str = SIDECAR_SUFFIX) -> str:
    """`stem + tail`, with characters dropped from the end of `stem` until the name plus
    `reserve` (room for a sidecar's ".json") fits in NAME_MAX bytes."""
    while stem and name_bytes(stem + tail + reserve) > NAME_MAX:
        stem = stem[:-1]
    return stem + tail


def default_output_path(image: Path, prompt: str, folder: Path = Path("."), suffix: str = ".png") -> Path:
    """`<folder>/<input stem>-<prompt slug><suffix>`: the first name tried for a default output.
    It is not checked here: saving claims it, or the next of `numbered_paths`, atomically."""
    return folder / fit_name(f"{slugify(image.stem, 40)}-{slugify(prompt)}", suffix)


def numbered_paths(first: Path) -> Iterator[Path]:
    """`first`, then `<stem>-2<ext>`, `<stem>-3<ext>`, ...: each name fits with its sidecar."""
    yield first
    counter = 2
    while True:
        yield first.with_name(fit_name(first.stem, f"-{counter}{first.suffix}"))
        counter += 1


def partial_output_path(output: Path) -> Path:
    """Where an interrupted run's latest image goes: `<output stem>.partial<ext>`."""
    return output.with_name(fit_name(output.stem, f".partial{output.suffix}"))


def frames_folder(output: Path, number: int = 1) -> Path:
    """Where --save-every frames go: `<output stem>_frames` beside the output (`_frames-N` for
    the N-th candidate when earlier ones are taken)."""
    tail = "_frames" if number == 1 else f"_frames-{number}"
    return output.with_name(fit_name(output.stem, tail, reserve=""))


def printable(text: str) -> str:
    """`text` for a one-line message: newlines, other control characters and bytes that are not
    UTF-8 (surrogate escapes in file names) are shown as backslash escapes."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
