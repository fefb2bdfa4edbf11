"""Fixtures of the web tests: the app on a fresh database and people logged in to it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from webflow import db

sys.path.insert(0, str(Path(__file__).resolve().parent))

from web_support import AuthActions, make_app  # noqa: E402


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    """The app with CSRF protection on, as in production."""
    app = make_app(db_url)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def people(app: Flask):  # type: ignore[no-untyped-def]
    """``people("alice")``: that person, logged in (one browser each)."""
    logged_in: dict[str, AuthActions] = {}

    def person(username: str) -> AuthActions:
        if username not in logged_in:
            logged_in[username] = AuthActions(app).enter_as(username)
        return logged_in[username]

    return person
