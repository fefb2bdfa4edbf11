"""An app serving the repair flow, its users, and a logged-in client helper."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

sys.path.insert(0, str(Path(__file__).resolve().parent))

from admin_flows import OtherFlow, RepairFlow  # noqa: E402
from admin_support import PASSWORD, Actions, csrf_token, user  # noqa: E402,F401
from app_support import in_app_context, make_test_app  # noqa: E402

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
    with in_app_context(make_app(db_url, WTF_CSRF_ENABLED=False)) as app:
        yield app


@pytest.fixture
def csrf_app(db_url: str) -> Iterator[Flask]:
    with in_app_context(make_app(db_url)) as app:
        yield app


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
