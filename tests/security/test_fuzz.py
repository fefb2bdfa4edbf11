"""Random and malformed requests to every endpoint, on SQLite and PostgreSQL (hypothesis),
and a sweep of every value that broke a page before through every query key and form field.

Whatever the path parts, query string, body, content type, headers and user: never a 500
(the test app propagates exceptions, so one would fail the test), and a refusal changes no
row. CSRF is off here so that requests reach the views (its own tests are in tests/web).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from app_support import in_app_context
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from security_support import KINDS, STATES, dump, label_process, make_app, task_of
from web_support import AuthActions

from webflow.models import Process

FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

NASTY = ["", "0", "-1", "²", "٣", "1e9", str(2**31), str(2**63), str(10**40), "\x00", "a\x00b", "%00",
         "..", "/", "\r\n", "<script>", "' OR 1=1 --", "9999-12-31", "0001-01-01", "2026-02-30",
         "x" * 300, "null", "[]", "{}", "true", "endpoint", "_external", "label", "confirm", "assign"]
KEYS = ["page", "take", "task_id", "user_id", "q", "sort", "flow", "status", "started_from",
        "started_to", "has_error", "next", "endpoint", "_method", "_external", "_scheme", "_anchor",
        "values", "amount", "username", "password", "approved", "text", "csrf_token", "flow_label"]
# The values that broke things before, or anything at all (hypothesis likes NUL and odd digits).
text = st.one_of(st.sampled_from(NASTY), st.text(max_size=40))
values = st.one_of(text, st.integers(min_value=-(2**70), max_value=2**70).map(str))
keys = st.one_of(st.sampled_from(KEYS), st.sampled_from(KEYS), st.sampled_from(KEYS), st.text(max_size=8))
pairs = st.lists(st.tuples(keys, values), max_size=8)
#: The pages that read a query string (lists, filters, pagers).
QUERY_PAGES = ["/inbox/", "/queue/", "/archive/", "/flows/", "/flows/label/", "/admin/", "/login",
               "/flows/label/start/start/"]


@pytest.fixture
def fuzz_app(db_url: str) -> Iterator[tuple[Flask, dict[str, Process]]]:
    with in_app_context(make_app(db_url, WTF_CSRF_ENABLED=False)) as app:
        yield app, {state: label_process(state) for state in STATES}


def path_for(app: Flask, rule: str, targets: dict[str, Process], real: bool, parts: list[str]) -> str:
    """The rule's path with each <part> a real value of the world, or one of ``parts``."""
    state = list(STATES)[len(parts) % len(STATES)]
    process = targets[state]
    task = task_of(process, STATES[state])
    real_values = {"flow_label": "label", "process_id": process.id, "node": task.node_name,
                   "task_id": task.id, "transition": "assign", "filename": "css/webflow.css"}
    pieces = iter(parts)

    def fill(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[-1]
        if real and name in real_values:
            return str(real_values[name])
        return quote(next(pieces, "x"), safe="")

    return re.sub(r"<([^>]+)>", fill, rule)


def send(app: Flask, kind: str | None, method: str, path: str, query: list[tuple[str, str]],
         body: Any, content_type: str | None, headers: dict[str, str]) -> Any:
    person = AuthActions(app)
    if kind is not None:
        person.enter_as(kind)
    if content_type is not None:
        headers = {**headers, "Content-Type": content_type}
    return person.client.open(path, method=method, query_string=query, data=body, headers=headers)


requests = st.fixed_dictionaries({
    "kind": st.sampled_from(KINDS),
    "method": st.sampled_from(["GET", "POST", "POST", "PUT", "DELETE", "PATCH"]),
    "real": st.booleans(),
    "parts": st.lists(text, min_size=5, max_size=5),
    "query": pairs,
    "form": pairs,
    "raw": st.one_of(st.none(), st.binary(max_size=200),
                     st.sampled_from([b'{"amount": 5}', b'{"text": 5}', b"[1,2]", b"\x00\xff"])),
    "content_type": st.sampled_from([None, "application/json", "text/plain", "application/xml",
                                     "application/x-www-form-urlencoded; charset=latin-1"]),
    "headers": st.dictionaries(st.sampled_from(["HX-Request", "HX-Boosted", "HX-History-Restore-Request",
                                                "X-Forwarded-Proto", "X-Forwarded-For", "Referer",
                                                "Accept"]),
                               st.sampled_from(["true", "false", "", "https", "1.2.3.4", "x" * 50]),
                               max_size=3),
})


def check(app: Flask, targets: dict[str, Process], rule: str, r: dict[str, Any]) -> None:
    path = path_for(app, rule, targets, r["real"], r["parts"])
    body: Any = r["raw"] if r["raw"] is not None else dict(r["form"])
    content_type = r["content_type"] if r["raw"] is not None else None
    before = dump()
    response = send(app, r["kind"], r["method"], path, r["query"], body, content_type, r["headers"])
    assert response.status_code < 500, (path, response.status_code)
    if response.status_code >= 400 or r["method"] == "GET":
        assert dump() == before, (path, response.status_code)


@FUZZ
@given(page=st.sampled_from(QUERY_PAGES), kind=st.sampled_from([k for k in KINDS if k]),
       query=st.fixed_dictionaries({}, optional={key: values for key in KEYS}).map(lambda d: list(d.items())),
       hx=st.sampled_from([{}, {"HX-Request": "true"}]))
def test_random_query_strings_never_fail_on_our_side(fuzz_app, page: str, query, kind, hx) -> None:  # type: ignore[no-untyped-def]
    app, _ = fuzz_app
    before = dump()
    response = send(app, kind, "GET", page, query, None, None, hx)
    assert response.status_code < 500, (page, query, response.status_code)
    assert dump() == before


@FUZZ
@given(rule_index=st.integers(min_value=0, max_value=100), r=requests)
def test_random_requests_to_any_url_never_fail_on_our_side(fuzz_app, rule_index: int, r) -> None:  # type: ignore[no-untyped-def]
    app, targets = fuzz_app
    rules = sorted({rule.rule for rule in app.url_map.iter_rules()})
    check(app, targets, rules[rule_index % len(rules)], r)


@FUZZ
@given(r=requests, transition=st.sampled_from(["assign", "unassign", "reassign", "undo", "cancel", "retry",
                                                "perform", "activate_next", "prepare", "done", "start"]))
def test_random_bodies_to_real_tasks_never_fail_on_our_side(fuzz_app, r, transition: str) -> None:  # type: ignore[no-untyped-def]
    app, targets = fuzz_app
    rules = ["/flows/<flow_label>/<int:process_id>/<node>/<int:task_id>/" + transition + "/",
             "/flows/<flow_label>/<int:process_id>/<node>/<int:task_id>/",
             "/flows/<flow_label>/start/<node>/", "/queue/", "/login"]
    r = {**r, "real": True, "method": "POST"}
    for rule in rules:
        if rule == "/flows/<flow_label>/start/<node>/":
            rule = "/flows/label/start/start/"
        check(app, targets, rule, r)


def test_every_nasty_value_in_every_query_key_of_every_page(fuzz_app) -> None:  # type: ignore[no-untyped-def]
    """The sweep behind the random tests: each value that broke a page before, in every key."""
    app, targets = fuzz_app
    process = targets["job_error"]
    job = task_of(process, "print_label")
    pages = [*QUERY_PAGES, f"/flows/label/{process.id}/", f"/flows/label/{process.id}/print_label/{job.id}/"]
    before = dump()
    for kind in ("super", "starter"):
        for value in NASTY:
            for page in pages:
                response = send(app, kind, "GET", page, [(key, value) for key in KEYS], None, None, {})
                assert response.status_code < 500, (kind, page, value)
    assert dump() == before


def test_every_nasty_value_in_every_form_field(fuzz_app) -> None:  # type: ignore[no-untyped-def]
    app, targets = fuzz_app
    process = targets["assigned"]
    confirm = task_of(process, "confirm")
    task_url = f"/flows/label/{process.id}/confirm/{confirm.id}/"
    posts = ["/flows/label/start/start/", task_url, task_url + "reassign/", "/queue/", "/login"]
    for value in NASTY:
        for url in posts:
            before = dump()
            response = send(app, "owner", "POST", url, [], {key: value for key in KEYS}, None, {})
            assert response.status_code < 500, (url, value)
            if response.status_code >= 400:
                assert dump() == before, (url, value)
