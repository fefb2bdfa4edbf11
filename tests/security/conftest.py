"""Fixtures of the security tests: the app on a fresh database with one user of each kind."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app_support import in_app_context  # noqa: E402
from security_support import make_app  # noqa: E402


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    """The app with CSRF protection on, as in production."""
    with in_app_context(make_app(db_url)) as app:
        yield app


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[Flask]:
    """The same app on SQLite alone, for the long permission matrix."""
    with in_app_context(make_app(f"sqlite:///{tmp_path / 'matrix.sqlite'}")) as app:
        yield app
