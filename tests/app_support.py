"""The app on a fresh database with given flows and users: shared by the web and admin tests."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from webflow import create_app, db
from webflow.models import User

#: Where the browser tests save the screenshots the README shows.
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


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


def make_test_app(db_url: str, flows: list[Any] | None, users: dict[str, list[str]], password: str,
                  **config: Any) -> Flask:
    """An app serving ``flows`` (None: the demo flows) on a fresh database, with ``users``
    (name -> permissions)."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": db_url, "WEBFLOW_INLINE_JOBS": "inline",
                      "WEBFLOW_FLOWS": flows, "SECRET_KEY": "test", **config})
    with app.app_context():
        db.create_all()
        for name, perms in users.items():
            db.session.add(User(username=name, permissions=perms, password_hash=password_hash(password)))
        db.session.commit()
    app.test_client_class = IsolatedClient
    return app


@contextmanager
def in_app_context(app: Flask) -> Iterator[Flask]:
    """The app's context for a test; its sessions and pool are closed afterwards."""
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """The app served on 127.0.0.1 (a free port) from a thread; its base URL."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(5)
