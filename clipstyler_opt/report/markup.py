"""Safe text for HTML and SVG, number formatting, and filling the page templates."""

from __future__ import annotations

import contextlib
import html
import json
import math
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

__all__ = [
    "clean_text",
    "escape",
    "fill_template",
    "format_number",
    "format_value",
    "read_template",
    "script_json",
]

_SURROGATES = re.compile("[\ud800-\udfff]")
_PLACEHOLDER = re.compile(r"@@([A-Z_]+)@@")


def clean_text(value: object) -> str:
    """`value` as valid Unicode: bytes smuggled in as surrogate escapes (undecodable file names)
    are decoded as UTF-8 where they can be, and anything still invalid becomes U+FFFD."""
    text = str(value)
    if not _SURROGATES.search(text):
        return text
    with contextlib.suppress(UnicodeEncodeError):  # lone surrogates that are not escaped bytes
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _SURROGATES.sub("\ufffd", text)


def escape(value: object) -> str:
    """Text for HTML/SVG element content and quoted attribute values."""
    return html.escape(clean_text(value), quote=True)


def format_number(value: float | None, digits: int = 4) -> str:
    """`digits` significant digits; "unavailable" for None and non-finite values."""
    if value is None or not math.isfinite(value):
        return "unavailable"
    return f"{value:.{digits}g}"


def format_value(value: Any) -> str:
    """A setting's value as a short label: 50.0 -> "50", 0.0005 -> "0.0005", None -> "none"."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.10g}"
    if value is None:
        return "none"
    return clean_text(value)


def script_json(data: Any) -> str:
    """JSON that is safe inside a <script> element: no "</script>", no "<!--", ASCII only."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def read_template(name: str) -> str:
    """A file from the package's templates folder."""
    return resources.files(__package__).joinpath("templates").joinpath(name).read_text(encoding="utf-8")


def fill_template(template: str, values: Mapping[str, str]) -> str:
    """Replace every `@@NAME@@` in one pass (inserted text is never scanned again)."""
    def substitute(match: re.Match[str]) -> str:
        try:
            return values[match.group(1)]
        except KeyError:
            raise KeyError(f"template placeholder @@{match.group(1)}@@ has no value") from None

    return _PLACEHOLDER.sub(substitute, template)
