"""Logging in and out; every page needs a login."""

from __future__ import annotations

import pytest
from web_support import AuthActions

PAGES = ["/inbox/", "/queue/", "/archive/", "/flows/", "/flows/hello_world/", "/flows/hello_world/start/start/"]


@pytest.mark.parametrize("url", PAGES)
def test_pages_send_strangers_to_the_login(app, url: str) -> None:  # type: ignore[no-untyped-def]
    response = app.test_client().get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_login_goes_to_next_on_this_site_only(app) -> None:  # type: ignore[no-untyped-def]
    person = AuthActions(app)
    assert person.login("alice", "wrong").status_code == 401
    response = person.login("alice", next="/archive/")
    assert response.status_code == 303 and response.headers["Location"] == "/archive/"
    for evil in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        other = AuthActions(app)
        assert other.login("alice", next=evil).headers["Location"] == "/"


def test_root_redirects_to_the_inbox(app) -> None:  # type: ignore[no-untyped-def]
    assert AuthActions(app, "alice").client.get("/").headers["Location"] == "/inbox/"


def test_logout_is_a_post_with_a_token(app) -> None:  # type: ignore[no-untyped-def]
    alice = AuthActions(app, "alice")
    assert alice.post("/logout", csrf=False).status_code == 400
    assert alice.client.get("/inbox/").status_code == 200
    assert alice.post("/logout").status_code == 303
    assert alice.client.get("/inbox/").status_code == 302
