"""Output names of a batch: `<path below INPUT>.<format>`, valid and unique whatever the input names.

Input names are whatever bytes the file system holds. Output names are always valid UTF-8
without control characters: a byte that is not UTF-8 becomes `%XX` (`caf\\xe9.jpg` ->
`caf%E9.png`), and so does a control character such as a newline (`%0A`). A name too long
to leave room for its sidecar is cut and ends in a hash of the whole name. Names that would
still coincide (also when they differ only in case) are told apart in stages.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from clipstyler_opt.batch.discovery import InputFile
from clipstyler_opt.core.naming import NAME_MAX, SIDECAR_SUFFIX, fit_name, name_bytes, slugify

__all__ = ["fs_bytes", "output_names", "short_hash"]

_ESCAPED_BYTES = range(0xDC80, 0xDD00)  # how Python spells a file name's non-UTF-8 bytes
_SURROGATES = range(0xD800, 0xE000)


def fs_bytes(text: str) -> bytes:
    """The bytes a path string stands for on a POSIX file system, the same on every machine."""
    return text.encode("utf-8", "surrogateescape")


def short_hash(text: str) -> str:
    return hashlib.sha256(fs_bytes(text)).hexdigest()[:8]


def _escape(char: str) -> str:
    code = ord(char)
    if code in _ESCAPED_BYTES:
        return f"%{code - 0xDC00:02X}"
    if code in _SURROGATES or unicodedata.category(char) == "Cc":
        return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    return char


def _escaped(text: str) -> str:
    return "".join(map(_escape, text))


def _fitted(component: str, reserve: str) -> str:
    """`component`, cut so that `component + reserve` fits in one file name; a cut name ends
    in a hash of the whole one, so different long names stay different."""
    if name_bytes(component + reserve) <= NAME_MAX:
        return component
    path = PurePosixPath(component)
    return fit_name(path.stem, f"~{short_hash(component)}{path.suffix}", reserve)


def _fitted_path(name: PurePosixPath) -> PurePosixPath:
    *folders, last = name.parts
    return PurePosixPath(*(_fitted(part, "") for part in folders), _fitted(last, SIDECAR_SUFFIX))


Rename = Callable[[InputFile, PurePosixPath, list[InputFile]], PurePosixPath]


def _resolve_collisions(names: dict[InputFile, PurePosixPath], rename: Rename) -> None:
    groups: dict[str, list[InputFile]] = defaultdict(list)
    for item, name in names.items():
        groups[str(name).casefold()].append(item)  # case-insensitive file systems exist
    for group in groups.values():
        if len(group) > 1:
            for item in group:
                names[item] = rename(item, names[item], group)


def _keep_source_suffix(item: InputFile, name: PurePosixPath, group: list[InputFile]) -> PurePosixPath:
    if len({other.relative for other in group}) == 1:
        return name  # same relative path under different roots: the source suffix cannot help
    return name.with_name(_escaped(item.relative.name) + name.suffix)


def _under_root_name(item: InputFile, name: PurePosixPath, group: list[InputFile]) -> PurePosixPath:
    return PurePosixPath(slugify(Path(os.path.abspath(item.root)).name, 40)) / name


def _with_path_hash(item: InputFile, name: PurePosixPath, group: list[InputFile]) -> PurePosixPath:
    return name.with_name(f"{name.stem}-{short_hash(os.path.abspath(item.path))}{name.suffix}")


def output_names(inputs: Iterable[InputFile], suffix: str) -> dict[InputFile, PurePosixPath]:
    """`<relative path>` with the output suffix, cleaned; made unique when two inputs would share a name."""
    names = {item: PurePosixPath(*map(_escaped, item.relative.parts)).with_suffix(suffix) for item in inputs}
    _resolve_collisions(names, _keep_source_suffix)  # cat.jpg + cat.png -> cat.jpg.png + cat.png.png
    _resolve_collisions(names, _under_root_name)  # a/x.jpg + b/x.jpg -> a/x.png + b/x.png
    _resolve_collisions(names, _with_path_hash)  # anything still equal, e.g. caf%E9.jpg and caf\xe9.jpg
    return {item: _fitted_path(name) for item, name in names.items()}
