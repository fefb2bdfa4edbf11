"""Helpers the admin tests share: the CSRF token of a page, a person's actions, users."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from webflow import db
from webflow.models import User

PASSWORD = "secret"


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on the page."""
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


class Actions:
    """What a person does in the browser: log in, open pages, press buttons."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def login(self, username: str) -> Actions:
        page = self.client.get("/login").get_data(as_text=True)
        data = {"username": username, "password": PASSWORD}
        if 'name="csrf_token"' in page:
            data["csrf_token"] = csrf_token(page)
        response = self.client.post("/login", data=data)
        assert response.status_code in (302, 303), response.get_data(as_text=True)
        return self


def user(name: str) -> User:
    """The test user of that name."""
    return db.session.scalar(db.select(User).where(User.username == name))
