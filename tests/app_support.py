"""The app on a fresh database with given flows and users: shared by the web and admin tests."""

from __future__ import annotations

import contextvars
from functools import cache
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from webflow import create_app, db
from webflow.models import User


class IsolatedClient(FlaskClient):
    """A client whose requests get their own app context (own ``g`` and session), like a server."""

    def open(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return contextvars.Context().run(super().open, *args, **kwargs)


@cache
def password_hash(password: str) -> str:
    """Hashed once per password: PBKDF2 is slow on purpose."""
    user = User()
    user.set_password(password)
    return user.password_hash  # type: ignore[return-value]


def make_test_app(db_url: str, flows: list[Any], users: dict[str, list[str]], password: str,
                  **config: Any) -> Flask:
    """An app serving ``flows`` on a fresh database, with ``users`` (name -> permissions)."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": db_url, "WEBFLOW_INLINE_JOBS": "inline",
                      "WEBFLOW_FLOWS": flows, "SECRET_KEY": "test", **config})
    with app.app_context():
        db.create_all()
        for name, perms in users.items():
            db.session.add(User(username=name, permissions=perms, password_hash=password_hash(password)))
        db.session.commit()
    app.test_client_class = IsolatedClient
    return app
