"""Fixtures of the web tests: the app on a fresh database and people logged in to it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app_support import in_app_context  # noqa: E402
from web_support import AuthActions, make_app  # noqa: E402


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    """The app with CSRF protection on, as in production."""
    with in_app_context(make_app(db_url)) as app:
        yield app


@pytest.fixture
def people(app: Flask):  # type: ignore[no-untyped-def]
    """``people("alice")``: that person, logged in (one browser each)."""
    logged_in: dict[str, AuthActions] = {}

    def person(username: str) -> AuthActions:
        if username not in logged_in:
            logged_in[username] = AuthActions(app).enter_as(username)
        return logged_in[username]

    return person
