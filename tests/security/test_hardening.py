"""Input refused clearly and harmlessly; error pages; headers, cookies, the production key."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from security_support import client_for, dump, label_process, task_of

from webflow import create_app
from webflow.security import CSP


def test_json_bodies_are_refused_and_store_nothing(app: Flask) -> None:
    starter = client_for(app, "starter")
    before = dump()
    for body in ('{"amount": 5}', '{"amount": [1, 2]}', '{"amount": {"a": 1}}'):
        headers = {"Content-Type": "application/json", "X-CSRFToken": starter.token}
        response = starter.client.post("/flows/label/start/start/", data=body, headers=headers)
        assert response.status_code == 400 and "form-encoded" in response.get_data(as_text=True)
    assert dump() == before


def test_a_body_over_the_limit_is_413_and_stores_nothing(app: Flask) -> None:
    starter = client_for(app, "starter")
    before = dump()
    response = starter.post("/flows/label/start/start/", {"amount": "5", "pad": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 413 and "too large" in response.get_data(as_text=True)
    assert dump() == before


@pytest.mark.parametrize("url", ["/queue/?q=a%00b", "/flows/label/?q=%00", "/admin/?flow=%00"])
def test_nul_bytes_in_the_query_are_400(app: Flask, url: str) -> None:
    assert client_for(app, "super").get(url).status_code == 400


def test_nul_bytes_in_forms_are_400_and_store_nothing(app: Flask) -> None:
    person = client_for(app, None)
    assert person.post("/login", {"username": "owner\x00", "password": "x"}).status_code == 400
    starter = client_for(app, "starter")
    before = dump()
    assert starter.post("/flows/label/start/start/", {"amount": "5\x00"}).status_code == 400
    assert dump() == before


@pytest.mark.parametrize("big", [2**31, 2**63, 10**30])
def test_ids_beyond_the_databases_range_are_404(app: Flask, big: int) -> None:
    process = label_process("queued")
    confirm = task_of(process, "confirm")
    manager = client_for(app, "super")
    for url in (f"/flows/label/{big}/", f"/flows/label/{process.id}/confirm/{big}/",
                f"/flows/label/{big}/confirm/{confirm.id}/status/", f"/flows/label/{big}/cancel/"):
        assert manager.get(url).status_code == 404
    before = dump()
    assert manager.post(f"/flows/label/{process.id}/confirm/{big}/assign/").status_code == 404
    assert manager.post("/queue/", {"take": str(big)}, hx=True).status_code == 400
    assert manager.post("/queue/", {"task_id": [str(big), "²"]}, hx=True).status_code == 400
    assert dump() == before


def test_odd_user_ids_are_400(app: Flask) -> None:
    process = label_process("queued")
    confirm = task_of(process, "confirm")
    url = f"/flows/label/{process.id}/confirm/{confirm.id}/assign/"
    manager = client_for(app, "manager")
    before = dump()
    for value in ("²", "٣", str(2**63), "-1", "1e3", " "):
        assert manager.post(url, {"user_id": value}).status_code in (400, 403), value
    assert dump() == before


@pytest.mark.parametrize("query", ["page=99999999999999999999", "page=-3", "started_to=9999-12-31",
                                   "started_from=0001-01-01", "endpoint=x", "_method=POST",
                                   "_external=1&_scheme=javascript", "values=1&page=2", "sort=--created"])
def test_odd_query_strings_give_the_page(app: Flask, query: str) -> None:
    label_process("queued")
    person = client_for(app, "super")
    for path in ("/admin/", "/queue/", "/inbox/", "/archive/", "/flows/label/"):
        response = person.get(f"{path}?{query}")
        html = response.get_data(as_text=True)
        assert response.status_code == 200, (path, query)
        assert "javascript" not in html and "_external" not in html and "endpoint=x" not in html
    assert person.post(f"/queue/?{query}", {}).status_code == 303


@pytest.mark.parametrize("evil", ["/inbox/\r\nSet-Cookie: x=1", "/inbox/%0d%0aX: y", "//[", "/\t/evil.example"])
def test_next_with_control_characters_goes_home(app: Flask, evil: str) -> None:
    from urllib.parse import quote

    response = client_for(app, None).login("owner", next=quote(evil, safe=""))
    location = response.headers["Location"]
    assert response.status_code == 303 and location.startswith("/") and not location.startswith("//")
    assert "\n" not in location and "\r" not in location and "\t" not in location


# -- error pages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "url", "code"), [
    ("GET", "/logout", 405), ("GET", "/no/such/page", 404), ("POST", "/flows/label/1/cancel/", 403),
])
def test_errors_are_pages_in_the_site_look_and_messages_in_place_for_htmx(
        app: Flask, method: str, url: str, code: int) -> None:
    person = client_for(app, "worker")
    response = person.get(url) if method == "GET" else person.post(url, {})
    html = response.get_data(as_text=True)
    assert response.status_code in (code, 404) and 'class="wf-header"' in html and "wf-error-page" in html
    if code == 405:
        assert response.headers["Allow"]
    fragment = person.get(url, hx=True) if method == "GET" else person.post(url, {}, hx=True)
    body = fragment.get_data(as_text=True)
    assert fragment.headers.get("HX-Reswap") == "none" and "<html" not in body
    assert 'id="messages"' in body and "flash error" in body


def test_an_unexpected_error_is_a_500_page_without_details(db_url: str) -> None:
    from app_support import in_app_context
    from security_support import make_app

    app = make_app(db_url, PROPAGATE_EXCEPTIONS=False)

    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError("secret detail /srv/app.py")

    with in_app_context(app):
        person = client_for(app, "worker")
        for hx in (False, True):
            response = person.get("/boom", hx=hx)
            html = response.get_data(as_text=True)
            assert response.status_code == 500 and "secret detail" not in html
            assert "Something went wrong on our side" in html


def test_htmx_answers_for_people_not_logged_in_redirect_the_page(app: Flask) -> None:
    response = app.test_client().get("/inbox/", headers={"HX-Request": "true"})
    assert response.status_code == 401 and response.headers["HX-Redirect"].startswith("/login?next=")


# -- headers and cookies --------------------------------------------------------------------------


def test_every_answer_carries_the_security_headers(app: Flask) -> None:
    person = client_for(app, "worker")
    for response in (person.get("/inbox/"), person.get("/nope"), app.test_client().get("/login"),
                     app.test_client().get("/static/css/webflow.css")):
        assert response.headers["Content-Security-Policy"] == CSP
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP
    assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP and "unsafe" not in CSP


def test_pages_have_no_inline_script_or_style(app: Flask) -> None:
    """What the CSP would block: each page's scripts and styles are files of our own."""
    process = label_process("job_error")
    job = task_of(process, "print_label")
    person = client_for(app, "super")
    for url in ("/inbox/", "/queue/", "/flows/", "/flows/label/", "/flows/label/start/start/", "/admin/",
                f"/flows/label/{process.id}/", f"/flows/label/{process.id}/print_label/{job.id}/", "/login"):
        html = person.get(url).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), url
        assert "<style" not in html and not re.search(r"<[^>]+\sstyle=", html), url
        assert not re.search(r"<[^>]+\son[a-z]+=", html) and "javascript:" not in html, url


def test_cookies_are_httponly_samesite_and_secure_behind_https(db_url: str) -> None:
    from app_support import in_app_context
    from security_support import make_app

    with in_app_context(make_app(db_url, WEBFLOW_PROXY_FIX=1)) as app:
        plain = client_for(app, None).login("owner")
        cookie = plain.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
        person = client_for(app, None)
        page = person.client.get("/login", headers={"X-Forwarded-Proto": "https"}, base_url="https://localhost")
        from web_support import csrf_token

        secure = person.client.post("/login", data={"username": "owner", "password": "secret",
                                                    "csrf_token": csrf_token(page.get_data(as_text=True))},
                                    headers={"X-Forwarded-Proto": "https", "Referer": "https://localhost/login"},
                                    base_url="https://localhost")
        assert secure.status_code == 303
        assert "Secure" in secure.headers["Set-Cookie"] and "HttpOnly" in secure.headers["Set-Cookie"]
        assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
        # Over plain HTTP from the proxy, its X-Forwarded-Proto says the browser used HTTPS.
        proxied = app.test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
        assert "Strict-Transport-Security" in proxied.headers and "Secure" in proxied.headers["Set-Cookie"]


def test_forwarded_headers_count_only_with_a_proxy_configured(app: Flask) -> None:
    forged = app.test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in forged.headers and "Secure" not in forged.headers["Set-Cookie"]


def test_the_production_app_needs_a_secret_key(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'prod.sqlite'}"
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("WEBFLOW_ENV", "production")
    with pytest.raises(RuntimeError, match="SECRET_KEY is not set"):
        create_app()
    monkeypatch.setenv("SECRET_KEY", "a long random value")
    assert create_app().config["SECRET_KEY"] == "a long random value"
    monkeypatch.delenv("SECRET_KEY")
    monkeypatch.setenv("WEBFLOW_ENV", "development")  # as `flask run` on a laptop
    assert create_app().config["SECRET_KEY"]


def test_gunicorn_counts_as_production(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from webflow import config

    monkeypatch.setitem(sys.modules, "gunicorn", types.ModuleType("gunicorn"))
    assert config.is_production({"WEBFLOW_ENV": ""})
    assert not config.is_production({"WEBFLOW_ENV": "development"})
    monkeypatch.delitem(sys.modules, "gunicorn")
    assert not config.is_production({"WEBFLOW_ENV": ""})
