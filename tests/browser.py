"""Headless Chromium for page tests: the system browser, driven by Playwright's sync API.

Playwright's own browser download needs the internet, so the browser is the system's
Chromium (Debian: `apt-get install chromium`). Without it, or without Playwright, the tests
are skipped locally and fail under CI=true.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = ["CHROMIUM_ARGS", "PageProblems", "chromium_executable", "launched_browser", "watch"]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


def chromium_executable() -> str:
    """The system Chromium's path; skips (fails under CI=true) when there is none."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").is_file():
        found = "/usr/bin/chromium"
    if found is None:
        _unavailable("no chromium executable (Debian/Ubuntu: apt-get install chromium)")
    return str(found)


@contextmanager
def launched_browser() -> Iterator[Any]:
    """One headless Chromium for a test module (Playwright gives it a fresh temporary profile);
    each test should open its own context."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install -e '.[dev]')")
    executable = chromium_executable()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageProblems:
    """Console errors and uncaught exceptions seen by a page."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.console_errors or self.page_errors)


def watch(page: Any) -> PageProblems:
    problems = PageProblems()

    def on_console(message: Any) -> None:
        if message.type == "error":
            problems.console_errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.page_errors.append(str(error)))
    return problems
