"""Headless Chromium for the browser tests: Debian's binary, driven by Playwright.

Playwright's own browser download cannot run here, so every browser test launches
``/usr/bin/chromium`` (or ``STEPTRACE_CHROMIUM``) with the flags that keep it quiet on a closed
network.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("STEPTRACE_CHROMIUM", "/usr/bin/chromium")
    if not Path(path).exists():
        pytest.fail(f"headless Chromium not found at {path}: run scripts/bootstrap.sh")
    return path


def launched_chromium() -> Iterator[Any]:
    """A Playwright ``Browser`` on Debian's Chromium, closed afterwards (use in a fixture)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
