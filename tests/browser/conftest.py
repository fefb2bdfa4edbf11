"""Headless Debian Chromium through Playwright, for every browser test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _chromium(**options: Any) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("WEBFLOW_REQUIRE_SERVICES"):
            pytest.fail(f"{CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, **options)
        yield chromium
        chromium.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    """A Chromium browser (missing Chromium: skipped, or a failure where services are required)."""
    yield from _chromium()


@pytest.fixture(scope="module")
def module_browser() -> Iterator[Any]:
    """One Chromium for a whole module: its tests reuse pages instead of starting browsers."""
    yield from _chromium()


@pytest.fixture
def bfcache_browser() -> Iterator[Any]:
    """Chromium with its back/forward cache on, as people have it (Playwright turns it off)."""
    yield from _chromium(ignore_default_args=["--disable-back-forward-cache"])
