"""Login: throttled, the same work for unknown names, sessions that end when they should."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from app_support import in_app_context
from flask import Flask
from security_support import user
from web_support import AuthActions

from webflow import db


@pytest.fixture
def limited(db_url: str):  # type: ignore[no-untyped-def]
    """An app that allows 3 failed logins a minute (per address and per username)."""
    from app_support import make_test_app
    from security_support import USERS
    from web_flows import LabelFlow

    app = make_test_app(db_url, [LabelFlow], USERS, "secret", WEBFLOW_LOGIN_LIMIT="3 per minute")
    with in_app_context(app):
        yield app


def test_failed_logins_are_throttled_even_the_right_password_then(limited: Flask) -> None:
    person = AuthActions(limited)
    for _ in range(3):
        assert person.login("owner", "wrong").status_code == 401
    refused = person.login("owner")
    assert refused.status_code == 429 and "Too many attempts" in refused.get_data(as_text=True)
    assert refused.headers.get("Retry-After")
    assert person.login("worker").status_code == 429  # the same address too


def test_successful_logins_do_not_count(limited: Flask) -> None:
    for _ in range(5):
        assert AuthActions(limited).login("owner").status_code == 303


def test_throttling_counts_in_redis_when_redis_url_is_set(db_url: str, redis_url: str) -> None:
    from app_support import make_test_app
    from redis import Redis
    from security_support import USERS
    from web_flows import LabelFlow

    prefix = f"wf-test-{uuid.uuid4().hex[:8]}"
    app = make_test_app(db_url, [LabelFlow], USERS, "secret", WEBFLOW_LOGIN_LIMIT="2 per minute",
                        REDIS_URL=redis_url, WEBFLOW_QUEUE_PREFIX=prefix)
    redis = Redis.from_url(redis_url)
    try:
        with in_app_context(app):
            person = AuthActions(app)
            assert person.login("owner", "wrong").status_code == 401
            assert person.login("owner", "wrong").status_code == 401
            assert person.login("owner").status_code == 429
            assert list(redis.scan_iter(f"*{prefix}-limits*"))  # counted where every process sees it
    finally:
        for key in redis.scan_iter(f"*{prefix}*"):
            redis.delete(key)


def test_unknown_usernames_cost_one_password_hash_like_known_ones(app: Flask, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls: list[str] = []
    real = hashlib.pbkdf2_hmac

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "pbkdf2_hmac", counting)
    for name in ("owner", "nobody-has-this-name"):
        calls.clear()
        assert AuthActions(app).login(name, "wrong").status_code == 401
        assert calls == ["sha256"], name  # one full PBKDF2 run either way


def test_a_cookie_copied_before_logout_no_longer_works(app: Flask) -> None:
    person = AuthActions(app)
    assert person.login("owner").status_code == 303
    copy = app.test_client()
    copy.set_cookie("session", person.client.get_cookie("session").value)  # type: ignore[union-attr]
    assert copy.get("/inbox/").status_code == 200
    person.get("/inbox/")
    assert person.post("/logout").status_code == 303
    assert copy.get("/inbox/").status_code == 302  # to the login form


def test_a_password_change_ends_every_session(app: Flask) -> None:
    person = AuthActions(app)
    assert person.login("owner").status_code == 303
    owner = user("owner")
    owner.set_password("a new secret")
    db.session.commit()
    assert person.client.get("/inbox/").status_code == 302
    assert AuthActions(app).login("owner", "a new secret").status_code == 303


def test_the_csrf_token_changes_at_login(app: Flask) -> None:
    person = AuthActions(app)
    person.get("/login")
    with person.client.session_transaction() as session:
        before = session.get("csrf_token")
    assert before
    person.login("owner")
    person.get("/inbox/")
    with person.client.session_transaction() as session:
        after = session.get("csrf_token")
    assert after and after != before


def test_users_from_before_session_tokens_get_one_at_login(app: Flask) -> None:
    owner = user("owner")
    owner.session_token = None
    db.session.commit()
    person = AuthActions(app)
    assert person.login("owner").status_code == 303 and person.client.get("/inbox/").status_code == 200
    db.session.expire_all()
    assert user("owner").session_token
