"""An app serving the repair flow, its users, and a logged-in client helper."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from webflow import db

sys.path.insert(0, str(Path(__file__).resolve().parent))

from admin_flows import OtherFlow, RepairFlow  # noqa: E402
from admin_support import PASSWORD, Actions, csrf_token, user  # noqa: E402,F401
from app_support import make_test_app  # noqa: E402

USERS = {
    "manager": ["repair.view", "repair.manage", "repair.can_review"],
    "clerk": ["repair.view", "repair.can_review"],
    "clerk2": ["repair.view", "repair.can_review"],
    "viewer": ["repair.view"],
    "outsider": ["other.view", "other.manage", "other.can_work"],
}


def make_app(db_url: str, **config: Any) -> Flask:
    """An app on a fresh database with the repair flows and their users."""
    return make_test_app(db_url, [RepairFlow, OtherFlow], USERS, PASSWORD, **config)


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    """The app, with CSRF off (tests of CSRF itself use ``csrf_app``)."""
    app = make_app(db_url, WTF_CSRF_ENABLED=False)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def csrf_app(db_url: str) -> Iterator[Flask]:
    app = make_app(db_url)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()




@pytest.fixture
def login(app: Flask):  # type: ignore[no-untyped-def]
    """``login("manager")`` gives a test client logged in as that user (one per user)."""
    clients: dict[str, FlaskClient] = {}

    def login(username: str) -> FlaskClient:
        if username not in clients:
            clients[username] = app.test_client()
            Actions(clients[username]).login(username)
        return clients[username]

    return login
