"""The event stream and its polling fallback under hostile input, and an open stream whose
user is logged out (everywhere: the session token changes), deactivated or given a new
password: it must stop telling that user's page what happens in their inbox and queue."""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from test_live_stream import Stream, base_url, live_app, session_cookie, stream  # noqa: F401
from web_support import AuthActions, hello, user

from webflow import db


def _log_out_everywhere(name: str) -> None:
    user(name).new_session_token()  # what /logout does: every copy of the cookie stops working


def _deactivate(name: str) -> None:
    user(name).is_active = False


def _new_password(name: str) -> None:
    user(name).set_password("a new password")


ENDINGS: dict[str, Callable[[str], None]] = {
    "logged out": _log_out_everywhere, "deactivated": _deactivate, "new password": _new_password,
}


def _ended_within(opened: Stream, seconds: float) -> bool:
    """True when the server closes the stream within ``seconds`` (events before it ignored)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        opened.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            opened.readline()
        except TimeoutError:
            return False
        except EOFError:
            return True
    return False


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_an_open_stream_ends_when_its_user_is_signed_out(live_app: Flask, base_url: str,  # noqa: F811
                                                        ending: str) -> None:
    """Before, the stream of a user logged out on another device, deactivated or given a new
    password went on for up to ``WEBFLOW_LIVE_LIFETIME`` (5 minutes), telling the page of
    every new task in their queue and every change in their inbox."""
    cookie = session_cookie(live_app, "alice")
    other = session_cookie(live_app, "bob")
    db.session.remove()
    with stream(base_url, cookie) as alice, stream(base_url, other) as bob:
        ENDINGS[ending]("alice")
        db.session.commit()
        assert _ended_within(alice, 2.0), "the stream went on"
        hello("after alice left", by="bob")  # bob's stream is not touched
        assert bob.events_until("queue", within=1.0)[-1:] == ["queue"]
    db.session.remove()
    # Her cookie opens no new stream either.
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", "/events/", headers={"Cookie": cookie, "HX-Request": "true"})
    assert conn.getresponse().status == 401
    conn.close()


def _through_a_group(name: str) -> None:
    """Before the stream opens: the user's permissions come from a group instead."""
    from webflow.models import Group

    person = user(name)
    group = Group(name="approvers", permissions=list(person.permissions))
    person.permissions = []
    person.groups.append(group)
    db.session.commit()


def _take_permissions(name: str) -> None:
    user(name).permissions = []


def _take_group_permissions(name: str) -> None:
    from webflow.models import Group

    db.session.scalar(sa.select(Group).where(Group.name == "approvers")).permissions = []


@pytest.mark.parametrize("through_group", [False, True], ids=["own", "group's"])
def test_an_open_stream_ends_when_its_users_permissions_change(live_app: Flask, base_url: str,  # noqa: F811
                                                               through_group: bool) -> None:
    """Before, a stream kept the channels and the queue filter of the permissions its user
    had when it opened: someone whose permission was taken away went on hearing of every new
    task of those flows in the queue for up to 5 minutes. Now it ends, and the page's next
    stream (it is still logged in) is opened with what they may now do."""
    if through_group:
        _through_a_group("alice")
    cookie = session_cookie(live_app, "alice")
    db.session.remove()
    with stream(base_url, cookie) as alice:
        (_take_group_permissions if through_group else _take_permissions)("alice")
        db.session.commit()
        assert _ended_within(alice, 2.0), "the stream went on"
    db.session.remove()
    with stream(base_url, cookie) as again:
        hello("for approvers only", by="bob")
        assert again.next_event(within=0.6) is None  # no queue event: she may take none now


def test_a_stream_is_not_ended_by_someone_elses_sign_out_nor_by_an_unrelated_change(
        live_app: Flask, base_url: str) -> None:  # noqa: F811
    cookie = session_cookie(live_app, "alice")
    db.session.remove()
    with stream(base_url, cookie) as alice:
        _log_out_everywhere("bob")
        user("alice").email = "alice@example.org"  # her own row, not her sessions
        db.session.commit()
        hello("still listening")
        assert alice.events_until("queue", within=1.0)[-1:] == ["queue"]


HOSTILE_QUERIES = ["?task=" + str(2**63), "?task=" + str(2**64 + 5), "?task=-1", "?task=%00", "?task=1%002",
                   "?task=" + "9" * 5000, "?" + "&".join(f"task={n}" for n in range(1, 400)),
                   "?task=%EF%BF%BF", "?task=0x10"]
HOSTILE_HEADERS: list[dict[str, str]] = [
    {"Last-Event-ID": "garbage\u00e9"}, {"Last-Event-ID": str(2**70)}, {"Last-Event-ID": "x" * 8000},
    {"If-None-Match": '"' + "9" * 5000 + '"'}, {"If-None-Match": "W/" + "." * 4000},
    {"If-None-Match": '"' + str(2**64) + "-" + str(2**64) + '"'}, {"If-None-Match": "*"},
    {"If-None-Match": '"1-x.%s"' % ("y" * 300)}, {"If-None-Match": ",,,\"\"\"\""},
]


def test_hostile_queries_and_headers_never_fail_on_our_side(live_app: Flask) -> None:  # noqa: F811
    """``/events/poll`` and ``/events/counts`` with garbage task ids (beyond 2^63, NUL, 5,000
    digits, hundreds of them), Last-Event-ID and If-None-Match of any size: answered, never a
    500; a task id nobody may see is ignored."""
    alice = AuthActions(live_app).enter_as("alice")
    hello("something to count")
    for query in HOSTILE_QUERIES:
        for headers in HOSTILE_HEADERS:
            for path in ("/events/poll", "/events/counts"):
                response = alice.get(path + query, hx=path.endswith("counts"), **headers)
                assert response.status_code in (200, 304, 400), (path, query, headers, response.status_code)


def test_the_poll_tells_nothing_of_a_task_the_user_may_not_see(live_app: Flask) -> None:  # noqa: F811
    """carol may see no Hello world task: naming its id in the poll adds no event for it,
    whatever changes."""
    from web_support import task_of

    task = task_of(hello("not for carol"), "approve")
    carol = AuthActions(live_app).enter_as("carol")
    first = carol.get(f"/events/poll?task={task.id}", **{"If-None-Match": '"0"'})
    etag = first.headers["ETag"]
    assert all(not e["event"].startswith("task-") for e in first.get_json()["events"])
    task.activate().assign(user("bob"))
    db.session.commit()
    later = carol.get(f"/events/poll?task={task.id}", **{"If-None-Match": etag})
    events: list[Any] = later.get_json()["events"] if later.status_code == 200 else []
    assert all(not e["event"].startswith("task-") for e in events)


def test_the_stream_takes_hostile_input_and_tells_nothing_of_tasks_it_may_not_see(
        live_app: Flask, base_url: str) -> None:  # noqa: F811
    """``/events/`` with ids beyond 2^63, NUL, 5,000 digits and hundreds of ``task=``, and
    a Last-Event-ID of any size, opens a stream (never a 500); the one real task named
    belongs to a flow carol may not see, so its change reaches only alice's stream."""
    from web_support import task_of

    task = task_of(hello("watched"), "approve")
    alice_cookie, carol_cookie = session_cookie(live_app, "alice"), session_cookie(live_app, "carol")
    db.session.remove()
    host, port = base_url.removeprefix("http://").split(":")
    for query in HOSTILE_QUERIES:
        for headers in HOSTILE_HEADERS[:3]:
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("GET", "/events/" + query, headers={"Cookie": carol_cookie, **headers})
            response = conn.getresponse()
            assert response.status == (400 if "%00" in query else 200), (query, headers)
            conn.close()
    with stream(base_url, carol_cookie, f"?task={task.id}&task={2**63}") as carol, \
            stream(base_url, alice_cookie, f"?task={task.id}") as alice:
        db.session.remove()
        task_of(db.session.merge(task).process, "approve").activate().assign(user("bob"))
        db.session.commit()
        assert f"task-{task.id}" in alice.events_until(f"task-{task.id}", within=1.0)
        assert carol.next_event(within=0.5) is None
