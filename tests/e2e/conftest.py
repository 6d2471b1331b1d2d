"""Browser end-to-end tests: real JupyterLab servers driven by Playwright with Debian's chromium.

``scripts/install-browser`` installs both (chromium from apt, the playwright package into .venv;
Playwright's own browser download is not available here). Without them these tests are skipped.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CS3COLLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"

_missing = []
try:
    import jupyter_server  # noqa: F401
except ImportError:
    _missing.append("the 'jupyter' extra")
try:
    import playwright  # noqa: F401
except ImportError:
    _missing.append("playwright (scripts/install-browser)")
if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
    _missing.append(f"{CHROMIUM} (scripts/install-browser)")
if _missing:
    collect_ignore_glob = ["test_*.py"]


def pytest_report_header(config: pytest.Config) -> str | None:
    return f"e2e: skipped, missing {', '.join(_missing)}" if _missing else None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
